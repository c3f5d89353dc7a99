import { ForesightError } from '../errors.js';
import { AUDIT_KINDS, isMetricName, TELEMETRY_SOURCES, type TelemetrySource } from '../messages.js';
import type { TopicMap, TopicName } from './port.js';

/**
 * Wire format of every topic: UTF-8 JSON of the message type, checked at the boundary in both directions.
 * Hand-written checks rather than a schema library: telemetry crosses here 100,000 times a second.
 */

/** Largest encoded message accepted by default; a telemetry sample is about 120 bytes. */
export const DEFAULT_MAX_MESSAGE_BYTES = 256 * 1024;
/** How much of a rejected payload the dead letter keeps. */
export const DEAD_LETTER_PAYLOAD_BYTES = 4096;

export type DecodeResult<T> = { ok: true; value: T } | { ok: false; code: 'FORESIGHT_ERR_BAD_MESSAGE'; reason: string };

/** Returns null when the value is a valid message of the topic, else why not. */
type Check = (v: Record<string, unknown>) => string | null;

const SOURCES: ReadonlySet<TelemetrySource> = new Set<TelemetrySource>(TELEMETRY_SOURCES);
const AUDIT_KIND_SET: ReadonlySet<string> = new Set(AUDIT_KINDS);
const MAX_ID_LENGTH = 256;

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
function finite(v: unknown): v is number {
  return typeof v === 'number' && Number.isFinite(v);
}
function id(v: unknown): v is string {
  return typeof v === 'string' && v.length > 0 && v.length <= MAX_ID_LENGTH;
}
function int(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v);
}

const checkTelemetry: Check = (v) => {
  if (!id(v.nodeId)) return 'nodeId must be a non-empty string';
  if (!finite(v.ts)) return 'ts must be a finite number';
  if (typeof v.metric !== 'string' || !isMetricName(v.metric)) return `unknown metric ${JSON.stringify(v.metric)}`;
  if (!finite(v.value)) return 'value must be a finite number';
  if (!SOURCES.has(v.source as TelemetrySource)) return `unknown source ${JSON.stringify(v.source)}`;
  return null;
};

function checkEvidence(e: unknown): string | null {
  if (!isObject(e)) return 'evidence must be an object';
  if (e.calls !== null) {
    if (!isObject(e.calls) || !finite(e.calls.count) || (e.calls.source !== 'ami' && e.calls.source !== 'sip')) {
      return 'evidence.calls must be null or { count, source: ami|sip }';
    }
  }
  if (e.upReported !== null && typeof e.upReported !== 'boolean') return 'evidence.upReported must be boolean or null';
  if (e.probe !== null) {
    const p = e.probe;
    if (!isObject(p) || !finite(p.sent) || !finite(p.lost) || !finite(p.replies5xx)) {
      return 'evidence.probe must be null or { sent, lost, replies5xx, rttMsP50 }';
    }
    if (p.rttMsP50 !== null && !finite(p.rttMsP50)) return 'evidence.probe.rttMsP50 must be finite or null';
  }
  return null;
}

const checkFeatures: Check = (v) => {
  if (!id(v.nodeId)) return 'nodeId must be a non-empty string';
  if (!int(v.setId)) return 'setId must be an integer';
  if (!finite(v.windowStart) || !finite(v.windowEnd)) return 'windowStart and windowEnd must be finite numbers';
  if (!int(v.sampleCount) || v.sampleCount < 0) return 'sampleCount must be a non-negative integer';
  if (typeof v.observed !== 'boolean') return 'observed must be a boolean';
  if (!isObject(v.features)) return 'features must be an object';
  for (const name in v.features) {
    if (!finite(v.features[name])) return `feature ${name} must be a finite number`;
  }
  return checkEvidence(v.evidence);
};

