/**
 * Incident labels file: a JSON array of IncidentLabel (src/messages.ts), as `foresight simulate --labels` writes it
 * and as an operator can write by hand from an incident log:
 *
 *   [{"nodeId":"ast2","mode":"memory_leak","predictable":true,"onsetAt":1704067200000,"crashAt":1704070800000}]
 *
 * Times are epoch ms or ISO 8601 strings. `predictable` defaults to `mode !== "sudden_crash"`. For a sudden crash
 * onsetAt equals crashAt (or may be omitted). Failures that keep the node up (db_degradation, retransmission_storm) may
 * carry `endedAt`: when the node stopped failing calls (null: still failing when the recording ended).
 */
import { readFile } from 'node:fs/promises';
import { errorMessage, ForesightError } from '../errors.js';
import { FAILURE_MODES, type FailureMode, type IncidentLabel } from '../messages.js';

/** An incident label as the evaluation reads it: IncidentLabel plus how long a failure that kept the node up lasted. */
export interface EvalLabel extends IncidentLabel {
  /**
   * For failures that keep the node up and failing new calls (outcome `failed`): when that stopped, epoch ms, or null
   * when it was still failing at the end of the recording. Absent: the failure ended at crashAt.
   */
  endedAt?: number | null;
}

/** Until when the node suffered from the incident: crashAt, or the end of the failing period (+Infinity: open). */
export function failingUntil(l: EvalLabel): number {
  if (l.endedAt === undefined) return l.crashAt;
  if (l.endedAt === null) return Number.POSITIVE_INFINITY;
  return Math.max(l.crashAt, l.endedAt);
}

function time(v: unknown): number | null {
  if (typeof v === 'number' && Number.isFinite(v)) return v;
  if (typeof v === 'string') {
    const ms = Date.parse(v);
    return Number.isFinite(ms) ? ms : null;
  }
  return null;
}

/** Validates parsed JSON into labels; throws FORESIGHT_ERR_INPUT naming the first bad entry. */
export function parseLabels(json: unknown, where = 'labels'): EvalLabel[] {
  const list = Array.isArray(json) ? json : (json as { labels?: unknown } | null)?.labels;
  if (!Array.isArray(list))
    throw new ForesightError('FORESIGHT_ERR_INPUT', `${where}: expected a JSON array of labels`);
  return list.map((raw, i) => {
    const fail = (why: string): never => {
      throw new ForesightError('FORESIGHT_ERR_INPUT', `${where}[${i}]: ${why}`, { details: { index: i } });
    };
    if (typeof raw !== 'object' || raw === null) fail('not an object');
    const o = raw as Record<string, unknown>;
    if (typeof o.nodeId !== 'string' || o.nodeId === '') fail('nodeId missing');
    if (!FAILURE_MODES.includes(o.mode as FailureMode)) fail(`mode must be one of ${FAILURE_MODES.join(', ')}`);
    const mode = o.mode as FailureMode;
    const crashAt = time(o.crashAt);
    if (crashAt === null) fail('crashAt must be epoch ms or ISO 8601');
    const onsetAt = o.onsetAt === undefined && mode === 'sudden_crash' ? crashAt : time(o.onsetAt);
    if (onsetAt === null) fail('onsetAt must be epoch ms or ISO 8601');
    if (onsetAt! > crashAt!) fail('onsetAt is after crashAt');
    const predictable = o.predictable === undefined ? mode !== 'sudden_crash' : o.predictable;
    if (typeof predictable !== 'boolean') fail('predictable must be a boolean');
    const label: EvalLabel = {
      nodeId: o.nodeId as string,
      mode,
      predictable: predictable as boolean,
      onsetAt: onsetAt!,
      crashAt: crashAt!,
    };
    if (o.endedAt === null) label.endedAt = null;
    else if (o.endedAt !== undefined) {
      const endedAt = time(o.endedAt);
      if (endedAt === null) fail('endedAt must be epoch ms, ISO 8601 or null');
      if (endedAt! < crashAt!) fail('endedAt is before crashAt');
      label.endedAt = endedAt!;
    }
    return label;
  });
}

export async function readLabels(path: string): Promise<EvalLabel[]> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new ForesightError('FORESIGHT_ERR_INPUT', `cannot read labels ${path}: ${errorMessage(err)}`, { cause: err });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new ForesightError('FORESIGHT_ERR_INPUT', `labels ${path} is not valid JSON: ${errorMessage(err)}`);
  }
  return parseLabels(json, path);
}
