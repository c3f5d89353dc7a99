import { loadConfig } from '../config/load.js';
import { createLogger } from '../log.js';
import { SidecarRuntime } from '../pipeline/sidecar.js';

export async function runSidecar(opts: { config: string }): Promise<void> {
  const config = loadConfig(opts.config);
  const logger = createLogger();
  const runtime = await SidecarRuntime.create(config, logger);
  await runtime.start(config.api.host, config.api.port);
  logger.info(
    {
      nodes: config.nodes.length,
      bus: config.bus.kind,
      dispatcher: config.actions.dispatcher.kind,
      dryRun: config.actions.dryRun,
    },
    `foresight sidecar listening on http://${config.api.host}:${config.api.port}`,
  );
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  await runtime.close();
}
