import { mkdtempSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { runModelRollback, runModelStatus } from '../../src/cli/model.js';
import { parseConfig } from '../../src/config/load.js';
import { silentLogger } from '../../src/log.js';
import { assemble } from '../../src/pipeline/assemble.js';
import { sidecarParts } from '../../src/pipeline/sidecar.js';

const dir = mkdtempSync(path.join(tmpdir(), 'lifecycle-wiring-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function config(model: Record<string, unknown>) {
  return parseConfig({
    mode: 'sidecar',
    nodes: ['ast1', 'ast2'].map((id, i) => ({ id, setId: 1, uri: `sip:10.0.0.${11 + i}:5060` })),
    actions: { dispatcher: { kind: 'simulated' }, restarter: { kind: 'command', command: '/bin/true' } },
    store: { path: ':memory:' },
    api: { openLocalMode: true },
    model,
  });
}

describe('foresight run with model.lifecycle.enabled', () => {
  it('serves who decides and the lifecycle phase at /api/model; foresight model status and rollback talk to it', async () => {
    const parts = await sidecarParts(
      config({ lifecycle: { enabled: true, dir: path.join(dir, 'models'), recordMs: 3_600_000 } }),
      silentLogger(),
    );
    const loop = await assemble(parts);
    await loop.app!.listen({ host: '127.0.0.1', port: 0 });
    try {
      const info = (await loop.app!.inject({ url: '/api/model' })).json();
      expect(info).toMatchObject({
        kind: 'stat',
        inCharge: { kind: 'stat', name: 'stat-v1', why: 'start: no model promoted yet' },
        previous: null,
        lifecycle: { phase: 'recording', recordMs: 3_600_000, schedule: '0 3 * * *' },
      });
      expect(Date.parse(info.lifecycle.nextCycleAt) - Date.parse(info.inCharge.since)).toBe(3_600_000);

      const url = `http://127.0.0.1:${(loop.app!.server.address() as AddressInfo).port}`;
      const log = vi.spyOn(console, 'log').mockImplementation(() => undefined);
      try {
        await runModelStatus({ url });
        expect(log.mock.calls.at(-1)?.[0]).toMatch(/^stat stat-v1 decides since .*: start: no model promoted yet$/);
        await expect(runModelRollback({ url, reason: 'try' })).rejects.toThrow(/409 nothing to roll back to/);
        await expect(runModelRollback({ url })).rejects.toThrow(/needs --reason/);
      } finally {
        log.mockRestore();
      }
    } finally {
      await loop.close();
    }
  });

  it('refuses the lifecycle beside model.kind tfjs, and a schedule that is not cron, saying why', async () => {
    await expect(sidecarParts(config({ kind: 'tfjs', lifecycle: { enabled: true } }), silentLogger())).rejects.toThrow(
      /model.lifecycle.enabled needs model.kind: stat/,
    );
    await expect(
      sidecarParts(
        config({ lifecycle: { enabled: true, dir: path.join(dir, 'm2'), schedule: 'nightly' } }),
        silentLogger(),
      ),
    ).rejects.toThrow(/"nightly" is not a cron expression/);
  });
});
