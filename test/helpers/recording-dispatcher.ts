/**
 * A small in-memory implementation of our own Dispatcher port for unit tests: it records every call, can fail or
 * hang on demand, and can simulate a reload (every state back to the list-file defaults) or a person using kamcmd.
 */

import type { DestinationState, Dispatcher, DispatcherDestination, Restarter } from '../../src/actions/ports.js';
import { ForesightError } from '../../src/errors.js';

export interface RecordedCall {
  op: 'list' | 'drain' | 'activate';
  setId?: number;
  uri?: string;
}

interface Dest {
  setId: number;
  uri: string;
  state: DestinationState;
  probing: boolean;
}

export class RecordingDispatcher implements Dispatcher {
  readonly name = 'recording';
  readonly calls: RecordedCall[] = [];
  private readonly dests: Dest[];
  private failures: { op: RecordedCall['op'] | 'any'; left: number }[] = [];
  private hang: { op: RecordedCall['op']; release: Promise<void> } | null = null;

  constructor(destinations: { setId: number; uri: string }[]) {
    this.dests = destinations.map((d) => ({ ...d, state: 'active', probing: true }));
  }

  /** The next `count` calls of `op` (or of any op) throw a retriable dispatcher error. */
  failNext(count: number, op: RecordedCall['op'] | 'any' = 'any'): void {
    this.failures.push({ op, left: count });
  }

  clearFailures(): void {
    this.failures = [];
  }

  /** Calls made from now on stop hanging, but calls already stuck stay stuck forever (their caller "crashed"). */
  abandonHang(): void {
    this.hang = null;
  }

  /** Calls of `op` hang (before taking effect) until the returned function is called; never calling it models a crash. */
  hangOn(op: RecordedCall['op']): () => void {
    let release!: () => void;
    this.hang = { op, release: new Promise<void>((r) => (release = r)) };
    return () => {
      this.hang = null;
      release();
    };
  }

  /** dispatcher.reload / Kamailio restart: every destination back to the file flags (8 = active, probing). */
  reload(): void {
    for (const d of this.dests) {
      d.state = 'active';
      d.probing = true;
    }
  }

  /** A person with kamcmd: `set_state a` clears the probing bit, `ap` keeps it, `d` disables. */
  setByHand(uri: string, state: DestinationState, probing = state !== 'disabled'): void {
    const d = this.dests.find((x) => x.uri === uri);
    if (!d) throw new Error(`no destination ${uri}`);
    d.state = state;
    d.probing = probing;
  }

  stateOf(uri: string): DestinationState {
    const d = this.dests.find((x) => x.uri === uri);
    if (!d) throw new Error(`no destination ${uri}`);
    return d.state;
  }

  countOf(op: RecordedCall['op'], uri?: string): number {
    return this.calls.filter((c) => c.op === op && (uri === undefined || c.uri === uri)).length;
  }

  async list(): Promise<DispatcherDestination[]> {
    await this.before('list');
    this.calls.push({ op: 'list' });
    return this.dests.map((d) => ({
      setId: d.setId,
      uri: d.uri,
      state: d.state,
      probing: d.probing,
      flags: `${{ active: 'A', inactive: 'I', disabled: 'D', trying: 'T' }[d.state]}${d.probing ? 'P' : 'X'}`,
      latencyAvgMs: null,
    }));
  }

  async drain(setId: number, uri: string): Promise<void> {
    await this.before('drain');
    this.calls.push({ op: 'drain', setId, uri });
    const d = this.find(setId, uri);
    d.state = 'disabled';
    d.probing = false;
  }

  async activate(setId: number, uri: string): Promise<void> {
    await this.before('activate');
    this.calls.push({ op: 'activate', setId, uri });
    const d = this.find(setId, uri);
    d.state = 'active';
    d.probing = true;
  }

  private find(setId: number, uri: string): Dest {
    const d = this.dests.find((x) => x.setId === setId && x.uri.toLowerCase() === uri.toLowerCase());
    // As the Kamailio adapter reports it (its read-first finds no such destination).
    if (!d) throw new ForesightError('FORESIGHT_ERR_NOT_FOUND', `dispatcher set ${setId} has no destination ${uri}`);
    return d;
  }

  private async before(op: RecordedCall['op']): Promise<void> {
    if (this.hang && this.hang.op === op) await this.hang.release;
    const f = this.failures.find((x) => (x.op === op || x.op === 'any') && x.left > 0);
    if (f) {
      f.left--;
      this.failures = this.failures.filter((x) => x.left > 0);
      throw new ForesightError('FORESIGHT_ERR_DISPATCHER', `simulated ${op} failure`);
    }
  }
}

/**
 * A RecordingDispatcher with Kamailio's reset marker (armResetMarker/resetSinceArmed): reload() (a reload or a
 * restart) drops it, a change by hand leaves it. The marker calls go through list(), so failNext()/hangOn('list')
 * make them fail or hang like a proxy that is down.
 */
export class MarkerRecordingDispatcher extends RecordingDispatcher {
  private marker = false;

  async armResetMarker(): Promise<void> {
    await this.list();
    this.marker = true;
  }

  async resetSinceArmed(): Promise<boolean> {
    await this.list();
    return !this.marker;
  }

  override reload(): void {
    super.reload();
    this.marker = false;
  }
}

/** Restarter fake that records restarts and can fail. */
export class RecordingRestarter implements Restarter {
  readonly name = 'recording';
  readonly restarts: string[] = [];
  failuresLeft = 0;

  async restart(nodeId: string): Promise<void> {
    if (this.failuresLeft > 0) {
      this.failuresLeft--;
      throw new ForesightError('FORESIGHT_ERR_RESTARTER', `simulated restart failure of ${nodeId}`);
    }
    this.restarts.push(nodeId);
  }
}
