/**
 * The replay server's fixtures (test/fixtures/ami) against what a real Asterisk 22 node says today: each action the
 * collector and restarter send is sent to a lab node, and the recorded reply must have the same frames with the same
 * keys (values differ: times, ids, counts). With FORESIGHT_CAPTURE_AMI=1 the live replies are stored as the fixtures
 * first (a session with two calls up, and a restart for the Shutdown event), so that the unit and chaos tests replay
 * the Asterisk that ships. Fixtures of older releases (banner-13/16/18, the legacy Command forms) are not touched.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AmiRestarter } from '../../src/actions/restarter/ami.js';
import { waitFor } from '../chaos/env.js';
import { RawAmi } from '../helpers/ami-raw.js';
import { openAmiTap } from '../helpers/ami-tap.js';
import { type SippRun, startUac } from '../helpers/sipp.js';
import { ASTERISK_START_TIMEOUT_MS, type AsteriskNode, amiEndpoint, startAsteriskNodes } from './asterisk-env.js';

const FIXTURES = resolve(import.meta.dirname, '../fixtures/ami');
const CAPTURE = process.env.FORESIGHT_CAPTURE_AMI === '1';

/** Frames of an AMI text: the first line (Response:/Event:/banner) and the sorted keys of the rest. */
function shape(text: string): string[] {
  return text
    .split('\n\n')
    .map((f) => f.trim())
    .filter((f) => f.length > 0)
    .map((f) => {
      const lines = f.split('\n');
      const keys = [...new Set(lines.slice(1).map((l) => l.slice(0, l.indexOf(':'))))].sort();
      return `${lines[0]?.replace(/^(Asterisk Call Manager)\/.*$/, '$1')} | ${keys.join(',')}`;
    });
}

/** Events in a reply whose rows vary with the node's state (one per channel, one per module) count once. */
const distinct = (frames: string[]) => [...new Set(frames)];

let node: AsteriskNode;
let dir: string;
let calls: SippRun | undefined;
const live = new Map<string, string>();

beforeAll(async () => {
  [node] = (await startAsteriskNodes(3)).slice(2) as [AsteriskNode];
  dir = mkdtempSync(join(tmpdir(), 'foresight-amifix-'));
  const ami = await RawAmi.open(node.amiPort);
  try {
    live.set('banner-22', ami.banner());
    const bad = await RawAmi.open(node.amiPort);
    live.set('login-failure', await bad.send({ Action: 'Login', ActionID: 'l0', Username: node.amiUser, Secret: 'x' }));
    bad.close();
    // The collector's login: with its event classes, a booted node follows the reply with FullyBooted.
    const first = await RawAmi.open(node.amiPort);
    const login = { Action: 'Login', ActionID: 'l1', Username: node.amiUser, Secret: node.amiSecret };
    live.set('login-success', await first.send({ ...login, Events: 'system,call,reporting' }, 'Event: FullyBooted'));
    first.close();
    await ami.send({ ...login, Events: 'off' });
    // Two calls up during the session, so CoreShowChannels lists real channels.
    calls = startUac({
      dir,
      port: 5396,
      target: `127.0.0.1:${node.sipPort}`,
      service: 'hold',
      calls: 2,
      rate: 10,
      durationMs: 8000,
      timeoutS: 30,
    });
    await waitFor(
      'both calls up',
      () => calls?.messages().filter((m) => m.status === 200 && m.cseqMethod === 'INVITE').length === 2,
      10_000,
      100,
    );
    live.set('ping', await ami.send({ Action: 'Ping', ActionID: 'p1' }));
    live.set('corestatus', await ami.send({ Action: 'CoreStatus', ActionID: 'cs1' }));
    live.set(
      'coreshowchannels',
      await ami.send({ Action: 'CoreShowChannels', ActionID: 'csc1' }, 'EventList: Complete'),
    );
    const tp = { Action: 'Command', ActionID: 'tp-1', Command: 'core show taskprocessors' };
    live.set('command-taskprocessors', await ami.send(tp));
    live.set('command-unknown', await ami.send({ Action: 'Command', ActionID: 'c1', Command: 'core show nonsense' }));
    live.set('unknown-action', await ami.send({ Action: 'NoSuchAction', ActionID: 'u1' }));
    live.set('events-ack', await ami.send({ Action: 'Events', ActionID: 'e1', EventMask: 'system,call,reporting' }));
  } finally {
    ami.close();
  }
  await calls?.exited;
  // A restart with nothing up: what a session with the system class sees as the node goes down.
  const tap = await openAmiTap({
    port: node.amiPort,
    username: node.amiUser,
    secret: node.amiSecret,
    events: 'system',
  });
  await new AmiRestarter({ endpoint: () => amiEndpoint(node), timeoutMs: 30_000 }).restart(node.id);
  await waitFor('the Shutdown event', () => tap.eventsSince(0).some((e) => e.startsWith('Event: Shutdown')), 5000);
  live.set('events-shutdown', `${tap.eventsSince(0).filter((e) => e.startsWith('Event: Shutdown'))[0]}\n\n`);
  tap.close();
  await waitFor(
    'the node back',
    async () => {
      (await RawAmi.open(node.amiPort)).close();
      return true;
    },
    30_000,
    300,
  );

  if (CAPTURE) {
    // The taskprocessor table is stored by asterisk-precursor.test.ts, from a node with a backlog.
    for (const [name, text] of live) {
      if (name !== 'command-taskprocessors') writeFileSync(join(FIXTURES, `${name}.ami`), text);
    }
  }
}, ASTERISK_START_TIMEOUT_MS);

afterAll(async () => {
  await calls?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('the AMI fixtures speak the Asterisk that ships', () => {
  it.each([
    'banner-22',
    'login-success',
    'login-failure',
    'ping',
    'corestatus',
    'coreshowchannels',
    'command-taskprocessors',
    'command-unknown',
    'unknown-action',
    'events-ack',
    'events-shutdown',
  ])('%s has the frames and keys a real node sends', (name) => {
    const recorded = readFileSync(join(FIXTURES, `${name}.ami`), 'utf8');
    expect(distinct(shape(recorded))).toEqual(distinct(shape(live.get(name) ?? '')));
  });

  it('the taskprocessor table has the columns of the release', () => {
    const header = (t: string) =>
      t
        .split('\n')
        .find((l) => l.includes('Processor'))
        ?.replace(/\s+/g, ' ');
    expect(header(readFileSync(join(FIXTURES, 'command-taskprocessors.ami'), 'utf8'))).toBe(
      header(live.get('command-taskprocessors') ?? ''),
    );
  });
});
