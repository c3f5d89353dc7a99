import { proxyEndpoints } from '../actions/dispatcher/endpoints.js';
import type { HealthCheck } from '../api/deps.js';
import { resolveSecret } from '../config/load.js';
import type { ForesightConfig } from '../config/schema.js';
import { errorMessage } from '../errors.js';
import { AmiCollector } from '../ingest/ami/collector.js';
import { DbCollector } from '../ingest/db/collector.js';
import { HostCollector } from '../ingest/host/collector.js';
import { OptionsProber } from '../ingest/probe/options-prober.js';
import { HepCollector } from '../ingest/sip/collector.js';
import { KamailioStatsPoller } from '../ingest/sip/kamailio-stats.js';
import type { Logger } from '../log.js';
import type { TelemetrySample } from '../messages.js';

/** A running telemetry source with a start/stop lifecycle and a health line for /readyz. */
export interface TelemetrySource {
  readonly name: string;
  start(): void | Promise<void>;
  stop(): Promise<void>;
  health(): HealthCheck[];
}

export type SampleSink = (samples: TelemetrySample[]) => void;

/**
 * Builds every collector the config asks for, one per node where the source is per node (AMI, database, host
 * metrics) and one for the whole proxy (HEP listener, Kamailio RPC counters). Secrets are resolved here, at the
 * last moment, and handed only to the collector that needs them.
 */
export function createCollectors(
  config: Readonly<ForesightConfig>,
  sink: SampleSink,
  logger: Logger,
): TelemetrySource[] {
  const sources: TelemetrySource[] = [];
  const c = config.collectors;
  const uriByNode = Object.fromEntries(config.nodes.map((n) => [n.id, n.uri]));

  for (const node of config.nodes) {
    if (node.ami) {
      const ami = new AmiCollector({
        nodeId: node.id,
        host: node.ami.host,
        port: node.ami.port,
        username: node.ami.username,
        secret: resolveSecret(node.ami.secret),
        onSamples: sink,
        pollIntervalMs: c.amiPollIntervalMs,
        logger: logger.child({ component: 'ami', nodeId: node.id }),
      });
      sources.push({
        name: `ami:${node.id}`,
        start: () => ami.start(),
        stop: () => ami.stop(),
        health: () => {
          const s = ami.stats();
          return [{ name: `ami:${node.id}`, ok: s.state === 'up', detail: s.lastError ?? s.state }];
        },
      });
    }
    if (node.metricsUrl) {
      const host = new HostCollector({
        nodeId: node.id,
        url: node.metricsUrl,
        profile: node.metricsProfile,
        onSamples: sink,
        intervalMs: c.hostScrapeIntervalMs,
        logger: logger.child({ component: 'host', nodeId: node.id }),
      });
      sources.push({
        name: `host:${node.id}`,
        start: () => host.start(),
        stop: () => host.stop(),
        health: () => {
          const s = host.stats();
          return [{ name: `host:${node.id}`, ok: s.lastError === null, detail: s.lastError ?? `${s.scrapes} scrapes` }];
        },
      });
    }
  }

  const dbTargets = config.nodes
    .filter((n) => n.db)
    .map((n) => ({
      nodeId: n.id,
      kind: n.db!.kind,
      url: n.db!.url,
      password: n.db!.password ? resolveSecret(n.db!.password) : undefined,
      query: n.db!.query,
      timeoutMs: n.db!.timeoutMs,
    }));
  if (dbTargets.length > 0) {
    const db = new DbCollector({
      targets: dbTargets,
      sink,
      intervalMs: c.dbProbeIntervalMs,
      logger: logger.child({ component: 'db' }),
    });
    sources.push({
      name: 'db',
      start: () => db.start(),
      stop: () => db.stop(),
      health: () =>
        db.lastResults().map((r) => ({ name: `db:${r.nodeId}`, ok: r.up, detail: r.up ? 'up' : 'probe failing' })),
    });
  }

  if (c.hep.enabled) {
    const hep = new HepCollector({
      nodes: uriByNode,
      sink,
      host: c.hep.host,
      port: c.hep.port,
      dialogs: { sessionTimerMs: c.hep.dialogSessionMs },
      logger: logger.child({ component: 'hep' }),
    });
    sources.push({
      name: 'hep',
      start: () => hep.start(),
      stop: () => hep.stop(),
      // Not listening (the port was held at start) means no SIP evidence at all: unready, not quietly healthy.
      health: () => [
        hep.listening
          ? { name: 'hep', ok: true, detail: `${hep.stats().datagrams} datagrams` }
          : { name: 'hep', ok: false, detail: `not listening on ${c.hep.host}:${c.hep.port}` },
      ],
    });
  }

  // On unless switched off: the node answering OPTIONS is evidence no other source gives for a drained node.
  if (c.probe.enabled ?? true) {
    const { intervalMs, timeoutMs, bindHost } = c.probe;
    const probe = new OptionsProber({ nodes: uriByNode, sink, intervalMs, timeoutMs, bindHost, logger });
    sources.push({ name: 'probe', start: () => probe.start(), stop: () => probe.stop(), health: () => probe.health() });
  }

  if (config.actions.dispatcher.kind === 'kamailio' && c.kamailioStatsIntervalMs > 0) {
    const poller = new KamailioStatsPoller({
      // Any one proxy's ping timeouts tell about the nodes; the first one is polled.
      url: proxyEndpoints(config.actions.dispatcher)[0]!.url,
      nodes: uriByNode,
      sink,
      intervalMs: c.kamailioStatsIntervalMs,
      timeoutMs: config.actions.dispatcher.timeoutMs,
      logger: logger.child({ component: 'kamailio-stats' }),
    });
    sources.push({
      name: 'kamailio-stats',
      start: () => poller.start(),
      stop: () => poller.stop(),
      health: () => [
        { name: 'kamailio-rpc', ok: poller.lastSnapshot() !== null, detail: `${poller.pollFailures()} failed polls` },
      ],
    });
  }
  return sources;
}

/** Starts every source; one that fails to start is logged and reported unhealthy, never fatal for the others. */
export async function startAll(sources: TelemetrySource[], logger: Logger): Promise<void> {
  for (const s of sources) {
    try {
      await s.start();
    } catch (err) {
      logger.error({ source: s.name, err: errorMessage(err) }, 'telemetry source failed to start');
    }
  }
}
