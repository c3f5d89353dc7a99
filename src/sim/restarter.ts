import type { Restarter } from '../actions/ports.js';
import { ForesightError } from '../errors.js';
import { type Logger, silentLogger } from '../log.js';
import type { SimulatedCluster } from './cluster.js';

export interface SimulatedRestarterOptions {
  logger?: Logger;
}

/**
 * Restarts a node of a SimulatedCluster, like `core restart now`: established calls on it are dropped, it is down for
 * the cluster's restart duration (virtual time), then up and healthy. Resolves once the restart has begun; the caller
 * watches node.up to see it return, as it would with a real node.
 */
export class SimulatedRestarter implements Restarter {
  readonly name = 'simulated';
  private readonly log: Logger;

  constructor(
    private readonly cluster: SimulatedCluster,
    options: SimulatedRestarterOptions = {},
  ) {
    this.log = (options.logger ?? silentLogger()).child({ component: 'simulated-restarter' });
  }

  async restart(nodeId: string): Promise<void> {
    if (!this.cluster.hasNode(nodeId)) {
      throw new ForesightError('FORESIGHT_ERR_NOT_FOUND', `unknown simulated node ${nodeId}`, { details: { nodeId } });
    }
    const dropped = this.cluster.activeCalls(nodeId);
    this.cluster.restart(nodeId);
    this.log.info({ nodeId, dropped, at: this.cluster.now() }, 'simulated restart');
  }
}

/** Compile-time check that the adapter still matches its port. */
export const simulatedRestarterConforms = SimulatedRestarter satisfies new (
  cluster: SimulatedCluster,
  options?: SimulatedRestarterOptions,
) => Restarter;
