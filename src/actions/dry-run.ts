/**
 * Dry-run actuators: they record and log what would have been done and never act. The engine is the same in both
 * modes; only these are swapped in at wiring time.
 */
import type { Logger } from '../log.js';
import { silentLogger } from '../log.js';
import type { DestinationState, Dispatcher, DispatcherDestination, Restarter } from './ports.js';

export interface DryRunAction {
  op: 'drain' | 'activate' | 'restart';
  setId: number | null;
  target: string;
  at: number;
}

export interface DryRunDispatcherOptions {
  /** The real dispatcher, only ever read (list). Without it the destinations below are reported as the baseline. */
  inner?: Dispatcher;
  /** Destinations to report when there is no inner dispatcher (all active). */
  destinations?: { setId: number; uri: string }[];
  logger?: Logger;
  now?: () => number;
}

function key(setId: number, uri: string): string {
  return `${setId}|${uri.toLowerCase()}`;
}

/**
 * Reports the inner dispatcher's list with the would-be changes overlaid, so the engine's reconciliation sees its
 * own dry-run drains as applied and does not mistake them for lost state.
 */
export class DryRunDispatcher implements Dispatcher {
  readonly name: string;
  readonly actions: DryRunAction[] = [];
  private readonly overlay = new Map<string, DestinationState>();
  private readonly logger: Logger;
  private readonly now: () => number;

  constructor(private readonly options: DryRunDispatcherOptions = {}) {
    this.name = `dry-run(${options.inner?.name ?? 'none'})`;
    this.logger = (options.logger ?? silentLogger()).child({ component: 'dry-run-dispatcher' });
    this.now = options.now ?? Date.now;
  }

  async list(): Promise<DispatcherDestination[]> {
    const base: DispatcherDestination[] = this.options.inner
      ? await this.options.inner.list()
      : (this.options.destinations ?? []).map((d) => ({
          setId: d.setId,
          uri: d.uri,
          state: 'active',
          probing: true,
          flags: 'AP',
          latencyAvgMs: null,
        }));
    return base.map((d) => {
      const state = this.overlay.get(key(d.setId, d.uri));
      if (state === undefined) return d;
      const probing = state !== 'disabled';
      return { ...d, state, probing, flags: `${state === 'disabled' ? 'D' : 'A'}${probing ? 'P' : 'X'}` };
    });
  }

  async drain(setId: number, uri: string): Promise<void> {
    this.record('drain', setId, uri);
    this.overlay.set(key(setId, uri), 'disabled');
  }

  async activate(setId: number, uri: string): Promise<void> {
    this.record('activate', setId, uri);
    this.overlay.set(key(setId, uri), 'active');
  }

  private record(op: DryRunAction['op'], setId: number, uri: string): void {
    this.actions.push({ op, setId, target: uri, at: this.now() });
    this.logger.info({ op, setId, uri }, 'dry-run: dispatcher change not applied');
  }
}

export class DryRunRestarter implements Restarter {
  readonly name = 'dry-run';
  readonly actions: DryRunAction[] = [];
  private readonly logger: Logger;
  private readonly now: () => number;

  constructor(options: { logger?: Logger; now?: () => number } = {}) {
    this.logger = (options.logger ?? silentLogger()).child({ component: 'dry-run-restarter' });
    this.now = options.now ?? Date.now;
  }

  async restart(nodeId: string): Promise<void> {
    this.actions.push({ op: 'restart', setId: null, target: nodeId, at: this.now() });
    this.logger.info({ nodeId }, 'dry-run: restart not performed');
  }
}
