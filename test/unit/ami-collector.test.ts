import { afterEach, describe, expect, it } from 'vitest';
import { AmiCollector, type AmiCollectorOptions } from '../../src/ingest/ami/collector.js';
import { HangupCauses, samplesFromEvent } from '../../src/ingest/ami/events.js';
import { AmiFrameDecoder } from '../../src/ingest/ami/frame.js';
import { isMetricName, type MetricName, type TelemetrySample } from '../../src/messages.js';
import { AmiReplayServer, type AmiReplayServerOptions, loadAmiFixture } from '../helpers/ami-replay-server.js';

/** Polls a condition on the event loop; fails with the message after a generous bound (not a timing assertion). */
async function until(cond: () => boolean, what: string, limitMs = 8000): Promise<void> {
  const end = Date.now() + limitMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()?.();
});

async function setup(serverOpts: AmiReplayServerOptions = {}, opts: Partial<AmiCollectorOptions> = {}) {
  const server = await AmiReplayServer.start(serverOpts);
  const samples: TelemetrySample[] = [];
  const collector = new AmiCollector({
    nodeId: 'ast1',
    host: '127.0.0.1',
    port: server.port,
    username: 'sidecar',
    secret: 'good',
    pollIntervalMs: 60_000,
    keepAliveIntervalMs: 60_000,
    actionTimeoutMs: 300,
    backoff: { initialMs: 20, maxMs: 100 },
    random: () => 0.5,
    onSamples: (s) => samples.push(...s),
    ...opts,
  });
  cleanups.push(async () => {
    await collector.stop();
    await server.close();
  });
  collector.start();
  const of = (metric: MetricName) => samples.filter((s) => s.metric === metric).map((s) => s.value);
  return { server, collector, samples, of };
}

describe('event mapping', () => {
  const decode = (fixture: string) => new AmiFrameDecoder().push(loadAmiFixture(fixture));
  const map = (fixture: string, opts = {}) =>
    decode(fixture).flatMap((f) => samplesFromEvent(f, 1000, { nodeId: 'ast1', ...opts }));

  it('maps calls and hangup causes: 16 completed, 34 in Ring failed, 41 while Up dropped', () => {
    const byMetric = (s: TelemetrySample[]) => s.map((x) => `${x.metric}=${x.value}`);
    expect(byMetric(map('events-calls'))).toEqual([
      'calls.started=1',
      'calls.completed=1',
      'calls.started=1',
      'hangup.abnormal=1',
      'calls.failed=1',
      'hangup.abnormal=1',
      'calls.dropped=1',
    ]);
    expect(map('events-calls').every((s) => s.source === 'ami' && s.nodeId === 'ast1' && s.ts === 1000)).toBe(true);
  });

  describe('normal ends captured from a real Asterisk 22.10.1 node', () => {
    const classify = (fixture: string, causes?: HangupCauses) =>
      decode(fixture)
        .flatMap((f) => samplesFromEvent(f, 1000, { nodeId: 'ast1', callChannelPrefix: 'PJSIP/kamailio-' }, causes))
        .map((x) => `${x.metric}=${x.value}`);

    it('a caller BYE: Hangup says Cause 0, the SoftHangupRequest before it 16; counted completed', () => {
      const hangup = decode('asterisk22-caller-bye').find((f) => f.fields.event === 'Hangup');
      expect(hangup?.fields).toMatchObject({ cause: '0', 'cause-txt': 'Unknown', channelstate: '6' });
      // On the Hangup alone this normal end looked abnormal; the request's cause makes it completed.
      expect(classify('asterisk22-caller-bye')).toEqual(['calls.started=1', 'hangup.abnormal=1']);
      const causes = new HangupCauses();
      expect(classify('asterisk22-caller-bye', causes)).toEqual(['calls.started=1', 'calls.completed=1']);
      expect(causes.size).toBe(0);
    });

    it('a dialplan Hangup(): Cause 16 on the Hangup itself; counted completed', () => {
      expect(classify('asterisk22-callee-hangup', new HangupCauses())).toEqual([
        'calls.started=1',
        'calls.completed=1',
      ]);
    });
  });

  it('HangupCauses: a non-zero cause on the Hangup wins; unknown stays unknown; memory is bounded', () => {
    const causes = new HangupCauses();
    causes.request({ uniqueid: 'a', cause: '16' });
    expect(causes.take({ uniqueid: 'a', cause: '41' })).toBe(41);
    expect(causes.take({ uniqueid: 'b', cause: '0' })).toBe(0);
    expect(causes.take({ uniqueid: 'c' })).toBeNull();
    causes.request({ uniqueid: 'd' }); // a HangupRequest without a cause is nothing to remember
    expect(causes.size).toBe(0);
    for (let i = 0; i < 10_005; i++) causes.request({ uniqueid: `x${i}`, cause: '16' });
    expect(causes.size).toBe(10_000);
    expect(causes.take({ uniqueid: 'x0', cause: '0' })).toBe(0); // the oldest was forgotten
    expect(causes.take({ uniqueid: 'x10004', cause: '0' })).toBe(16);
  });

  it('filters calls by channel prefix', () => {
    expect(map('events-calls', { callChannelPrefix: 'PJSIP/other-' })).toEqual([]);
  });

  it('maps ContactStatus RTT (skipping the unreachable 0) and RTCP jitter and loss', () => {
    const s = map('events-media');
    expect(s.map((x) => [x.metric, x.value])).toEqual([
      ['sip.options_rtt_ms', 1.843],
      ['rtcp.jitter_ms', 41 / 8],
      ['rtcp.loss_pct', (3 / 256) * 100],
    ]);
    expect(s.every((x) => isMetricName(x.metric) && Number.isFinite(x.value))).toBe(true);
  });

  it('maps FullyBooted and Shutdown to node.up', () => {
    expect(map('login-success').map((s) => s.value)).toEqual([1]);
    expect(map('events-shutdown').map((s) => [s.metric, s.value])).toEqual([['node.up', 0]]);
  });
});

