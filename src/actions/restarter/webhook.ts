/** Restarts a node by POSTing to an operator's webhook (an orchestrator, a runbook automation endpoint). */
import { ForesightError, isRetriable } from '../../errors.js';
import type { Logger } from '../../log.js';
import { silentLogger } from '../../log.js';
import type { Restarter } from '../ports.js';

export interface WebhookRestarterOptions {
  url: string;
  /** Extra headers, e.g. an Authorization bearer. Never logged. */
  headers?: Record<string, string>;
  /** Per-attempt timeout. Default 10 s. */
  timeoutMs?: number;
  /** Attempts after the first. Default 2. */
  retries?: number;
  /** Base of the jittered exponential backoff. Default 500 ms. */
  backoffMs?: number;
  logger?: Logger;
  /** Event time for the payload. */
  now?: () => number;
}

export class WebhookRestarter implements Restarter {
  readonly name = 'webhook';
  private readonly logger: Logger;

  constructor(private readonly options: WebhookRestarterOptions) {
    let parsed: URL;
    try {
      parsed = new URL(options.url);
    } catch (err) {
      throw new ForesightError('FORESIGHT_ERR_CONFIG', `invalid restart webhook URL ${options.url}`, { cause: err });
    }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
      throw new ForesightError('FORESIGHT_ERR_CONFIG', `restart webhook must be http(s): ${options.url}`);
    }
    this.logger = (options.logger ?? silentLogger()).child({ component: 'webhook-restarter' });
  }

  async restart(nodeId: string): Promise<void> {
    const retries = this.options.retries ?? 2;
    const base = this.options.backoffMs ?? 500;
    let last: unknown;
    for (let attempt = 0; attempt <= retries; attempt++) {
      if (attempt > 0) await sleep(base * 2 ** (attempt - 1) * (0.5 + Math.random()));
      try {
        await this.post(nodeId);
        this.logger.info({ nodeId, attempt }, 'restart webhook accepted');
        return;
      } catch (err) {
        last = err;
        this.logger.warn({ nodeId, attempt, err: (err as Error).message }, 'restart webhook failed');
        if (!isRetriable(err)) break;
      }
    }
    throw last;
  }

  private async post(nodeId: string): Promise<void> {
    const timeout = this.options.timeoutMs ?? 10_000;
    let res: Response;
    try {
      res = await fetch(this.options.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...this.options.headers },
        body: JSON.stringify({ action: 'restart', nodeId, ts: (this.options.now ?? Date.now)() }),
        signal: AbortSignal.timeout(timeout),
      });
    } catch (err) {
      const timedOut = (err as Error).name === 'TimeoutError';
      throw new ForesightError(
        timedOut ? 'FORESIGHT_ERR_TIMEOUT' : 'FORESIGHT_ERR_RESTARTER',
        timedOut
          ? `restart webhook timed out after ${timeout} ms`
          : `restart webhook unreachable: ${(err as Error).message}`,
        { cause: err },
      );
    }
    const body = (await res.text().catch(() => '')).slice(0, 500);
    if (res.ok) return;
    // 5xx and 429 may pass on a later attempt; other 4xx mean the request itself is wrong.
    const retriable = res.status >= 500 || res.status === 429;
    const err = new ForesightError(
      retriable ? 'FORESIGHT_ERR_RESTARTER' : 'FORESIGHT_ERR_BAD_REQUEST',
      `restart webhook answered ${res.status}`,
      { details: { status: res.status, body } },
    );
    throw err;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
