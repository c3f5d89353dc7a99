import { describe, expect, it } from 'vitest';
import { probeSamples } from '../../src/ingest/db/collector.js';
import { describeTarget, parseDbUrl, safeError, withTimeout } from '../../src/ingest/db/probe.js';

describe('database probe helpers', () => {
  it('parses URLs and refuses passwords inside them', () => {
    expect(parseDbUrl('postgres', 'postgres://asterisk@db.local/rt', 'pw')).toEqual({
      host: 'db.local',
      port: 5432,
      user: 'asterisk',
      database: 'rt',
      password: 'pw',
    });
    expect(parseDbUrl('mysql', 'mysql://127.0.0.1:3307/test').user).toBe('root');
    expect(() => parseDbUrl('mysql', 'mysql://root:hunter2@h/test')).toThrow(/must not contain a password/);
    expect(() => parseDbUrl('postgres', 'mysql://h/test')).toThrow(/must start with/);
    expect(describeTarget({ nodeId: 'a', kind: 'postgres', url: 'postgres://secretuser@h:1/d' })).toBe(
      'postgres://h:1/d',
    );
  });

  it('scrubs credentials from driver errors', () => {
    expect(safeError(new Error('auth failed for hunter2 at postgres://u:hunter2@h/d'), 'hunter2')).not.toContain(
      'hunter2',
    );
  });

  it('turns a timeout into a typed error and calls the cleanup', async () => {
    let cleaned = false;
    const never = new Promise<void>(() => {});
    await expect(withTimeout(never, 10, () => (cleaned = true))).rejects.toMatchObject({
      code: 'FORESIGHT_ERR_TIMEOUT',
    });
    expect(cleaned).toBe(true);
    await expect(withTimeout(Promise.resolve(7), 1000, () => {})).resolves.toBe(7);
  });

  it('emits one latency per good step and the count of failed steps', () => {
    const ok = { ok: true, ms: 3 };
    const bad = { ok: false, ms: 2000, error: 'timeout', timedOut: true };
    const s = probeSamples({
      nodeId: 'ast1',
      ts: 5,
      connect: ok,
      select1: ok,
      query: bad,
      pool: { size: 2, inUse: 2, waiting: 3 },
      up: true,
    });
    expect(s.filter((x) => x.metric === 'db.query_ms').map((x) => x.value)).toEqual([3, 3]);
    expect(s.find((x) => x.metric === 'db.probe_failures')?.value).toBe(1);
    expect(s.find((x) => x.metric === 'db.pool_waiting')?.value).toBe(3);
    expect(s.every((x) => x.source === 'db')).toBe(true);
  });
});