describe('AmiCollector against the replay server', () => {
  it('logs in, sets the event mask, polls and turns events into samples', async () => {
    const { server, collector, of } = await setup();
    await until(() => of('taskprocessor.max_queue').length > 0, 'first poll');
    expect(of('node.up')).toContain(1);
    expect(of('channels.active')).toEqual([2]);
    expect(of('taskprocessor.max_queue')).toEqual([12]);
    const login = server.actions('login')[0];
    expect(login?.fields.username).toBe('sidecar');
    expect(server.actions('events')[0]?.fields.eventmask).toBe('system,call,reporting');

    server.sendEvents('events-calls');
    server.sendEvents('events-media');
    await until(() => of('rtcp.loss_pct').length > 0, 'media events');
    expect(of('calls.started')).toEqual([1, 1]);
    expect(of('calls.completed')).toEqual([1]);
    expect(of('calls.failed')).toEqual([1]);
    expect(of('calls.dropped')).toEqual([1]);
    expect(of('sip.options_rtt_ms')).toEqual([1.843]);
    const stats = collector.stats();
    expect(stats).toMatchObject({ state: 'up', up: true, connects: 1 });
    expect(stats.deviceStates).toEqual({ 'PJSIP/kamailio': 'NOT_INUSE' });
    expect(JSON.stringify(stats)).not.toContain('good'); // the secret never reaches the health counters
  });

  it('counts a real caller BYE (Hangup Cause 0) as completed: causes are kept per session', async () => {
    const { server, collector, of } = await setup();
    await until(() => collector.stats().up, 'login');
    server.sendEvents('asterisk22-caller-bye');
    server.sendEvents('asterisk22-callee-hangup');
    await until(() => of('calls.completed').length === 2, 'both hangups');
    expect(of('calls.started')).toEqual([1, 1]);
    expect(of('hangup.abnormal')).toEqual([]);
  });

  it('parses the legacy Follows form of the taskprocessor command', async () => {
    const { of } = await setup({ commandForm: 'legacy', banner: 'banner-13' });
    await until(() => of('taskprocessor.max_queue').length > 0, 'first poll');
    expect(of('taskprocessor.max_queue')).toEqual([899]);
  });

  it('reconnects with backoff after a disconnect and reports node.up 0 meanwhile', async () => {
    const { server, collector, of } = await setup();
    await until(() => collector.stats().up, 'first login');
    server.setRefusing(true);
    server.dropAll();
    await until(() => collector.stats().connectFailures >= 2, 'failed reconnect attempts');
    expect(collector.stats().up).toBe(false);
    expect(of('node.up').at(-1)).toBe(0);
    expect(of('node.up').filter((v) => v === 0).length).toBeGreaterThanOrEqual(3);
    server.setRefusing(false);
    await until(() => collector.stats().connects === 2 && collector.stats().up, 'reconnect');
    expect(collector.stats().disconnects).toBe(1);
    expect(server.actions('login')).toHaveLength(2);
    expect(of('node.up').at(-1)).toBe(1);
  });

  it('backs off exponentially with jitter, capped', async () => {
    const { collector } = await setup({}, { backoff: { initialMs: 100, maxMs: 1000 }, random: () => 0 });
    expect([0, 1, 2, 3, 4, 5].map((n) => collector.backoffDelay(n))).toEqual([50, 100, 200, 400, 500, 500]);
  });

  it('counts and survives garbage bytes between frames', async () => {
    const { server, collector, of } = await setup();
    await until(() => collector.stats().up, 'login');
    server.sendRaw(Buffer.from([0x00, 0xff, 0x13, 0x37, 0x0d, 0x0a, 0x0d, 0x0a]));
    server.sendRaw('this is not AMI\r\nat all\r\n\r\n');
    server.sendEvents('events-calls');
    await until(() => of('calls.dropped').length > 0, 'events after garbage');
    expect(collector.stats().decoder.malformedFrames).toBe(2);
    expect(collector.stats().connects).toBe(1);
  });

  it('marks a stalled node as not answering and reconnects', async () => {
    const { server, collector, of } = await setup({}, { keepAliveIntervalMs: 50 });
    await until(() => collector.stats().up, 'login');
    const before = of('node.up').length;
    server.setStalled(true);
    await until(() => collector.stats().stalls >= 1, 'stall detection');
    // node.up 0 follows the stall once the session has closed (asynchronously), whatever comes after it.
    await until(() => of('node.up').slice(before).includes(0), 'node.up 0 after the stall');
    server.setStalled(false);
    await until(() => collector.stats().connects >= 2 && collector.stats().up, 'reconnect after stall');
  });

  it('reports a refused login and keeps retrying without crashing', async () => {
    const { collector, of } = await setup({ secret: 'other' });
    await until(() => collector.stats().loginFailures >= 2, 'login failures');
    expect(collector.stats().lastError).toMatch(/Authentication failed/);
    expect(collector.stats().lastError).not.toContain('good');
    expect(of('node.up').every((v) => v === 0)).toBe(true);
  });

  it('stops cleanly and closes its session', async () => {
    const { server, collector } = await setup();
    await until(() => collector.stats().up, 'login');
    await collector.stop();
    expect(collector.stats().state).toBe('stopped');
    await until(() => server.sessions === 0, 'server sees the close');
  });
});
