/**
 * The Store conformance suite against the local PostgreSQL (127.0.0.1:5432, trust auth, database `test`).
 * Each test gets its own random schema, dropped afterwards. FORESIGHT_TEST_PG overrides the connection string.
 */
import { randomBytes } from 'node:crypto';
import { PostgresStore } from '../../src/actions/store/postgres.js';
import { storeConformance } from '../helpers/store-conformance.js';

const url = process.env.FORESIGHT_TEST_PG ?? `postgres://${process.env.PGUSER ?? 'postgres'}@127.0.0.1:5432/test`;

storeConformance('postgres', async () => {
  const schema = `fs_test_${randomBytes(6).toString('hex')}`;
  const opened: PostgresStore[] = [];
  const make = () => {
    const s = new PostgresStore({ connectionString: url, schema });
    opened.push(s);
    return s;
  };
  return {
    store: make(),
    reopen: async () => make(),
    cleanup: async () => {
      const dropper = new PostgresStore({ connectionString: url, schema });
      await dropper.init();
      await dropper.dropSchema();
      await dropper.close();
      for (const s of opened) await s.close();
    },
  };
});
