import { execFile, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Kafka, logLevel } from 'kafkajs';

/** Shared by the Kafka integration tests: the broker comes from scripts/services/kafka.sh (idempotent). */
export const KAFKA_BROKERS = [`127.0.0.1:${process.env.FORESIGHT_KAFKA_PORT ?? '19092'}`];
const SCRIPT = fileURLToPath(new URL('../../scripts/services/kafka.sh', import.meta.url));
const run = promisify(execFile);

export async function kafkaService(command: 'start' | 'stop' | 'restart' | 'status'): Promise<void> {
  await run('bash', [SCRIPT, command], { timeout: 170_000 });
}

const prefixes: string[] = [];

/** A topic prefix no other test or run uses; deleteTestTopics() removes its topics. */
export function uniquePrefix(name: string): string {
  const prefix = `t-${name}-${randomUUID().slice(0, 8)}`;
  prefixes.push(prefix);
  return prefix;
}

/** Deletes the topics of every prefix handed out in this file, so the broker stays small and restarts fast. */
export async function deleteTestTopics(): Promise<void> {
  const admin = new Kafka({ clientId: 'test-cleanup', brokers: KAFKA_BROKERS, logLevel: logLevel.NOTHING }).admin();
  try {
    await admin.connect();
    const mine = (await admin.listTopics()).filter((t) => prefixes.some((p) => t.startsWith(`${p}.`)));
    if (mine.length > 0) await admin.deleteTopics({ topics: mine });
    prefixes.length = 0;
  } finally {
    await admin.disconnect();
  }
}

export interface ChildLine {
  event: string;
  at: number;
  [field: string]: unknown;
}

/** A test process (run with tsx) whose stdout is one JSON object a line. */
export interface Child {
  lines: ChildLine[];
  kill(): void;
  exited: Promise<number | null>;
}

export function spawnTsChild(script: string, args: string[]): Child {
  const file = fileURLToPath(new URL(script, import.meta.url));
  const proc = spawn(process.execPath, ['--import', 'tsx', file, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: ChildLine[] = [];
  let buffered = '';
  proc.stdout.setEncoding('utf8');
  proc.stdout.on('data', (chunk: string) => {
    buffered += chunk;
    let nl = buffered.indexOf('\n');
    while (nl >= 0) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      try {
        lines.push(JSON.parse(line) as ChildLine);
      } catch {
        // Not a protocol line (a stray log): ignore.
      }
      nl = buffered.indexOf('\n');
    }
  });
  let stderr = '';
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', (chunk: string) => {
    stderr = (stderr + chunk).slice(-4000);
  });
  const exited = new Promise<number | null>((resolve) => {
    proc.on('exit', (code) => {
      if (code !== null && code !== 0) process.stderr.write(`child ${script} exited ${code}: ${stderr}\n`);
      resolve(code);
    });
  });
  return {
    lines,
    exited,
    kill: () => {
      if (proc.exitCode === null && proc.pid !== undefined) proc.kill('SIGKILL');
    },
  };
}
