import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { KamailioDispatcher } from '../../src/actions/dispatcher/kamailio.js';
import { ActionEngine } from '../../src/actions/engine.js';
import type { Dispatcher } from '../../src/actions/ports.js';
import { SqliteStore } from '../../src/actions/store/sqlite.js';
import { VirtualClock } from '../../src/clock.js';
import type { GuardrailConfig } from '../../src/core/guardrails.js';
import type { AuditKind, AuditRecord } from '../../src/messages.js';
import { RecordingRestarter } from '../helpers/recording-dispatcher.js';
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

/** `except`: backend ports the caller serves itself (e.g. behind a fault-injecting relay); the lab starts no UAS there. */
export async function startKamailioLab(options: { except?: readonly number[] } = {}): Promise<KamailioLab> {
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
    for (const port of BACKEND_PORTS) {
      if (!options.except?.includes(port)) backends.set(port, await startUas({ port, dir }));
    }
    await lab.activateAll();
  } catch (err) {
    await lab.stop();
    throw err;
  }
  return lab;
}

/** An action engine for ast1..ast3 of set 1 on `dispatcher`, on a virtual clock and an in-memory store. */
export function labEngine(dispatcher: Dispatcher, guardrails: Partial<GuardrailConfig> = {}) {
  const clock = new VirtualClock(Date.now());
  const store = new SqliteStore({ path: ':memory:' });
  const audits: AuditRecord[] = [];
  const engine = new ActionEngine({
    dispatcher,
    restarter: new RecordingRestarter(),
    store,
    clock,
    nodes: BACKEND_PORTS.map((port) => ({ nodeId: `ast${port - 5070}`, setId: SET_ID, uri: backendUri(port) })),
    guardrails: {
      maxOutOfServicePerSet: 2,
      maxOutOfServicePercent: 100,
      minActivePerSet: 1,
      cooldownMs: 0,
      ...guardrails,
    },
    timeouts: { dispatcherCallMs: 2000, reconcileIntervalMs: 10_000 },
    retry: { attempts: 2, baseMs: 50, maxMs: 100 },
    onAudit: (r) => audits.push(r),
  });
  return {
    engine,
    store,
    audits,
    /** One reconcile: the engine reconciles at most every reconcileIntervalMs of its clock. */
    reconcile: async () => {
      clock.advanceTo(clock.now() + 10_000);
      await engine.tick();
    },
    kinds: (nodeId: string): AuditKind[] => audits.filter((a) => a.nodeId === nodeId).map((a) => a.kind),
  };
}