const checkScores: Check = (v) => {
  if (!id(v.nodeId)) return 'nodeId must be a non-empty string';
  if (!int(v.setId)) return 'setId must be an integer';
  if (!finite(v.ts)) return 'ts must be a finite number';
  if (!finite(v.risk) || v.risk < 0 || v.risk > 1) return 'risk must be a number in [0, 1]';
  if (v.timeToFailureS !== null && !finite(v.timeToFailureS)) return 'timeToFailureS must be a finite number or null';
  if (!Array.isArray(v.explanation)) return 'explanation must be an array';
  for (const c of v.explanation as unknown[]) {
    if (!isObject(c) || typeof c.feature !== 'string' || !finite(c.weight) || !finite(c.value)) {
      return 'explanation entries need feature, finite weight and finite value';
    }
  }
  if (typeof v.scorer !== 'string') return 'scorer must be a string';
  if (typeof v.observed !== 'boolean' || typeof v.up !== 'boolean') return 'observed and up must be booleans';
  if (v.activeCalls !== null && !finite(v.activeCalls)) return 'activeCalls must be a finite number or null';
  if (v.activeCallsSource !== null && v.activeCallsSource !== 'ami' && v.activeCallsSource !== 'sip') {
    return 'activeCallsSource must be ami, sip or null';
  }
  if ((v.activeCalls === null) !== (v.activeCallsSource === null)) return 'activeCalls and its source go together';
  const evidenceProblem = checkEvidence(v.evidence);
  if (evidenceProblem !== null) return evidenceProblem;
  return null;
};

const checkAudit: Check = (v) => {
  if (!int(v.seq)) return 'seq must be an integer';
  if (!finite(v.ts)) return 'ts must be a finite number';
  if (!id(v.nodeId)) return 'nodeId must be a non-empty string';
  if (typeof v.kind !== 'string' || !AUDIT_KIND_SET.has(v.kind)) return `unknown audit kind ${JSON.stringify(v.kind)}`;
  if (typeof v.actor !== 'string' || typeof v.reason !== 'string') return 'actor and reason must be strings';
  if (v.decisionId !== null && typeof v.decisionId !== 'string') return 'decisionId must be a string or null';
  if (typeof v.dryRun !== 'boolean') return 'dryRun must be a boolean';
  if (!isObject(v.details)) return 'details must be an object';
  return null;
};

const checkDeadLetter: Check = (v) => {
  if (typeof v.topic !== 'string') return 'topic must be a string';
  if (!int(v.partition)) return 'partition must be an integer';
  if (typeof v.offset !== 'string' || typeof v.code !== 'string' || typeof v.reason !== 'string') {
    return 'offset, code and reason must be strings';
  }
  if (typeof v.payload !== 'string') return 'payload must be a string';
  if (!finite(v.ts)) return 'ts must be a finite number';
  return null;
};

const checkState: Check = (v) => {
  if (v.kind !== 'features' && v.kind !== 'scorer') return `unknown checkpoint kind ${JSON.stringify(v.kind)}`;
  if (!id(v.nodeId)) return 'nodeId must be a non-empty string';
  if (!finite(v.windowEnd) || !finite(v.ts)) return 'windowEnd and ts must be finite numbers';
  if (!isObject(v.state)) return 'state must be an object';
  return null;
};

const CHECKS: Record<TopicName, Check> = {
  telemetry: checkTelemetry,
  features: checkFeatures,
  scores: checkScores,
  actions: checkAudit,
  deadletter: checkDeadLetter,
  state: checkState,
};

/** Why `value` is not a valid message of `topic`, or null when it is. */
export function validate(topic: TopicName, value: unknown): string | null {
  if (!isObject(value)) return 'message must be a JSON object';
  return CHECKS[topic](value);
}

/**
 * Encodes a message for the wire. Throws FORESIGHT_ERR_BAD_MESSAGE for an invalid or oversized message, so a bug
 * upstream is caught at the producer rather than dead-lettered at every consumer.
 */
export function encode<K extends TopicName>(
  topic: K,
  value: TopicMap[K],
  maxBytes: number = DEFAULT_MAX_MESSAGE_BYTES,
): Buffer {
  const problem = validate(topic, value);
  if (problem !== null) {
    throw new ForesightError('FORESIGHT_ERR_BAD_MESSAGE', `${topic}: ${problem}`, { details: { topic } });
  }
  const bytes = Buffer.from(JSON.stringify(value), 'utf8');
  if (bytes.length > maxBytes) {
    throw new ForesightError(
      'FORESIGHT_ERR_BAD_MESSAGE',
      `${topic}: message of ${bytes.length} bytes exceeds ${maxBytes}`,
      {
        details: { topic, bytes: bytes.length },
      },
    );
  }
  return bytes;
}

