import { hostname } from 'node:os';
import { loadConfig } from '../config/load.js';
import { errorMessage, isRetriable } from '../errors.js';
import { createLogger, type Logger } from '../log.js';
import type { LeaderElection } from '../pipeline/leadership.js';
import { createSidecar } from '../pipeline/sidecar.js';

export async function runSidecar(opts: { config: string }): Promise<void> {
  const config = loadConfig(opts.config);
  const logger = createLogger();
  const loop = await createWithRetry(() => createSidecar(config, logger), logger);
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
  await loop.start({ election, tickEveryMs: 1000, listen: { host: config.api.host, port: config.api.port } });
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
  await loop.close();
}

/**
 * Kafka still electing a controller, PostgreSQL restarting: dependencies that are briefly unreachable at start-up are
 * waited for (with backoff, up to five minutes) instead of exiting and leaving it to a supervisor; a configuration
 * mistake fails at once.
 */
async function createWithRetry<T>(create: () => Promise<T>, logger: Logger, deadlineMs = 300_000): Promise<T> {
  const started = Date.now();
  for (let attempt = 1; ; attempt++) {
    try {
      return await create();
    } catch (err) {
      if (!isRetriable(err) || Date.now() - started > deadlineMs) throw err;
      const delay = Math.min(30_000, 500 * 2 ** Math.min(attempt, 6));
      logger.warn({ attempt, err: errorMessage(err), retryInMs: delay }, 'a dependency is not reachable yet; retrying');
      await new Promise((r) => setTimeout(r, delay));
    }
  }
}
