import { ForesightError } from '../../errors.js';
import type { SimulatedCluster } from '../../ingest/simulator/cluster.js';
import { type Logger, silentLogger } from '../../log.js';
import type { Dispatcher, DispatcherDestination } from '../ports.js';

export interface SimulatedDispatcherOptions {
  name?: string;
  logger?: Logger;
}

/** Kamailio's two-letter FLAGS for a state (domain A.1): a disabled destination is never probed. */
function flagsOf(state: DispatcherDestination['state'], probing: boolean): string {
  const first = state === 'active' ? 'A' : state === 'trying' ? 'T' : state === 'inactive' ? 'I' : 'D';
  return `${first}${probing ? 'P' : 'X'}`;
}

/**
 * The dispatcher of a SimulatedCluster, behaving as Kamailio does with `ds_probing_mode 1`: drain = disabled (`DX`,
 * no new calls, established calls continue), activate = `ap`; a crashed node shows `TP` and then `IP` once the
 * dispatcher's own pings have noticed. Used by `npm start`, the demo and replay evaluation.
 */
export class SimulatedDispatcher implements Dispatcher {
  readonly name: string;
  private readonly log: Logger;

  constructor(
    private readonly cluster: SimulatedCluster,
    options: SimulatedDispatcherOptions = {},
  ) {
    this.name = options.name ?? 'simulated';
    this.log = (options.logger ?? silentLogger()).child({ component: 'simulated-dispatcher' });
  }

  async list(): Promise<DispatcherDestination[]> {
    return this.cluster.nodes().map((n) => ({
      setId: n.setId,
      uri: n.uri,
      state: n.dispatcherState,
      probing: n.accepting,
      flags: flagsOf(n.dispatcherState, n.accepting),
      latencyAvgMs: n.latencyAvgMs,
    }));
  }

  async drain(setId: number, uri: string): Promise<void> {
    const nodeId = this.resolve(setId, uri);
    if (!this.cluster.nodeView(nodeId).accepting) return;
    this.cluster.setAccepting(nodeId, false);
    this.log.info({ setId, uri, nodeId }, 'destination disabled');
  }

  async activate(setId: number, uri: string): Promise<void> {
    const nodeId = this.resolve(setId, uri);
    if (this.cluster.nodeView(nodeId).accepting) return;
    this.cluster.setAccepting(nodeId, true);
    this.log.info({ setId, uri, nodeId }, 'destination activated');
  }

  private resolve(setId: number, uri: string): string {
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
    const nodeId = setId === this.cluster.options.setId ? this.cluster.nodeIdByUri(uri) : undefined;
    if (nodeId === undefined) {
      throw new ForesightError('FORESIGHT_ERR_NOT_FOUND', `dispatcher set ${setId} has no destination ${uri}`, {
        details: { setId, uri },
      });
    }
    return nodeId;
  }
}

/** Compile-time check that the adapter still matches its port. */
export const simulatedDispatcherConforms = SimulatedDispatcher satisfies new (
  cluster: SimulatedCluster,
  options?: SimulatedDispatcherOptions,
) => Dispatcher;
