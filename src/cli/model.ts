/**
 * `foresight model status|rollback`: asks a running Foresight (its API) which scorer drives decisions, and puts the
 * previous one back. Through the API, not the state file, so the running loop switches at once and audits it.
 */
import { ForesightError } from '../errors.js';

export interface ModelCliOptions {
  /** Base URL of the Foresight API. Default http://127.0.0.1:8080. */
  url?: string;
  /** Operator token; default the FORESIGHT_TOKEN environment variable. Not needed in open local mode. */
  token?: string;
  reason?: string;
}

async function call(path: string, opts: ModelCliOptions, init: RequestInit = {}): Promise<Record<string, unknown>> {
  const base = (opts.url ?? 'http://127.0.0.1:8080').replace(/\/+$/, '');
  const token = opts.token ?? process.env.FORESIGHT_TOKEN;
  let res: Response;
  try {
    res = await fetch(`${base}${path}`, {
      ...init,
      headers: {
        ...(init.body ? { 'content-type': 'application/json' } : {}),
        ...(token ? { authorization: `Bearer ${token}` } : {}),
      },
    });
  } catch (err) {
    throw new ForesightError('FORESIGHT_ERR_SOURCE', `cannot reach Foresight at ${base}: ${(err as Error).message}`);
  }
  const body = (await res.json().catch(() => ({}))) as Record<string, unknown>;
  if (!res.ok) {
    // The API's error body is { error: { code, message } } (src/api/errors.ts).
    const message = (body.error as { message?: string } | undefined)?.message ?? res.statusText;
    throw new ForesightError('FORESIGHT_ERR_BAD_REQUEST', `${path}: ${res.status} ${message}`);
  }
  return body;
}

/** One line on who decides, since when and why. */
export function describeInCharge(info: Record<string, unknown>): string {
  const inCharge = info.inCharge as { kind: string; name: string; since: string | null; why: string } | undefined;
  if (!inCharge) return `${info.name} (${info.version}); no model lifecycle runs here`;
  return `${inCharge.kind} ${inCharge.name} decides since ${inCharge.since}: ${inCharge.why}`;
}

export async function runModelStatus(opts: ModelCliOptions): Promise<Record<string, unknown>> {
  const info = await call('/api/model', opts);
  console.log(describeInCharge(info));
  return info;
}

export async function runModelRollback(opts: ModelCliOptions): Promise<Record<string, unknown>> {
  if (!opts.reason?.trim()) throw new ForesightError('FORESIGHT_ERR_INPUT', 'model rollback needs --reason TEXT');
  const result = await call('/api/model/rollback', opts, {
    method: 'POST',
    body: JSON.stringify({ reason: opts.reason }),
  });
  const info = await call('/api/model', opts);
  console.log(`rolled back (audit #${(result.audit as { seq?: number })?.seq}); ${describeInCharge(info)}`);
  return info;
}
