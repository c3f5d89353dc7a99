/**
 * Every error Foresight raises on purpose has a code from this table. `status` is the HTTP status the API answers with;
 * `retriable` tells the retry helper to back off and try again, and the bus to dead-letter when false.
 * docs/errors.md documents each code (a test checks that).
 */
export const ERROR_CODES = {
  FORESIGHT_ERR_CONFIG: { status: 500, retriable: false, message: 'invalid configuration' },
  FORESIGHT_ERR_BAD_MESSAGE: { status: 400, retriable: false, message: 'message does not match the vocabulary' },
  FORESIGHT_ERR_BAD_REQUEST: { status: 400, retriable: false, message: 'bad request' },
  FORESIGHT_ERR_UNAUTHORIZED: { status: 401, retriable: false, message: 'missing or unknown bearer token' },
  FORESIGHT_ERR_FORBIDDEN: { status: 403, retriable: false, message: 'role not allowed' },
  FORESIGHT_ERR_NOT_FOUND: { status: 404, retriable: false, message: 'not found' },
  FORESIGHT_ERR_CONFLICT: { status: 409, retriable: false, message: 'conflicts with the current state' },
  FORESIGHT_ERR_GUARDRAIL: { status: 409, retriable: false, message: 'refused by a guardrail' },
  FORESIGHT_ERR_RATE_LIMITED: { status: 429, retriable: true, message: 'too many requests' },
  FORESIGHT_ERR_DISPATCHER: { status: 502, retriable: true, message: 'dispatcher unreachable or failed' },
  FORESIGHT_ERR_RESTARTER: { status: 502, retriable: true, message: 'restart failed' },
  FORESIGHT_ERR_SOURCE: { status: 502, retriable: true, message: 'telemetry source unreachable or failed' },
  FORESIGHT_ERR_TIMEOUT: { status: 504, retriable: true, message: 'timed out' },
  FORESIGHT_ERR_STORE: { status: 500, retriable: true, message: 'store failed' },
  FORESIGHT_ERR_MODEL: { status: 500, retriable: false, message: 'model artefact invalid' },
  FORESIGHT_ERR_HANDLER: { status: 500, retriable: false, message: 'a stage kept failing on this message' },
  FORESIGHT_ERR_INTERNAL: { status: 500, retriable: false, message: 'internal error' },
  FORESIGHT_ERR_INPUT: { status: 400, retriable: false, message: 'input file invalid' },
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export class ForesightError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly retriable: boolean;
  readonly details: Record<string, unknown>;

  constructor(code: ErrorCode, message?: string, options?: { cause?: unknown; details?: Record<string, unknown> }) {
    const spec = ERROR_CODES[code];
    super(message ?? spec.message, { cause: options?.cause });
    this.name = 'ForesightError';
    this.code = code;
    this.status = spec.status;
    this.retriable = spec.retriable;
    this.details = options?.details ?? {};
  }
}

export function isRetriable(err: unknown): boolean {
  if (err instanceof ForesightError) return err.retriable;
  // Client libraries (kafkajs) mark their own transient errors.
  if ((err as { retriable?: unknown } | null)?.retriable === true) return true;
  // Network errors from sockets and fetch are transient by nature.
  const code = (err as { code?: unknown } | null)?.code;
  return (
    typeof code === 'string' && ['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH'].includes(code)
  );
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
