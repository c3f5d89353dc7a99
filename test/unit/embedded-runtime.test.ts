import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { silentLogger } from '../../src/log.js';
import type { AuditRecord, DeadLetter } from '../../src/messages.js';
import { EmbeddedRuntime } from '../../src/pipeline/embedded.js';

const START = Date.UTC(2024, 0, 1, 8, 0, 0);
const MIN = 60_000;

async function runtime(options: { seed?: number; dryRun?: boolean; plan?: boolean; randomIncidents?: boolean } = {}) {
  const audit: AuditRecord[] = [];
  const config = parseConfig({
    simulator: { seed: options.seed ?? 3, nodes: 4, incidentsPerNodeDay: options.randomIncidents ? 2 : 0 },
    actions: { dryRun: options.dryRun ?? false },
  });
  const rt = await EmbeddedRuntime.create({
    config,
    logger: silentLogger(),
    storePath: ':memory:',
    simulator: {
      startAt: START,
      disturbances: { dbBlipsPerDay: 0, networkBlipsPerDay: 0, hiccupsPerNodeDay: 0 },
      incidents: options.plan
        ? [
            {
              nodeId: 'ast2',
              mode: 'memory_leak',
              onsetAt: START + 20 * MIN,
              crashAt: START + 80 * MIN,
              magnitude: 1.2,
            },
          ]
        : [],
    },
    onAudit: (r) => audit.push(r),
  });
  return { rt, audit };
}

describe('embedded runtime', () => {
  it('is deterministic by seed: same telemetry, same decisions', async () => {
    const summaries = [];
    for (let i = 0; i < 2; i++) {
      const { rt, audit } = await runtime({ seed: 5, randomIncidents: true });
      await rt.advanceTo(START + 3 * 60 * MIN);
      summaries.push({
        published: rt.samplesPublished,
        stats: rt.cluster.stats(),
        audit: audit.map((r) => [r.ts, r.nodeId, r.kind, r.reason]),
      });
      await rt.close();
    }
    expect(summaries[1]).toEqual(summaries[0]);
    expect(summaries[0]!.published).toBeGreaterThan(100_000);
  });

  it('drains a leaking node before it crashes, so none of its calls drop', async () => {
    const { rt, audit } = await runtime({ plan: true });
    await rt.advanceTo(START + 100 * MIN);
    const drained = audit.find((r) => r.kind === 'DrainSucceeded' && r.nodeId === 'ast2');
    expect(drained, JSON.stringify(audit.map((r) => [r.nodeId, r.kind, r.reason]))).toBeDefined();
    expect(drained!.ts).toBeLessThan(START + 80 * MIN);
    const incident = rt.cluster.stats().incidents.find((i) => i.label.nodeId === 'ast2');
    expect(incident?.outcome).toBe('prevented');
    expect(rt.cluster.stats().callsDropped).toBe(0);
    // The full lifecycle ran and the node came back.
    const kinds = audit.filter((r) => r.nodeId === 'ast2').map((r) => r.kind);
    expect(kinds).toEqual(
      expect.arrayContaining(['DrainStarting', 'RestartStarting', 'RestartSucceeded', 'NodeReturned']),
    );
    expect(rt.cluster.nodeView('ast2').accepting).toBe(true);
    await rt.close();
  });

  it('in dry-run decides and audits but never touches the cluster', async () => {
    const { rt, audit } = await runtime({ plan: true, dryRun: true });
    await rt.advanceTo(START + 100 * MIN);
    expect(audit.some((r) => r.kind === 'DrainStarting' && r.dryRun)).toBe(true);
    expect(rt.cluster.stats().restarts).toBe(0);
    expect(rt.cluster.stats().incidents.find((i) => i.label.nodeId === 'ast2')?.outcome).toBe('crashed');
    await rt.close();
  });

  it('dead-letters telemetry the feature stage rejects instead of losing it', async () => {
    const { rt } = await runtime();
    const dead: DeadLetter[] = [];
    await rt.bus.subscribe('deadletter', async (b) => void dead.push(...b.map((r) => r.value)), {
      groupId: 'test',
      fromBeginning: true,
    });
    await rt.advanceTo(START + 2 * MIN);
    const nan = {
      nodeId: 'ast1',
      ts: START + 90_000,
      metric: 'host.cpu_pct' as const,
      value: Number.NaN,
      source: 'ami' as const,
    };
    // The bus refuses NaN at the producer; a trusted in-process producer bypasses that check, and the stage still copes.
    await expect(rt.bus.publish('telemetry', [{ key: 'ast1', value: nan }])).rejects.toThrow(/finite/);
    rt.bus.publishSync('telemetry', [{ key: 'ast1', value: nan }]);
    await rt.bus.publish('telemetry', [
      {
        key: 'ast1',
        value: { nodeId: 'ast1', ts: START - 3_600_000, metric: 'host.cpu_pct', value: 5, source: 'ami' },
      },
    ]);
    await rt.advanceTo(START + 3 * MIN);
    await rt.bus.idle();
    expect(dead.map((d) => d.topic)).toEqual(['telemetry', 'telemetry']);
    expect(dead.every((d) => d.reason.length > 0 && d.payload.includes('ast1'))).toBe(true);
    await rt.close();
  });
});
