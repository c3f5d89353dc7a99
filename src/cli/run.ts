import { hostname } from 'node:os';
import { loadConfig } from '../config/load.js';
import { createLogger } from '../log.js';
import { type LeaderElection, SidecarRuntime } from '../pipeline/sidecar.js';

export async function runSidecar(opts: { config: string }): Promise<void> {
  const config = loadConfig(opts.config);
  const logger = createLogger();
  const runtime = await SidecarRuntime.create(config, logger);
  let election: LeaderElection | undefined;
  if (config.bus.kind === 'kafka') {
    // With Kafka, several replicas may run: leadership is held through a single-partition control topic.
    const { KafkaLeaderElection } = await import('../bus/leader.js');
    let listener: (leader: boolean) => void | Promise<void> = () => {};
    const kafkaElection = new KafkaLeaderElection({
      brokers: [...config.bus.kafka.brokers],
      topicPrefix: config.bus.kafka.topicPrefix,
      replicaId: `${hostname()}-${process.pid}`,
      onChange: (leader) => listener(leader),
      logger,
    });
    election = {
      start: () => kafkaElection.start(),
      stop: () => kafkaElection.stop(),
      isLeader: () => kafkaElection.isLeader(),
      onChange: (l) => {
        listener = l;
      },
    };
  }
  await runtime.start(config.api.host, config.api.port, election);
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
  await election?.stop();
  await runtime.close();
}
