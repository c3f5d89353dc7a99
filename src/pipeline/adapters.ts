import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { createKamailioDispatcher } from '../actions/dispatcher/proxy-fleet.js';
import { DryRunDispatcher, DryRunRestarter } from '../actions/dry-run.js';
import type { Dispatcher, Restarter, Store } from '../actions/ports.js';
import { AmiRestarter } from '../actions/restarter/ami.js';
import { CommandRestarter } from '../actions/restarter/command.js';
import { WebhookRestarter } from '../actions/restarter/webhook.js';
import { PostgresStore } from '../actions/store/postgres.js';
import { SqliteStore } from '../actions/store/sqlite.js';
import type { Clock } from '../clock.js';
import { resolveSecret } from '../config/load.js';
import type { ForesightConfig } from '../config/schema.js';
import { ForesightError } from '../errors.js';
import { InfluxExporter } from '../exporters/influx.js';
import type { Logger } from '../log.js';
import { ConfiguredDestinations, SimulatedDispatcher } from '../sim/dispatcher.js';

/**
 * The adapter behind each port, as the config names it. Secrets are resolved here, at the last moment, and handed
 * only to the adapter that needs them.
 */

/** SQLite (its directory created) or PostgreSQL; `sqlitePath` overrides the configured file (`:memory:` for tests). */
export function createStore(config: Readonly<ForesightConfig>, sqlitePath = config.store.path): Store {
  if (config.store.kind === 'postgres') {
    const url = new URL(config.store.url!);
    if (config.store.password) url.password = resolveSecret(config.store.password);
    return new PostgresStore({ connectionString: url.toString(), schema: config.store.schema });
  }
  return createSqliteStore(sqlitePath);
}

/** SQLite in `path`, its directory created; `:memory:` for runs that need no durable state. */
export function createSqliteStore(path: string): Store {
  if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
  return new SqliteStore({ path });
}

/**
 * The dispatcher `actions.dispatcher.kind` names: Kamailio over JSON-RPC, or the simulated one. Outside the demo the
 * simulated one drives a stand-in list of the configured nodes (ConfiguredDestinations), not a proxy.
 */
export function createDispatcher(config: Readonly<ForesightConfig>, logger: Logger): Dispatcher {
  const d = config.actions.dispatcher;
  switch (d.kind) {
    case 'kamailio':
      return createKamailioDispatcher(d, logger);
    case 'simulated':
      return new SimulatedDispatcher(new ConfiguredDestinations(config.nodes), { logger });
  }
}

/** The restarter `actions.restarter.kind` names; the simulated one needs the demo's cluster and is built there. */
export function createRestarter(config: Readonly<ForesightConfig>, logger: Logger): Restarter {
  const r = config.actions.restarter;
  switch (r.kind) {
    case 'ami': {
      const byId = new Map(config.nodes.map((n) => [n.id, n.ami]));
      return new AmiRestarter({
        endpoint: (nodeId) => {
          const ami = byId.get(nodeId);
          return ami
            ? { host: ami.host, port: ami.port, username: ami.username, secret: resolveSecret(ami.secret) }
            : undefined;
        },
        mode: r.amiMode,
        logger,
      });
    }
    case 'command':
      return new CommandRestarter({ command: r.command! });
    case 'webhook':
      return new WebhookRestarter({ url: r.url! });
    case 'simulated':
      throw new ForesightError('FORESIGHT_ERR_CONFIG', 'the simulated restarter exists only in embedded mode');
  }
}

/**
 * Dry-run swaps the actuators for ones that record; the decision logic is the same code path. The dispatcher is
 * still read (list), so dry-run drains are judged against the real destinations.
 */
export function withDryRun(
  config: Readonly<ForesightConfig>,
  actuators: { dispatcher: Dispatcher; restarter: () => Restarter },
  logger: Logger,
  clock?: Clock,
): { dispatcher: Dispatcher; restarter: Restarter } {
  if (!config.actions.dryRun) return { dispatcher: actuators.dispatcher, restarter: actuators.restarter() };
  const now = clock ? () => clock.now() : undefined;
  return {
    dispatcher: new DryRunDispatcher({ inner: actuators.dispatcher, logger, now }),
    restarter: new DryRunRestarter({ logger, now }),
  };
}

/** The InfluxDB exporter when the config asks for one. It only queues: a slow or dead InfluxDB never blocks the loop. */
export function createExporter(config: Readonly<ForesightConfig>, logger: Logger): InfluxExporter | null {
  const influx = config.exporters.influx;
  if (!influx) return null;
  return new InfluxExporter({
    url: influx.url,
    org: influx.org,
    bucket: influx.bucket,
    token: influx.token ? resolveSecret(influx.token) : undefined,
    maxBufferLines: influx.maxBufferLines,
    flushIntervalMs: influx.flushIntervalMs,
    logger: logger.child({ component: 'influx' }),
  });
}

/** The API's bearer tokens with their secrets resolved. */
export function apiTokens(
  config: Readonly<ForesightConfig>,
): { name: string; role: 'viewer' | 'operator'; token: string }[] {
  return config.api.tokens.map((t) => ({ name: t.name, role: t.role, token: resolveSecret(t.token) }));
}
