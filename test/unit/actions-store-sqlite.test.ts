import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteStore } from '../../src/actions/store/sqlite.js';
import { storeConformance } from '../helpers/store-conformance.js';

storeConformance('sqlite', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'foresight-store-'));
  const path = join(dir, 'foresight.db');
  const opened: SqliteStore[] = [];
  const make = () => {
    const s = new SqliteStore({ path });
    opened.push(s);
    return s;
  };
  return {
    store: make(),
    reopen: async () => make(),
    cleanup: async () => {
      for (const s of opened) await s.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
});
