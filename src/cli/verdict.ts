/**
 * `foresight verdict` and `foresight thresholds`: an operator's judgement of a drain, and the drain thresholds the
 * judgements have moved, through a running Foresight's HTTP API (the same routes the dashboard uses).
 */
import { ERROR_CODES, type ErrorCode, ForesightError } from '../errors.js';

export interface ApiTarget {
  /** Base URL of the API, e.g. http://127.0.0.1:8080. */
  url?: string;
  /** Bearer token; default: the FORESIGHT_API_TOKEN environment variable. */
  token?: string;
  json?: boolean;
}

export interface VerdictOptions extends ApiTarget {
  reason?: string;
}

const VERDICTS: Record<string, 'correct' | 'false_alarm'> = {
  'true-alarm': 'correct',
  true: 'correct',
  correct: 'correct',
  'false-alarm': 'false_alarm',
  false: 'false_alarm',
  false_alarm: 'false_alarm',
};

export const DEFAULT_API_URL = 'http://127.0.0.1:8080';

/** Calls the API; a refusal comes back as its own code and message, not as a stack trace. */
async function call<T>(target: ApiTarget, method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> {
  const base = (target.url ?? process.env.FORESIGHT_API_URL ?? DEFAULT_API_URL).replace(/\/+$/, '');
  const token = target.token ?? process.env.FORESIGHT_API_TOKEN;
  const headers: Record<string, string> = {};
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  let res: Response;
  try {
    res = await fetch(`${base}${path}`, {
      method,
      headers,
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
  } catch (err) {
    const why = (err as Error).cause ?? (err as Error).message;
    throw new ForesightError('FORESIGHT_ERR_TIMEOUT', `cannot reach the Foresight API at ${base}: ${String(why)}`);
  }
  const text = await res.text();
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = null;
  }
  if (!res.ok) {
    const e = (parsed as { error?: { code?: string; message?: string } } | null)?.error;
    const code = e?.code && e.code in ERROR_CODES ? (e.code as ErrorCode) : 'FORESIGHT_ERR_BAD_REQUEST';
    throw new ForesightError(
      code,
      `${method} ${path}: ${res.status} ${e?.code ?? ''} ${e?.message ?? text.slice(0, 200)}`,
    );
  }
  return parsed as T;
}

interface Move {
  moved: boolean;
  scorer: string | null;
  from: number | null;
  to: number | null;
  why: string;
}

export async function runVerdict(decisionId: string, value: string, opts: VerdictOptions): Promise<void> {
  const verdict = VERDICTS[value.toLowerCase()];
  if (!verdict) {
    throw new ForesightError('FORESIGHT_ERR_BAD_REQUEST', `verdict must be true-alarm or false-alarm, not "${value}"`);
  }
  const reason = opts.reason ?? (verdict === 'correct' ? 'confirmed from the CLI' : 'false alarm, from the CLI');
  const { audit } = await call<{ audit: { seq: number; details: { threshold?: Move } } }>(
    opts,
    'POST',
    `/api/decisions/${encodeURIComponent(decisionId)}/verdict`,
    { verdict, reason },
  );
  if (opts.json) {
    console.log(JSON.stringify(audit, null, 2));
    return;
  }
  const m = audit.details.threshold;
  console.log(`verdict recorded (audit #${audit.seq}): ${verdict === 'correct' ? 'true alarm' : 'false alarm'}`);
  if (m?.moved) console.log(`${m.scorer} drain threshold ${m.from} -> ${m.to} (${m.why})`);
  else if (m) console.log(`threshold unchanged: ${m.why}`);
}

interface ThresholdsAnswer {
  inCharge: string | null;
  effective: number;
  configured: number;
  feedback: { enabled: boolean; min: number; max: number; falseAlarmStep: number; trueAlarmStep: number };
  scorers: {
    scorer: string;
    threshold: number;
    falseAlarms: number;
    trueAlarms: number;
    updatedAt: number;
    inCharge: boolean;
  }[];
}

export async function runThresholds(opts: ApiTarget): Promise<void> {
  const t = await call<ThresholdsAnswer>(opts, 'GET', '/api/model/thresholds');
  if (opts.json) {
    console.log(JSON.stringify(t, null, 2));
    return;
  }
  const f = t.feedback;
  console.log(
    `drain threshold in use: ${t.effective} (scorer ${t.inCharge ?? 'not known yet'}; configured ${t.configured}; ` +
      `verdicts ${f.enabled ? `move it within [${f.min}, ${f.max}]` : 'do not move it'})`,
  );
  const row = (c: [string, string, string, string, string]) =>
    `${c[0].padEnd(24)}${c[1].padEnd(11)}${c[2].padEnd(7)}${c[3].padEnd(6)}${c[4]}`;
  console.log(row(['scorer', 'threshold', 'false', 'true', 'moved at']));
  for (const s of t.scorers) {
    const at = s.updatedAt > 0 ? new Date(s.updatedAt).toISOString() : 'never';
    const name = s.inCharge ? `${s.scorer} *` : s.scorer;
    console.log(row([name, String(s.threshold), String(s.falseAlarms), String(s.trueAlarms), at]));
  }
}
