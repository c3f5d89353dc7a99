import type { Dispatcher } from '../actions/ports.js';
import type { HealthCheck } from '../api/deps.js';
import type { Bus } from '../bus/port.js';
import { errorMessage } from '../errors.js';
import type { InfluxExporter } from '../exporters/influx.js';
import type { TelemetrySource } from './collectors.js';
import type { TelemetryOutbox } from './outbox.js';

export interface HealthInputs {
  bus: Bus;
  /** The feature stage's consumer group, whose lag on `telemetry` says whether the loop keeps up. */
  featureGroupId: string;
  outbox: TelemetryOutbox;
  dispatcher: Dispatcher;
  sources: readonly TelemetrySource[];
  exporter: InfluxExporter | null;
}

/** The readiness checks /readyz answers with: the bus, the dispatcher, every telemetry source, the exporter. */
export function loopHealth(inputs: HealthInputs): () => Promise<HealthCheck[]> {
  const { bus, featureGroupId, outbox, dispatcher, sources, exporter } = inputs;
  return async () => {
    const checks: HealthCheck[] = [];
    try {
      const lag = await bus.lag('telemetry', featureGroupId);
      const queue = outbox.stats();
      checks.push({
        name: 'bus',
        ok: queue.queued === 0,
        detail: `telemetry lag ${lag}; outbox queued ${queue.queued}, dropped ${queue.dropped}`,
      });
    } catch (err) {
      checks.push({ name: 'bus', ok: false, detail: errorMessage(err) });
    }
    const out = outbox.stats();
    const oldest =
      out.oldestQueuedTs === null ? 'none' : `${Math.round((Date.now() - out.oldestQueuedTs) / 1000)} s old`;
    // Losing samples is shown, but does not make Foresight unready: the bus check says whether it keeps up.
    checks.push({
      name: 'outbox',
      ok: true,
      detail:
        `queued ${out.queued} (on disk ${out.spooled}, ${out.spooledBytes} bytes; oldest ${oldest}); ` +
        `dropped ${out.dropped} (older than the longest outage kept: ${out.expired})`,
    });
    try {
      const list = await dispatcher.list();
      checks.push({ name: 'dispatcher', ok: true, detail: `${dispatcher.name}: ${list.length} destinations` });
    } catch (err) {
      checks.push({ name: 'dispatcher', ok: false, detail: errorMessage(err) });
    }
    for (const s of sources) checks.push(...s.health());
    if (exporter) {
      const st = exporter.stats();
      // A dead InfluxDB is worth seeing but must not make Foresight unready: it only loses history.
      checks.push({
        name: 'influx',
        ok: true,
        detail: `written ${st.written}, dropped ${st.dropped}, buffered ${st.buffered}`,
      });
    }
    return checks;
  };
}
