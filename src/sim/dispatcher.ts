import type { Dispatcher, DispatcherDestination } from '../actions/ports.js';
import { ForesightError } from '../errors.js';
import { type Logger, silentLogger } from '../log.js';
import type { SimNodeView } from './cluster.js';

export interface SimulatedDispatcherOptions {
  name?: string;
  logger?: Logger;
}

/** Kamailio's two-letter FLAGS for a state (domain A.1): a disabled destination is never probed. */
function flagsOf(state: DispatcherDestination['state'], probing: boolean): string {
  const first = state === 'active' ? 'A' : state === 'trying' ? 'T' : state === 'inactive' ? 'I' : 'D';
  return `${first}${probing ? 'P' : 'X'}`;
}

/** One destination as the simulated dispatcher reads it. */
export type DestinationRow = Pick<
  SimNodeView,
  'nodeId' | 'setId' | 'uri' | 'dispatcherState' | 'accepting' | 'latencyAvgMs'
>;

/**
 * What the simulated dispatcher drives: a SimulatedCluster (the demo, replay evaluation), or ConfiguredDestinations
 * (`foresight run` with `actions.dispatcher.kind: simulated`).
 */
export interface DestinationTable {
  nodes(): readonly DestinationRow[];
  setAccepting(nodeId: string, accepting: boolean): void;
}

/**
 * A stand-in for Kamailio's dispatcher list, built from the configured nodes: every destination starts active, and
 * a drain only flips its state here. Lets `foresight run` take its decisions against real telemetry without touching
 * a proxy (nothing routes calls by it).
 */
export class ConfiguredDestinations implements DestinationTable {
  private readonly rows: DestinationRow[];

  constructor(nodes: readonly { id: string; setId: number; uri: string }[]) {
    this.rows = nodes.map((n) => ({
      nodeId: n.id,
      setId: n.setId,
      uri: n.uri,
      dispatcherState: 'active',
      accepting: true,
      latencyAvgMs: null,
    }));
  }

  nodes(): readonly DestinationRow[] {
    return this.rows.map((r) => ({ ...r }));
  }

  setAccepting(nodeId: string, accepting: boolean): void {
    const row = this.rows.find((r) => r.nodeId === nodeId);
    if (!row) throw new ForesightError('FORESIGHT_ERR_NOT_FOUND', `unknown node ${nodeId}`, { details: { nodeId } });
    row.accepting = accepting;
    row.dispatcherState = accepting ? 'active' : 'disabled';
  }
}

/**
 * The dispatcher of a SimulatedCluster (or of ConfiguredDestinations), behaving as Kamailio does with `ds_probing_mode 1`: drain = disabled (`DX`,
 * no new calls, established calls continue), activate = `ap`; a crashed node shows `TP` and then `IP` once the
 * dispatcher's own pings have noticed. Used by `npm start`, the demo and replay evaluation.
 */
export class SimulatedDispatcher implements Dispatcher {
  readonly name: string;
  private readonly log: Logger;

  constructor(
    private readonly table: DestinationTable,
    options: SimulatedDispatcherOptions = {},
  ) {
    this.name = options.name ?? 'simulated';
    this.log = (options.logger ?? silentLogger()).child({ component: 'simulated-dispatcher' });
  }

  async list(): Promise<DispatcherDestination[]> {
    return this.table.nodes().map((n) => ({
      setId: n.setId,
      uri: n.uri,
      state: n.dispatcherState,
      probing: n.accepting,
      flags: flagsOf(n.dispatcherState, n.accepting),
      latencyAvgMs: n.latencyAvgMs,
    }));
  }

  async drain(setId: number, uri: string): Promise<void> {
    const { nodeId, accepting } = this.resolve(setId, uri);
    if (!accepting) return;
    this.table.setAccepting(nodeId, false);
    this.log.info({ setId, uri, nodeId }, 'destination disabled');
  }

  async activate(setId: number, uri: string): Promise<void> {
    const { nodeId, accepting } = this.resolve(setId, uri);
    if (accepting) return;
    this.table.setAccepting(nodeId, true);
    this.log.info({ setId, uri, nodeId }, 'destination activated');
  }

  private resolve(setId: number, uri: string): DestinationRow {
    if (!Number.isInteger(setId) || setId < 0) {
      throw new ForesightError(
        'FORESIGHT_ERR_BAD_REQUEST',
        `dispatcher set id must be a non-negative integer: ${setId}`,
      );
    }
    if (typeof uri !== 'string' || !/^sips?:/i.test(uri)) {
      throw new ForesightError(
        'FORESIGHT_ERR_BAD_REQUEST',
        `dispatcher destination must be a sip: URI: ${String(uri)}`,
      );
    }
    // Case-insensitive, as Kamailio compares destination URIs.
    const wanted = uri.toLowerCase();
    const row = this.table.nodes().find((n) => n.setId === setId && n.uri.toLowerCase() === wanted);
    if (row === undefined) {
      throw new ForesightError('FORESIGHT_ERR_NOT_FOUND', `dispatcher set ${setId} has no destination ${uri}`, {
        details: { setId, uri },
      });
    }
    return row;
  }
}

/** Compile-time check that the adapter still matches its port. */
export const simulatedDispatcherConforms = SimulatedDispatcher satisfies new (
  table: DestinationTable,
  options?: SimulatedDispatcherOptions,
) => Dispatcher;
