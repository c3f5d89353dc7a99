import { type ChildProcess, spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

/**
 * SIPp (Debian `sip-tester`) as stand-in Asterisk backends (UAS) and as the caller (UAC), for tests on loopback.
 * Every process runs in the caller's directory with a message log (`-trace_msg`) and statistics (`-trace_stat`),
 * and is stopped by its own PID (SIGTERM; SIGKILL after a grace period).
 */

export const SIPP_FIXTURES = resolve(import.meta.dirname, '../fixtures/sipp');

/** One SIP message from a SIPp `-trace_msg` log. */
export interface SippMessage {
  /** Epoch ms (fractional: SIPp logs microseconds), local wall clock like Date.now(). */
  ts: number;
  direction: 'received' | 'sent';
  /** `INVITE` for requests, null for responses. */
  method: string | null;
  /** Status code for responses, null for requests. */
  status: number | null;
  callId: string | null;
  /** Method named in CSeq (tells a 200 for BYE from a 200 for INVITE). */
  cseqMethod: string | null;
}

const ENTRY_HEADER = /^-{20,} (\d{4})-(\d{2})-(\d{2})[ \t]+(\d{2}):(\d{2}):(\d{2})\.(\d{1,6})\s*$/;

/** Parses a SIPp message log: entries start with a dashed line carrying the local timestamp. */
export function parseMessageLog(text: string): SippMessage[] {
  const out: SippMessage[] = [];
  const lines = text.split(/\r?\n/);
  let i = 0;
  while (i < lines.length) {
    const header = ENTRY_HEADER.exec(lines[i] ?? '');
    i++;
    if (!header) continue;
    const [, y, mo, d, h, mi, s, frac] = header.map((v) => v ?? '');
    const micros = Number((frac ?? '0').padEnd(6, '0'));
    const ts =
      new Date(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s)).getTime() + micros / 1000;
    const kind = lines[i] ?? '';
    const direction = /message sent/i.test(kind) ? 'sent' : 'received';
    i++;
    // Skip the blank line(s) between the kind line and the SIP message.
    while (i < lines.length && (lines[i] ?? '').trim() === '') i++;
    const first = (lines[i] ?? '').trim();
    let callId: string | null = null;
    let cseqMethod: string | null = null;
    for (let j = i + 1; j < lines.length && !ENTRY_HEADER.test(lines[j] ?? '') && (lines[j] ?? '').trim() !== ''; j++) {
      const line = lines[j] ?? '';
      const call = /^(?:Call-ID|i)\s*:\s*(.+)$/i.exec(line);
      if (call) callId = (call[1] ?? '').trim();
      const cseq = /^CSeq\s*:\s*\d+\s+(\S+)/i.exec(line);
      if (cseq) cseqMethod = (cseq[1] ?? '').toUpperCase();
    }
    const response = /^SIP\/2\.0\s+(\d{3})/.exec(first);
    const request = /^([A-Z]+)\s+\S+\s+SIP\/2\.0$/.exec(first);
    out.push({
      ts,
      direction,
      method: request ? (request[1] ?? null) : null,
      status: response ? Number(response[1]) : null,
      callId,
      cseqMethod,
    });
  }
  return out;
}

/** Last data row of a `-trace_stat` CSV (`;`-separated, header first), as numbers where the cell is numeric. */
export function parseStatCsv(text: string): Record<string, number> {
  const rows = text.split(/\r?\n/).filter((l) => l.trim().length > 0);
  const header = rows[0]?.split(';') ?? [];
  const last = rows.length > 1 ? (rows[rows.length - 1]?.split(';') ?? []) : [];
  const out: Record<string, number> = {};
  header.forEach((name, k) => {
    const n = Number(last[k]);
    if (name && Number.isFinite(n)) out[name] = n;
  });
  return out;
}

export interface SippRun {
  readonly pid: number;
  readonly name: string;
  readonly messageFile: string;
  readonly statFile: string;
  /** Resolves when the process exits (SIPp: 0 = every call succeeded, 1 = some failed). */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  messages(): SippMessage[];
  stats(): Record<string, number>;
  stop(): Promise<void>;
}

interface SpawnOptions {
  name: string;
  dir: string;
  args: string[];
}

function spawnSipp({ name, dir, args }: SpawnOptions): SippRun {
  const messageFile = join(dir, `${name}.msg`);
  const statFile = join(dir, `${name}.stat.csv`);
  const child: ChildProcess = spawn(
    'sipp',
    [...args, '-nostdin', '-trace_msg', '-message_file', messageFile, '-trace_stat', '-stf', statFile, '-fd', '1'],
    { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    if (stderr.length < 4000) stderr += chunk.toString('utf8');
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolveExit, reject) => {
    child.once('error', reject);
    child.once('exit', (code, signal) => resolveExit({ code, signal }));
  });
  if (child.pid === undefined) throw new Error(`sipp ${name} did not start: ${stderr}`);
  const pid = child.pid;
  let done = false;
  void exited.then(() => {
    done = true;
  });
  return {
    pid,
    name,
    messageFile,
    statFile,
    exited,
    messages: () => (existsSync(messageFile) ? parseMessageLog(readFileSync(messageFile, 'utf8')) : []),
    stats: () => (existsSync(statFile) ? parseStatCsv(readFileSync(statFile, 'utf8')) : {}),
    stop: async () => {
      if (done) return;
      child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 3000);
      await exited.catch(() => undefined);
      clearTimeout(killer);
    },
  };
}

