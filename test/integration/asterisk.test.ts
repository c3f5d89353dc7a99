import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AmiRestarter } from '../../src/actions/restarter/ami.js';
import { AmiCollector } from '../../src/ingest/ami/collector.js';
import type { MetricName, TelemetrySample } from '../../src/messages.js';
import { openAmiTap } from '../helpers/ami-tap.js';
import { type SippMessage, type SippRun, startUac } from '../helpers/sipp.js';
import {
  ASTERISK_START_TIMEOUT_MS,
  type AsteriskNode,
  amiEndpoint,
  coreStartup,
  startAsteriskNodes,
} from './asterisk-env.js';

/**
 * The AMI collector and restarter against real Asterisk 22 nodes (scripts/services/asterisk.sh), with sipp placing
 * the calls. Lab dialplan (deploy/asterisk/test/extensions.conf): `hold` answers and waits for the caller's BYE,
 * `<N>` answers and hangs up after N seconds.
 */

const POLL_MS = 500;
const CALL_PREFIX = 'PJSIP/kamailio-';
const FIXTURES = resolve(import.meta.dirname, '../fixtures/ami');

let nodes: AsteriskNode[];
let dir: string;
const collectors: AmiCollector[] = [];
/** Collector on ast1, from the start (the restart test watches ast2 itself). */
let ast1: Watched;

interface Watched {
  collector: AmiCollector;
  samples: TelemetrySample[];
}

function watch(node: AsteriskNode): Watched {
  const samples: TelemetrySample[] = [];
  const collector = new AmiCollector({
    nodeId: node.id,
    ...amiEndpoint(node),
    pollIntervalMs: POLL_MS,
    keepAliveIntervalMs: 1000,
    actionTimeoutMs: 3000,
    backoff: { initialMs: 100, maxMs: 500 },
    callChannelPrefix: CALL_PREFIX,
    onSamples: (s) => samples.push(...s),
  });
  collectors.push(collector);
  collector.start();
  return { collector, samples };
}

