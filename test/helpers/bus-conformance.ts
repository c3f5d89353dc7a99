import { afterEach, describe, expect, it } from 'vitest';
import { type Bus, type DeliveredRecord, partitionForKey, type Subscription } from '../../src/bus/port.js';
import type { TelemetrySample } from '../../src/messages.js';

/**
 * Behaviour every Bus adapter must share, registered as vitest tests. The same suite runs against the in-process
 * MemoryBus and against each Kafka adapter on a real broker.
 */
export interface BusConformanceOptions {
  /** A fresh bus over topics no other test uses (a unique prefix for Kafka); the suite calls ensureTopics. */
  create: () => Promise<Bus>;
  /** Partitions of every topic the created bus uses. */
  partitions: number;
  /** How long deliveries may take (a Kafka group join takes seconds). */
  timeoutMs: number;
}

let groupSeq = 0;
function groupId(name: string): string {
  groupSeq++;
  return `conf-${name}-${process.pid}-${Date.now().toString(36)}-${groupSeq}`;
}

export function sample(nodeId: string, ts: number, value = ts): TelemetrySample {
  return { nodeId, ts, metric: 'channels.active', value, source: 'sim' };
}

export async function waitFor(
  what: string,
  condition: () => boolean | Promise<boolean>,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

export function registerBusConformance(name: string, options: BusConformanceOptions): void {
  describe(`bus conformance: ${name}`, () => {
    const opened: Bus[] = [];
    const subscriptions: Subscription[] = [];
    const { timeoutMs } = options;

    async function open(): Promise<Bus> {
      const bus = await options.create();
      opened.push(bus);
      await bus.ensureTopics();
      return bus;
    }

    afterEach(async () => {
      for (const s of subscriptions.splice(0)) await s.stop();
      for (const b of opened.splice(0)) await b.close();
    });

    it('delivers every record once per group, in order per key, with its key and topic', async () => {
      const bus = await open();
      const keys = ['ast1', 'ast2', 'ast3', 'ast4'];
      const perKey = 150;
      for (let chunk = 0; chunk < 3; chunk++) {
        const records = [];
        for (let i = chunk * 50; i < (chunk + 1) * 50; i++) {
          for (const key of keys) records.push({ key, value: sample(key, i) });
        }
        await bus.publish('telemetry', records);
      }
      const seen = new Map<string, number[]>();
      subscriptions.push(
        await bus.subscribe(
          'telemetry',
          async (batch) => {
            for (const r of batch) {
              expect(r.topic).toBe('telemetry');
              expect(r.key).toBe(r.value.nodeId);
              const list = seen.get(r.key) ?? [];
              list.push(r.value.ts);
              seen.set(r.key, list);
            }
          },
          { groupId: groupId('order'), fromBeginning: true },
        ),
      );
      await waitFor('all records', () => keys.every((k) => (seen.get(k)?.length ?? 0) >= perKey), timeoutMs);
      for (const key of keys) {
        expect(seen.get(key)).toEqual(Array.from({ length: perKey }, (_, i) => i));
      }
    });

    it('shares partitions between the members of one group and gives each key to one member', async () => {
      const bus = await open();
      const group = groupId('share');
      const members = [0, 1].map(() => ({ partitions: [] as number[], keys: new Set<string>(), count: 0 }));
      for (const member of members) {
        subscriptions.push(
          await bus.subscribe(
            'telemetry',
            async (batch: DeliveredRecord<TelemetrySample>[]) => {
              for (const r of batch) {
                member.keys.add(r.key);
                member.count++;
              }
            },
            {
              groupId: group,
              fromBeginning: true,
              onAssigned: (partitions) => {
                member.partitions = [...partitions];
              },
              onRevoked: (partitions) => {
                member.partitions = member.partitions.filter((p) => !partitions.includes(p));
              },
            },
          ),
        );
      }
      await waitFor(
        'a settled assignment',
        () => {
          const [a, b] = members;
          const all = new Set([...(a?.partitions ?? []), ...(b?.partitions ?? [])]);
          return (
            (a?.partitions.length ?? 0) > 0 &&
            (b?.partitions.length ?? 0) > 0 &&
            all.size === options.partitions &&
            (a?.partitions.length ?? 0) + (b?.partitions.length ?? 0) === options.partitions
          );
        },
        timeoutMs,
      );
      const keys = Array.from({ length: 40 }, (_, i) => `node-${i}`);
      await bus.publish(
        'telemetry',
        keys.flatMap((key) => [1, 2, 3].map((ts) => ({ key, value: sample(key, ts) }))),
      );
      await waitFor('all records', () => members.reduce((n, m) => n + m.count, 0) >= keys.length * 3, timeoutMs);
      const [a, b] = members;
      expect(a?.count).toBeGreaterThan(0);
      expect(b?.count).toBeGreaterThan(0);
      for (const key of keys) expect(Number(a?.keys.has(key)) + Number(b?.keys.has(key))).toBe(1);
    });

    it('redelivers a batch whose handler failed and commits only after it succeeds', async () => {
      const bus = await open();
      const group = groupId('redeliver');
      await bus.publish('telemetry', [{ key: 'ast1', value: sample('ast1', 1) }]);
      let calls = 0;
      const handled: number[] = [];
      subscriptions.push(
        await bus.subscribe(
          'telemetry',
          async (batch) => {
            calls++;
            if (calls === 1) {
              // Not committed yet: the failure must leave the record outstanding.
              expect(await bus.lag('telemetry', group)).toBe(1);
              throw new Error('transient handler failure');
            }
            for (const r of batch) handled.push(r.value.ts);
          },
          { groupId: group, fromBeginning: true },
        ),
      );
      await waitFor('the redelivery', () => handled.length > 0, timeoutMs);
      expect(calls).toBeGreaterThanOrEqual(2);
      expect(handled).toEqual([1]);
      await waitFor('the commit', async () => (await bus.lag('telemetry', group)) === 0, timeoutMs);
    });

    it('dead-letters a record its handler keeps failing on and processes the others', async () => {
      const bus = await open();
      const group = groupId('poison');
      await bus.publish(
        'telemetry',
        [1, 2, 3, 4, 5].map((ts) => ({ key: 'ast1', value: sample('ast1', ts) })),
      );
      const handled = new Set<number>();
      const letters: { offset: string; code: string; reason: string; payload: string; topic: string }[] = [];
      subscriptions.push(
        await bus.subscribe(
          'deadletter',
          async (batch) => {
            for (const r of batch) letters.push(r.value);
          },
          { groupId: `${group}-dlq`, fromBeginning: true },
        ),
      );
      subscriptions.push(
        await bus.subscribe(
          'telemetry',
          async (batch) => {
            if (batch.some((r) => r.value.ts === 3)) throw new Error('cannot process ts 3');
            for (const r of batch) handled.add(r.value.ts);
          },
          { groupId: group, fromBeginning: true },
        ),
      );
      await waitFor('the dead letter', () => letters.length > 0 && handled.size === 4, timeoutMs);
      expect([...handled].sort()).toEqual([1, 2, 4, 5]);
      expect(letters).toHaveLength(1);
      const letter = letters[0];
      expect(letter?.topic).toBe('telemetry');
      expect(letter?.code).toBe('FORESIGHT_ERR_HANDLER');
      expect(letter?.reason).toContain('cannot process ts 3');
      expect(JSON.parse(letter?.payload ?? 'null')).toMatchObject({ ts: 3 });
      expect(letter?.offset).toMatch(/^\d+$/);
      await waitFor('the commit', async () => (await bus.lag('telemetry', group)) === 0, timeoutMs);
    });

    it('reports lag as records not yet committed by a group', async () => {
      const bus = await open();
      const group = groupId('lag');
      await bus.publish(
        'scores',
        Array.from({ length: 12 }, (_, i) => ({
          key: `ast${i % 3}`,
          value: {
            nodeId: `ast${i % 3}`,
            setId: 1,
            ts: i,
            risk: 0.5,
            timeToFailureS: null,
            explanation: [{ feature: 'x', weight: 1, value: 2 }],
            scorer: 'test-v1',
            observed: true,
            activeCalls: 3,
            activeCallsSource: 'ami',
            evidence: { calls: { count: 3, source: 'ami' }, upReported: true, probe: null },
            up: true,
          },
        })),
      );
      expect(await bus.lag('scores', group)).toBe(12);
      let count = 0;
      subscriptions.push(
        await bus.subscribe(
          'scores',
          async (batch) => {
            count += batch.length;
          },
          { groupId: group, fromBeginning: true },
        ),
      );
      await waitFor('consumption', () => count >= 12, timeoutMs);
      await waitFor('zero lag', async () => (await bus.lag('scores', group)) === 0, timeoutMs);
      expect(count).toBe(12);
    });

    it('reads a range from a timestamp to another or to the end, per partition in offset order, outside any group', async () => {
      const bus = await open();
      const keys = ['ast1', 'ast2', 'ast3', 'ast4', 'ast5', 'ast6'];
      const base = 1_700_000_000_000;
      // Distinct timestamps per key, so the Kafka adapters pack nothing and each sample has its own offset.
      await bus.publish(
        'telemetry',
        Array.from({ length: 40 }, (_, i) =>
          keys.map((key) => ({ key, value: sample(key, base + i * 1000), timestamp: base + i * 1000 })),
        ).flat(),
      );
      const from = base + 25_000;
      const got: DeliveredRecord<TelemetrySample>[] = [];
      const ends = await bus.readRange('telemetry', { fromTs: from }, (batch) => {
        const partition = batch[0]?.partition;
        for (const r of batch) {
          expect(r.partition).toBe(partition);
          got.push(r);
        }
      });
      expect([...ends.keys()].sort()).toEqual(Array.from({ length: options.partitions }, (_, p) => p));
      for (const key of keys) {
        const mine = got.filter((r) => r.key === key);
        expect(mine.map((r) => r.value.ts)).toEqual(Array.from({ length: 15 }, (_, i) => from + i * 1000));
        const p = partitionForKey(key, options.partitions);
        expect(mine.every((r) => r.partition === p)).toBe(true);
        const offsets = mine.map((r) => BigInt(r.offset));
        for (let i = 1; i < offsets.length; i++) expect(offsets[i]! > offsets[i - 1]!).toBe(true);
        for (const o of offsets) expect(o < BigInt(ends.get(p) ?? '0')).toBe(true);
      }
      expect(got).toHaveLength(keys.length * 15);

      // A bounded range: [from, to).
      const bounded: DeliveredRecord<TelemetrySample>[] = [];
      await bus.readRange('telemetry', { fromTs: base + 10_000, toTs: base + 20_000 }, (batch) => {
        bounded.push(...batch);
      });
      for (const key of keys) {
        expect(bounded.filter((r) => r.key === key).map((r) => r.value.ts)).toEqual(
          Array.from({ length: 10 }, (_, i) => base + 10_000 + i * 1000),
        );
      }
      expect(bounded).toHaveLength(keys.length * 10);

      // One partition only, and a time after every record: nothing, but the end is still reported.
      const p0 = partitionForKey('ast1', options.partitions);
      const only: DeliveredRecord<TelemetrySample>[] = [];
      const oneEnd = await bus.readRange('telemetry', { partitions: [p0], fromTs: base }, (batch) => {
        only.push(...batch);
      });
      expect([...oneEnd.keys()]).toEqual([p0]);
      expect(only.length).toBeGreaterThan(0);
      expect(only.every((r) => r.partition === p0)).toBe(true);
      let late = 0;
      await bus.readRange('telemetry', { fromTs: base + 3_600_000 }, (batch) => {
        late += batch.length;
      });
      expect(late).toBe(0);

      // Reading committed nothing: a group starting from the beginning still gets every record.
      const group = groupId('range');
      let count = 0;
      subscriptions.push(
        await bus.subscribe(
          'telemetry',
          async (batch) => {
            count += batch.length;
          },
          { groupId: group, fromBeginning: true },
        ),
      );
      await waitFor('every record', () => count >= keys.length * 40, timeoutMs);
      expect(count).toBe(keys.length * 40);
    });
  });
}
