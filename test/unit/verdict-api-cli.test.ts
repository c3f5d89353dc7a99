/**
 * Outcomes teach the live system, end to end: the whole loop (simulated cluster → features → `stat` scorer → action
 * engine) drains leaking nodes; an operator calls the drains false alarms through the `foresight` CLI (against the
 * API listening on a real port) and through the API, and the drain threshold in use rises, as both the CLI and the
 * API show; a restarted Foresight on the same store keeps it.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { silentLogger } from '../../src/log.js';
import type { AuditRecord } from '../../src/messages.js';
import { EmbeddedRuntime } from '../../src/pipeline/embedded.js';

const run = promisify(execFile);
const START = Date.UTC(2024, 0, 1, 8, 0, 0);
const MIN = 60_000;
const TOKEN = 'op-token-0123456789';
const AUTH = { authorization: `Bearer ${TOKEN}` };
const dir = mkdtempSync(path.join(tmpdir(), 'fs-verdict-'));
const storePath = path.join(dir, 'foresight.db');

afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function runtime(audit: AuditRecord[]) {
  const config = parseConfig({
    simulator: { seed: 3, nodes: 4, incidentsPerNodeDay: 0 },
    api: { tokens: [{ name: 'olga', role: 'operator', token: { value: TOKEN } }] },
  });
  return EmbeddedRuntime.create({
    config,
    logger: silentLogger(),
    storePath,
    api: true,
    simulator: {
      startAt: START,
      disturbances: { dbBlipsPerDay: 0, networkBlipsPerDay: 0, hiccupsPerNodeDay: 0 },
      incidents: [
        { nodeId: 'ast2', mode: 'memory_leak', onsetAt: START + 20 * MIN, crashAt: START + 80 * MIN, magnitude: 1.2 },
        { nodeId: 'ast3', mode: 'memory_leak', onsetAt: START + 110 * MIN, crashAt: START + 170 * MIN, magnitude: 1.2 },
      ],
    },
    onAudit: (r) => audit.push(r),
  });
}

async function cli(...args: string[]): Promise<string> {
  const { stdout } = await run(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], {
    cwd: path.resolve(import.meta.dirname, '../..'),
    env: { ...process.env, FORESIGHT_API_TOKEN: TOKEN },
  });
  return stdout;
}

describe('verdicts through the CLI and the API move the live drain threshold', () => {
  it('false-alarm verdicts raise the threshold the loop decides with, and it survives a restart', async () => {
    const audit: AuditRecord[] = [];
    const rt = await runtime(audit);
    const app = rt.loop.app!;
    await app.listen({ host: '127.0.0.1', port: 0 });
    const url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
    const autoDrain = (nodeId: string) =>
      audit.find((r) => r.kind === 'DrainStarting' && r.actor === 'auto' && r.nodeId === nodeId);

    await rt.advanceTo(START + 100 * MIN);
    const first = autoDrain('ast2');
    expect(first?.details).toMatchObject({ scorer: 'stat-v1', threshold: 0.8 });

    const before = JSON.parse(await cli('thresholds', '--url', url, '--json'));
    expect(before).toMatchObject({ inCharge: 'stat-v1', effective: 0.8, configured: 0.8 });

    const said = await cli('verdict', first!.decisionId!, 'false-alarm', '--url', url, '--reason', 'RSS was a cache');
    expect(said).toMatch(/stat-v1 drain threshold 0.8 -> 0.82/);
    const table = await cli('thresholds', '--url', url);
    expect(table).toMatch(
      /drain threshold in use: 0.82 \(scorer stat-v1; configured 0.8; verdicts move it within \[0.7, 0.95\]\)/,
    );
    expect(table).toMatch(/stat-v1 \*\s+0.82\s+1\s+0\s+\d{4}-/);
    expect(audit.filter((r) => r.kind === 'ThresholdMoved')).toHaveLength(1);
    // A refusal reads as the API's own error, not a stack trace; a wrong word is refused before any request.
    await expect(cli('verdict', 'no-such-decision', 'false-alarm', '--url', url)).rejects.toMatchObject({
      code: 2,
      stderr: expect.stringMatching(
        /foresight: POST \/api\/decisions\/no-such-decision\/verdict: 404 FORESIGHT_ERR_NOT_FOUND decision no-such-decision not found/,
      ),
    });
    await expect(cli('verdict', first!.decisionId!, 'maybe', '--url', url)).rejects.toMatchObject({
      stderr: expect.stringMatching(/verdict must be true-alarm or false-alarm, not "maybe"/),
    });

    // The next drain is decided at the raised threshold, and the API records the second false alarm.
    await rt.advanceTo(START + 180 * MIN);
    const second = autoDrain('ast3');
    expect(second?.details).toMatchObject({ scorer: 'stat-v1', threshold: 0.82 });
    const res = await app.inject({
      method: 'POST',
      url: `/api/decisions/${second!.decisionId}/verdict`,
      headers: AUTH,
      payload: { verdict: 'false_alarm', reason: 'load test' },
    });
    expect(res.statusCode).toBe(200);
    expect(res.json().audit.details.threshold).toMatchObject({ moved: true, from: 0.82, to: 0.84 });
    const thr = await app.inject({ method: 'GET', url: '/api/model/thresholds', headers: AUTH });
    expect(thr.json()).toMatchObject({
      effective: 0.84,
      scorers: [{ scorer: 'stat-v1', threshold: 0.84, falseAlarms: 2, trueAlarms: 0, inCharge: true }],
    });
    expect((await app.inject({ method: 'GET', url: '/api/nodes', headers: AUTH })).json().threshold).toBe(0.84);
    expect((await app.inject({ method: 'GET', url: '/api/model', headers: AUTH })).json().threshold).toBe(0.84);
    await rt.close();

    // A restarted Foresight on the same store decides with the moved threshold from its first window.
    const again = await runtime([]);
    expect(again.engine.riskThreshold()).toBe(0.84);
    const after = await again.loop.app!.inject({ method: 'GET', url: '/api/model/thresholds', headers: AUTH });
    expect(after.json()).toMatchObject({ effective: 0.84, inCharge: 'stat-v1' });
    await again.close();
  }, 120_000);
});
