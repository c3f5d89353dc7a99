import { ForesightError } from '../errors.js';
import { parseDuration } from './duration.js';

/** A telemetry topic's time range, as `foresight train --kafka` takes it. */
export interface KafkaTopicRange {
  /** The Kafka topic's full name, e.g. `foresight.telemetry`. */
  topic: string;
  /** The bus's topic prefix: the topic name without its `.telemetry`. */
  topicPrefix: string;
  /** Epoch ms, inclusive. */
  fromTs: number;
  /** Epoch ms, exclusive. */
  toTs: number;
}

const USAGE =
  'use TOPIC@FROM..TO, e.g. foresight.telemetry@2026-11-20T00:00Z..2026-11-21T00:00Z or foresight.telemetry@24h..now';

function rangeError(spec: string, why: string): ForesightError {
  return new ForesightError('FORESIGHT_ERR_BAD_REQUEST', `--kafka ${JSON.stringify(spec)}: ${why}; ${USAGE}`);
}

/**
 * One end of a range: epoch ms (digits), `now`, an age before now (`24h`, `90m`, `1d12h`), or an ISO 8601 date-time.
 * ISO text must carry a date; Date.parse alone accepts strings such as "1" or "May" that are surely typos here.
 */
function parsePoint(text: string, spec: string, now: number): number {
  const ms = readPoint(text.trim(), now);
  // Beyond ±8.64e15 ms a JavaScript Date (and so any report of the range) cannot represent the time.
  if (ms === null || !(Math.abs(ms) <= 8.64e15)) {
    throw rangeError(spec, `cannot read the time "${text}" (epoch ms, now, an age like 24h, or ISO 8601)`);
  }
  return ms;
}

function readPoint(t: string, now: number): number | null {
  if (t === 'now') return now;
  if (/^\d{10,}$/.test(t)) return Number(t);
  if (/^\d+(\.\d+)?(ms|s|m|h|d)(\d+(\.\d+)?(ms|s|m|h|d))*$/.test(t)) return now - parseDuration(t);
  if (/^\d{4}-\d{2}-\d{2}([T ][\d:.]+(Z|[+-]\d{2}:?\d{2})?)?$/.test(t)) {
    const ms = Date.parse(t);
    if (Number.isFinite(ms)) return ms;
  }
  return null;
}

/** Kafka topic names: ASCII letters, digits, '.', '_' and '-', at most 249 characters. */
const TOPIC_NAME = /^[A-Za-z0-9._-]{1,249}$/;

/**
 * Parses `TOPIC@FROM..TO` (TO may be left out: up to now). Only the telemetry topic holds what training reads, so the
 * topic must be `<prefix>.telemetry`; the prefix tells the bus adapter which topics it is looking at.
 */
export function parseKafkaRange(spec: string, now = Date.now()): KafkaTopicRange {
  const at = spec.indexOf('@');
  if (at <= 0) throw rangeError(spec, 'no TOPIC@ in front of the range');
  const topic = spec.slice(0, at).trim();
  if (!TOPIC_NAME.test(topic)) throw rangeError(spec, `"${topic}" is not a Kafka topic name`);
  if (!topic.endsWith('.telemetry') || topic === '.telemetry') {
    throw rangeError(spec, `training reads telemetry samples: the topic is <prefix>.telemetry, not "${topic}"`);
  }
  const range = spec.slice(at + 1);
  const sep = range.indexOf('..');
  if (sep < 0) throw rangeError(spec, 'no ".." between FROM and TO');
  const fromTs = parsePoint(range.slice(0, sep), spec, now);
  const toText = range.slice(sep + 2);
  const toTs = toText.trim() === '' ? now : parsePoint(toText, spec, now);
  if (!(fromTs < toTs)) {
    throw rangeError(
      spec,
      `FROM (${new Date(fromTs).toISOString()}) must be before TO (${new Date(toTs).toISOString()})`,
    );
  }
  return { topic, topicPrefix: topic.slice(0, -'.telemetry'.length), fromTs, toTs };
}