/** Resolves once the UDP port on 127.0.0.1 is held (our bind fails) or free (it succeeds); rejects after `timeoutMs`. */
async function waitUdpPort(port: number, want: 'taken' | 'free', timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const taken = await new Promise<boolean>((done) => {
      const probe = createSocket('udp4');
      probe.once('error', () => {
        probe.close();
        done(true);
      });
      probe.bind(port, '127.0.0.1', () => probe.close(() => done(false)));
    });
    if (taken === (want === 'taken')) return;
    if (Date.now() > deadline) {
      throw new Error(
        want === 'taken'
          ? `nothing bound udp 127.0.0.1:${port} within ${timeoutMs} ms`
          : `udp 127.0.0.1:${port} is still held by another process`,
      );
    }
    await new Promise((r) => setTimeout(r, 25));
  }
}

export interface UasOptions {
  port: number;
  dir: string;
  scenario?: string;
  /** More SIPp arguments, e.g. `['-timeout', '120s']` so a forgotten backend stops by itself. */
  extraArgs?: string[];
}

/** A backend answering INVITEs with Record-Route copied (and OPTIONS with 200 via `-aa`), until stopped. */
export async function startUas({ port, dir, scenario = 'uas_rr.xml', extraArgs = [] }: UasOptions): Promise<SippRun> {
  // A backend of an earlier test still shutting down would answer in place of this one, or make its bind fail.
  await waitUdpPort(port, 'free', 5000);
  const run = spawnSipp({
    name: `uas-${port}`,
    dir,
    args: ['-sf', join(SIPP_FIXTURES, scenario), '-i', '127.0.0.1', '-p', String(port), '-aa', ...extraArgs],
  });
  try {
    await waitUdpPort(port, 'taken', 5000);
    // SIPp that could not bind (or took a bad scenario) exits at once: say so here, not as calls that go elsewhere.
    const early = await Promise.race([run.exited, new Promise<null>((r) => setTimeout(() => r(null), 150))]);
    if (early !== null) throw new Error(`sipp ${run.name} exited at start (code ${early.code})`);
  } catch (err) {
    await run.stop();
    throw err;
  }
  return run;
}

export interface UacOptions {
  dir: string;
  /** SIPp's own port. */
  port: number;
  calls: number;
  /** New calls per second. */
  rate: number;
  /** How long each call stays up before the caller sends BYE. */
  durationMs: number;
  target?: string;
  /** Request-URI user (`[service]`), e.g. the extension dialled on an Asterisk node. Default `svc`. */
  service?: string;
  scenario?: string;
  /** Hard stop for the whole run. */
  timeoutS?: number;
  name?: string;
}

/** A caller placing `calls` calls through the proxy; exits by itself (code 0 when every call completed). */
export function startUac(options: UacOptions): SippRun {
  const { dir, port, calls, rate, durationMs } = options;
  return spawnSipp({
    name: options.name ?? `uac-${port}`,
    dir,
    args: [
      options.target ?? '127.0.0.1:5060',
      '-sf',
      join(SIPP_FIXTURES, options.scenario ?? 'uac_rr.xml'),
      '-s',
      options.service ?? 'svc',
      '-i',
      '127.0.0.1',
      '-p',
      String(port),
      '-m',
      String(calls),
      '-r',
      String(rate),
      '-d',
      String(durationMs),
      '-timeout',
      `${options.timeoutS ?? 60}s`,
      '-timeout_error',
    ],
  });
}

/** INVITEs a backend received (first copy of each Call-ID; retransmissions are not new calls). */
export function receivedInvites(messages: SippMessage[]): { callId: string; ts: number }[] {
  return firstInvites(messages, 'received');
}

/** INVITEs a caller sent (first copy of each Call-ID). */
export function sentInvites(messages: SippMessage[]): { callId: string; ts: number }[] {
  return firstInvites(messages, 'sent');
}

function firstInvites(messages: SippMessage[], direction: SippMessage['direction']): { callId: string; ts: number }[] {
  const seen = new Map<string, number>();
  for (const m of messages) {
    if (m.direction === direction && m.method === 'INVITE' && m.callId && !seen.has(m.callId)) seen.set(m.callId, m.ts);
  }
  return [...seen].map(([callId, ts]) => ({ callId, ts }));
}

/** Call-IDs for which the backend received a BYE and answered it 200. */
export function completedByes(messages: SippMessage[]): Set<string> {
  const byeIn = new Set<string>();
  const done = new Set<string>();
  for (const m of messages) {
    if (!m.callId) continue;
    if (m.direction === 'received' && m.method === 'BYE') byeIn.add(m.callId);
    if (m.direction === 'sent' && m.status === 200 && m.cseqMethod === 'BYE' && byeIn.has(m.callId)) done.add(m.callId);
  }
  return done;
}
