import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { KamailioDispatcher } from '../../src/actions/dispatcher/kamailio.js';
import { type SippRun, startUas } from '../helpers/sipp.js';

/** Shared setup for the Kamailio integration tests: the service script, three sipp backends, all destinations active. */

const run = promisify(execFile);
const REPO = resolve(import.meta.dirname, '../..');
const SCRIPT = join(REPO, 'scripts/services/kamailio.sh');

export const SET_ID = 1;
export const BACKEND_PORTS = [5071, 5072, 5073] as const;
export const backendUri = (port: number) => `sip:127.0.0.1:${port}`;

export async function kamailioService(action: 'start' | 'stop' | 'restart' | 'status'): Promise<string> {
  const { stdout, stderr } = await run('bash', [SCRIPT, action], { timeout: 120_000 });
  return `${stdout}${stderr}`;
}

export interface KamailioLab {
  dir: string;
  dispatcher: KamailioDispatcher;
  backends: Map<number, SippRun>;
  /** Brings every backend of set 1 back to `ap` (a fresh start probes them as down until they answer). */
  activateAll(): Promise<void>;
  stop(): Promise<void>;
}

export async function startKamailioLab(): Promise<KamailioLab> {
  await kamailioService('start');
  const dir = mkdtempSync(join(tmpdir(), 'foresight-kamailio-'));
  const dispatcher = new KamailioDispatcher();
  const backends = new Map<number, SippRun>();
  const lab: KamailioLab = {
    dir,
    dispatcher,
    backends,
    activateAll: async () => {
      for (const port of BACKEND_PORTS) await dispatcher.activate(SET_ID, backendUri(port));
    },
    stop: async () => {
      await Promise.all([...backends.values()].map((b) => b.stop()));
      await dispatcher.close();
      // sipp logs live here; keep them when FORESIGHT_KEEP_SIPP_LOGS is set, for a failing run.
      if (!process.env.FORESIGHT_KEEP_SIPP_LOGS) rmSync(dir, { recursive: true, force: true });
    },
  };
  try {
    for (const port of BACKEND_PORTS) backends.set(port, await startUas({ port, dir }));
    await lab.activateAll();
  } catch (err) {
    await lab.stop();
    throw err;
  }
  return lab;
}
