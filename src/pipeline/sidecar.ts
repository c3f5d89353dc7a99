import { createBus } from '../bus/factory.js';
import type { ForesightConfig } from '../config/schema.js';
import type { Logger } from '../log.js';
import { apiTokens, createDispatcher, createExporter, createRestarter, createStore, withDryRun } from './adapters.js';
import { assemble, type Loop, type LoopParts } from './assemble.js';
import { createCollectors } from './collectors.js';
import { lifecycleParts } from './model-lifecycle.js';

/**
 * The parts `foresight run` chooses: the real collectors of the configured nodes, the configured bus and store, the
 * dispatcher and restarter the config names (Kamailio and AMI in production), the exporter, and the API with its
 * tokens. Time is wall time.
 */
export async function sidecarParts(config: Readonly<ForesightConfig>, logger: Logger): Promise<LoopParts> {
  const nodes = config.nodes.map((n) => ({ nodeId: n.id, setId: n.setId, uri: n.uri }));
  const bus = await createBus(config, logger);
  await bus.ensureTopics();
  const store = createStore(config);
  await store.init();
  const dispatcherLogger = logger.child({ component: 'dispatcher' });
  if (config.actions.dispatcher.kind === 'simulated') {
    dispatcherLogger.warn('actions.dispatcher.kind is simulated: drains change a stand-in list, not Kamailio');
  }
  const actuators = withDryRun(
    config,
    {
      dispatcher: createDispatcher(config, dispatcherLogger),
      restarter: () => createRestarter(config, logger.child({ component: 'restarter' })),
    },
    dispatcherLogger,
  );
  const { scorer, scorerInfo, model } = await lifecycleParts({
    config,
    logger,
    bus,
    store,
    nodes,
    startedAt: Date.now(),
  });
  return {
    config,
    logger,
    nodes,
    bus,
    store,
    ...actuators,
    scorer,
    scorerInfo,
    ...(model ? { model } : {}),
    sources: (sink) => createCollectors(config, sink, logger),
    exporter: createExporter(config, logger),
    historyLimit: 8640,
    api: { tokens: apiTokens(config), openLocalMode: config.api.openLocalMode },
  };
}

/** Foresight as a sidecar next to Kamailio: the loop on `foresight run`'s parts. */
export async function createSidecar(config: Readonly<ForesightConfig>, logger: Logger): Promise<Loop> {
  return assemble(await sidecarParts(config, logger));
}