/** Decodes and validates one message from the wire; never throws. */
export function decode<K extends TopicName>(
  topic: K,
  bytes: Buffer | Uint8Array | null | undefined,
  maxBytes: number = DEFAULT_MAX_MESSAGE_BYTES,
): DecodeResult<TopicMap[K]> {
  if (bytes === null || bytes === undefined || bytes.length === 0) return bad('empty message');
  if (bytes.length > maxBytes) return bad(`message of ${bytes.length} bytes exceeds ${maxBytes}`);
  let value: unknown;
  try {
    value = JSON.parse(Buffer.isBuffer(bytes) ? bytes.toString('utf8') : Buffer.from(bytes).toString('utf8'));
  } catch (err) {
    return bad(`not JSON: ${(err as Error).message}`);
  }
  const problem = validate(topic, value);
  if (problem !== null) return bad(problem);
  return { ok: true, value: value as TopicMap[K] };
}

/** A Kafka message carrying several messages of one key: valid ones in order, and why each other one was refused. */
export type DecodeManyResult<T> =
  | { ok: true; values: T[]; rejected: { index: number; reason: string; payload: string }[] }
  | { ok: false; code: 'FORESIGHT_ERR_BAD_MESSAGE'; reason: string };

/**
 * Encodes several messages of one topic (and, by the caller's contract, one key) as one JSON array. Packing the
 * samples of one node's scrape into one Kafka record cuts the per-record cost of both clients, which dominates at
 * telemetry rates. Returns null when the pack would exceed maxBytes, so the caller can split it.
 */
export function encodeMany<K extends TopicName>(
  topic: K,
  values: TopicMap[K][],
  maxBytes: number = DEFAULT_MAX_MESSAGE_BYTES,
): Buffer | null {
  for (const value of values) {
    const problem = validate(topic, value);
    if (problem !== null) {
      throw new ForesightError('FORESIGHT_ERR_BAD_MESSAGE', `${topic}: ${problem}`, { details: { topic } });
    }
  }
  const bytes = Buffer.from(JSON.stringify(values), 'utf8');
  if (bytes.length > maxBytes) {
    if (values.length > 1) return null;
    throw new ForesightError(
      'FORESIGHT_ERR_BAD_MESSAGE',
      `${topic}: message of ${bytes.length} bytes exceeds ${maxBytes}`,
      {
        details: { topic, bytes: bytes.length },
      },
    );
  }
  return bytes;
}

/**
 * Decodes a record holding one message (a JSON object) or a pack of them (a JSON array); never throws. Bad elements
 * of a pack are reported one by one, so one bad sample does not take its neighbours to the dead-letter topic.
 */
export function decodeMany<K extends TopicName>(
  topic: K,
  bytes: Buffer | Uint8Array | null | undefined,
  maxBytes: number = DEFAULT_MAX_MESSAGE_BYTES,
): DecodeManyResult<TopicMap[K]> {
  if (bytes === null || bytes === undefined || bytes.length === 0) return bad('empty message');
  if (bytes.length > maxBytes) return bad(`message of ${bytes.length} bytes exceeds ${maxBytes}`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.isBuffer(bytes) ? bytes.toString('utf8') : Buffer.from(bytes).toString('utf8'));
  } catch (err) {
    return bad(`not JSON: ${(err as Error).message}`);
  }
  if (!Array.isArray(parsed)) {
    const problem = validate(topic, parsed);
    return problem === null ? { ok: true, values: [parsed as TopicMap[K]], rejected: [] } : bad(problem);
  }
  if (parsed.length === 0) return bad('empty pack');
  const values: TopicMap[K][] = [];
  const rejected: { index: number; reason: string; payload: string }[] = [];
  for (let i = 0; i < parsed.length; i++) {
    const item: unknown = parsed[i];
    const problem = validate(topic, item);
    if (problem === null) values.push(item as TopicMap[K]);
    else rejected.push({ index: i, reason: `pack element ${i}: ${problem}`, payload: JSON.stringify(item) ?? 'null' });
  }
  return { ok: true, values, rejected };
}

/** The start of a raw payload, as text, for a dead letter. */
export function payloadExcerpt(bytes: Buffer | Uint8Array | null | undefined): string {
  if (bytes === null || bytes === undefined) return '';
  const slice = bytes.subarray(0, DEAD_LETTER_PAYLOAD_BYTES);
  return Buffer.from(slice.buffer, slice.byteOffset, slice.byteLength).toString('utf8');
}

function bad(reason: string): { ok: false; code: 'FORESIGHT_ERR_BAD_MESSAGE'; reason: string } {
  return { ok: false, code: 'FORESIGHT_ERR_BAD_MESSAGE', reason };
}