async function waitFor(what: string, cond: () => boolean, limitMs = 20_000): Promise<void> {
  const end = Date.now() + limitMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const of = (samples: TelemetrySample[], metric: MetricName, since = 0) =>
  samples.filter((s) => s.metric === metric && s.ts >= since);
const total = (samples: TelemetrySample[], metric: MetricName, since = 0) =>
  of(samples, metric, since).reduce((a, s) => a + s.value, 0);

/**
 * Calls sipp had up at time t, as a range: a call is surely up on the node from the 200 to its INVITE until a BYE
 * (either way), and possibly up from sending the INVITE until the 200 to the BYE; the node's count may be anywhere
 * between while those messages are in flight.
 */
function sippUpAt(messages: SippMessage[], t: number): { surely: number; possibly: number } {
  const invited = new Set<string>();
  const answered = new Set<string>();
  const byeSeen = new Set<string>();
  const ended = new Set<string>();
  for (const m of messages) {
    if (!m.callId || m.ts > t) continue;
    if (m.direction === 'sent' && m.method === 'INVITE') invited.add(m.callId);
    if (m.status === 200 && m.cseqMethod === 'INVITE') answered.add(m.callId);
    if (m.method === 'BYE') byeSeen.add(m.callId);
    if (m.status === 200 && m.cseqMethod === 'BYE') ended.add(m.callId);
  }
  let surely = 0;
  let possibly = 0;
  for (const id of invited) {
    if (answered.has(id) && !byeSeen.has(id)) surely++;
    if (!ended.has(id)) possibly++;
  }
  return { surely, possibly };
}

/** The range of calls sipp had up at some time in [from, to]: it changes only at sipp's own messages. */
function sippUpDuring(messages: SippMessage[], from: number, to: number): { min: number; max: number } {
  const at = [sippUpAt(messages, from)];
  for (const m of messages) if (m.ts > from && m.ts <= to) at.push(sippUpAt(messages, m.ts));
  return { min: Math.min(...at.map((x) => x.surely)), max: Math.max(...at.map((x) => x.possibly)) };
}

async function finished(run: SippRun) {
  const exit = await run.exited;
  const stats = run.stats();
  return { code: exit.code, ok: stats['SuccessfulCall(C)'], failed: stats['FailedCall(C)'] };
}

beforeAll(async () => {
  nodes = await startAsteriskNodes(2);
  dir = mkdtempSync(join(tmpdir(), 'foresight-asterisk-'));
  ast1 = watch(nodes[0] as AsteriskNode);
}, ASTERISK_START_TIMEOUT_MS);

afterAll(async () => {
  for (const c of collectors) await c.stop();
  // sipp logs live here; keep them when FORESIGHT_KEEP_SIPP_LOGS is set, for a failing run.
  if (dir && !process.env.FORESIGHT_KEEP_SIPP_LOGS) rmSync(dir, { recursive: true, force: true });
  // The nodes stay up, like the other services: scripts/test-all.sh stops what it started.
});

describe('AMI collector and restarter against real Asterisk nodes', () => {
  it('logs in and reports node.up from the FullyBooted the node sends', async () => {
    await waitFor('FullyBooted on ast1', () => ast1.collector.stats().up);
    await waitFor('a poll', () => of(ast1.samples, 'channels.active').length > 0);
    const stats = ast1.collector.stats();
    expect(stats.loginFailures).toBe(0);
    expect(stats.connects).toBe(1);
    expect(of(ast1.samples, 'node.up').at(-1)?.value).toBe(1);
    expect(of(ast1.samples, 'channels.active').at(-1)?.value).toBe(0);
    // The real taskprocessor table parses (22.x adds two columns).
    expect(of(ast1.samples, 'taskprocessor.max_queue').length).toBeGreaterThan(0);
  });

  it('channels.active follows the calls sipp has up, within one poll, and returns to 0', async () => {
    const node = nodes[0] as AsteriskNode;
    const calls = 4;
    const since = Date.now();
    const uac = startUac({
      dir,
      port: 5281,
      calls,
      rate: 10,
      durationMs: 4000,
      target: `127.0.0.1:${node.sipPort}`,
      service: 'hold',
      timeoutS: 30,
      name: 'uac-hold',
    });
    const result = await finished(uac);
    const endedAt = Date.now();
    await waitFor('a poll after the calls', () => of(ast1.samples, 'channels.active', endedAt + POLL_MS).length > 0);
    expect(result).toEqual({ code: 0, ok: calls, failed: 0 });

    const messages = uac.messages();
    const active = of(ast1.samples, 'channels.active', since);
    for (const s of active) {
      const { min, max } = sippUpDuring(messages, s.ts - POLL_MS, s.ts);
      const where = `channels.active ${s.value} at ${new Date(s.ts).toISOString()}`;
      expect(s.value, where).toBeGreaterThanOrEqual(min);
      expect(s.value, where).toBeLessThanOrEqual(max);
    }
    expect(Math.max(...active.map((s) => s.value))).toBe(calls);
    expect(active.at(-1)?.value).toBe(0);
    // Ended by the caller's BYE: every call completed, none abnormal.
    expect(total(ast1.samples, 'calls.started', since)).toBe(calls);
    expect(total(ast1.samples, 'calls.completed', since)).toBe(calls);
    expect(total(ast1.samples, 'hangup.abnormal', since)).toBe(0);
  });

  it.each([
    { end: 'caller-bye', service: 'hold', scenario: 'uac_rr.xml', fixture: 'asterisk22-caller-bye' },
    { end: 'callee-hangup', service: '2', scenario: 'uac_callee_bye.xml', fixture: 'asterisk22-callee-hangup' },
  ])('a normal $end counts as calls.completed, not hangup.abnormal', async ({ end, service, scenario, fixture }) => {
    const node = nodes[0] as AsteriskNode;
    const tap = await openAmiTap({
      port: node.amiPort,
      username: node.amiUser,
      secret: node.amiSecret,
      events: 'system,call,reporting',
    });
    try {
      const mark = tap.text().length;
      const since = Date.now();
      const uac = startUac({
        dir,
        port: 5282,
        calls: 1,
        rate: 1,
        durationMs: 1500,
        target: `127.0.0.1:${node.sipPort}`,
        service,
        scenario,
        timeoutS: 20,
        name: `uac-${end}`,
      });
      expect(await finished(uac)).toEqual({ code: 0, ok: 1, failed: 0 });
      const hangups = () => tap.eventsSince(mark).filter((e) => e.startsWith('Event: Hangup\n'));
      await waitFor('the Hangup event', () => hangups().length > 0, 5000);
      // Late events of the call have arrived, and reached the collector too, by the next poll.
      const settled = Date.now();
      await waitFor('a poll', () => of(ast1.samples, 'channels.active', settled + POLL_MS).length > 0);
      const events = tap.eventsSince(mark);
      // FORESIGHT_CAPTURE_AMI=1 stores what the node sent, as the unit tests' fixture (test/fixtures/ami/README.md).
      if (process.env.FORESIGHT_CAPTURE_AMI === '1') {
        writeFileSync(join(FIXTURES, `${fixture}.ami`), `${events.join('\n\n')}\n\n`);
      }
      expect(hangups()).toHaveLength(1);
      expect(total(ast1.samples, 'calls.started', since)).toBe(1);
      expect(total(ast1.samples, 'calls.completed', since)).toBe(1);
      expect(total(ast1.samples, 'hangup.abnormal', since)).toBe(0);
    } finally {
      tap.close();
    }
  });

  it('core restart gracefully through the restarter keeps the calls up to their end, then the node boots again', async () => {
    const node = nodes[1] as AsteriskNode;
    const ast2 = watch(node);
    await waitFor('FullyBooted on ast2', () => ast2.collector.stats().up);
    const startupBefore = await coreStartup(node);
    const calls = 3;
    const uac = startUac({
      dir,
      port: 5283,
      calls,
      rate: 10,
      durationMs: 6000,
      target: `127.0.0.1:${node.sipPort}`,
      service: 'hold',
      timeoutS: 40,
      name: 'uac-restart',
    });
    await waitFor('the calls up on ast2', () => of(ast2.samples, 'channels.active').at(-1)?.value === calls);
    const restartAt = Date.now();
    const restarter = new AmiRestarter({ endpoint: () => amiEndpoint(node), mode: 'gracefully', timeoutMs: 60_000 });
    // Resolves when the node closes the AMI session, which it does only once it goes down for the restart.
    const restarted = restarter.restart(node.id).then(() => Date.now());
    const result = await finished(uac);
    const downAt = await restarted;

    // What callers feel: every call ran its full length and ended normally.
    expect(result).toEqual({ code: 0, ok: calls, failed: 0 });
    const messages = uac.messages();
    const lastEnd = Math.max(...messages.filter((m) => m.status === 200 && m.cseqMethod === 'BYE').map((m) => m.ts));
    expect(downAt).toBeGreaterThanOrEqual(lastEnd);
    expect(downAt - restartAt).toBeGreaterThan(4000);

    // The collector saw the node go down and boot again, and the node really restarted.
    await waitFor('ast2 back up', () => ast2.collector.stats().connects >= 2 && ast2.collector.stats().up, 30_000);
    const ups = of(ast2.samples, 'node.up', restartAt).map((s) => s.value);
    expect(ups).toContain(0);
    expect(ups.at(-1)).toBe(1);
    expect(total(ast2.samples, 'hangup.abnormal', restartAt)).toBe(0);
    expect(await coreStartup(node)).not.toBe(startupBefore);
  });
});
