import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
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

describe('SqliteStore file', () => {
  it('uses WAL in one file and reports a bad path as a store error', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'foresight-wal-'));
    try {
      const path = join(dir, 'f.db');
      const s = new SqliteStore({ path });
      await s.init();
      const raw = new Database(path, { readonly: true });
      expect(raw.pragma('journal_mode', { simple: true })).toBe('wal');
      raw.close();
      await s.close();
      await expect(new SqliteStore({ path: join(dir, 'missing', 'x.db') }).init()).rejects.toMatchObject({
        code: 'FORESIGHT_ERR_STORE',
      });
      await expect(new SqliteStore({ path }).listNodes()).rejects.toMatchObject({ code: 'FORESIGHT_ERR_STORE' });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
