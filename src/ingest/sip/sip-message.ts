/**
 * Minimal SIP head parser: the first line and the three headers that identify a transaction (RFC 3261 17.1.3, 17.2.3).
 * Bodies and all other headers are ignored. Malformed input yields null, never an exception.
 */

export interface SipSummary {
  /** The first line as sent, without CRLF. Part of the retransmission key (100/180/200 share Call-ID/CSeq/branch). */
  firstLine: string;
  /** Request method, or null for a response. */
  method: string | null;
  /** Response status code, or null for a request. */
  status: number | null;
  callId: string;
  /** CSeq header value as sent, e.g. `1 INVITE`. */
  cseq: string;
  /** Method named in CSeq (responses carry the method only here). */
  cseqMethod: string;
  /** Branch parameter of the top Via, or '' when absent. */
  branch: string;
  /** `tag` parameter of From, or '' when absent (dialog identity, RFC 3261 12). */
  fromTag?: string;
  /** `tag` parameter of To, or '' when absent (an initial request has none). */
  toTag?: string;
  /** Delta-seconds of Session-Expires (RFC 4028), or null when absent or unreadable. */
  sessionExpiresS?: number | null;
}

const MAX_HEAD = 16 * 1024;
const STATUS_LINE = /^SIP\/2\.0 ([1-6]\d\d)(?: |$)/;
const REQUEST_LINE = /^([A-Za-z]+) \S+ SIP\/2\.0$/;
const BRANCH = /;\s*branch\s*=\s*([^;,\s]+)/i;
const TAG = /;\s*tag\s*=\s*([^;,\s>]+)/i;
const DELTA_SECONDS = /^\s*(\d{1,9})\s*(?:;|$)/;

/** The tag parameter of a From/To value; parameters after the closing `>` of a name-addr, else anywhere. */
function tagOf(value: string): string {
  const close = value.lastIndexOf('>');
  return TAG.exec(close >= 0 ? value.slice(close) : value)?.[1] ?? '';
}

function headerName(line: string, colon: number): string {
  return line.slice(0, colon).trim().toLowerCase();
}

/** Parses the head of a SIP message given as latin1 text or raw bytes. */
export function parseSipHead(input: Buffer | string): SipSummary | null {
  let text: string;
  if (typeof input === 'string') {
    text = input.length > MAX_HEAD ? input.slice(0, MAX_HEAD) : input;
  } else {
    let end = input.indexOf('\r\n\r\n');
    if (end < 0 || end > MAX_HEAD) end = Math.min(input.length, MAX_HEAD);
    text = input.toString('latin1', 0, end);
  }
  const bodyAt = text.indexOf('\r\n\r\n');
  if (bodyAt >= 0) text = text.slice(0, bodyAt);
  const lines = text.split(/\r?\n/);
  const firstLine = lines[0] ?? '';
  let method: string | null = null;
  let status: number | null = null;
  const sm = STATUS_LINE.exec(firstLine);
  if (sm) {
    status = Number(sm[1]);
  } else {
    const rm = REQUEST_LINE.exec(firstLine);
    if (!rm) return null;
    method = (rm[1] as string).toUpperCase();
  }

  let callId: string | null = null;
  let cseq: string | null = null;
  let via: string | null = null;
  let from: string | null = null;
  let to: string | null = null;
  let sessionExpires: string | null = null;
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i] as string;
    if (line === '') break;
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    const name = headerName(line, colon);
    if (callId === null && (name === 'call-id' || name === 'i')) callId = line.slice(colon + 1).trim();
    else if (cseq === null && name === 'cseq') cseq = line.slice(colon + 1).trim();
    else if (via === null && (name === 'via' || name === 'v')) via = line.slice(colon + 1);
    else if (from === null && (name === 'from' || name === 'f')) from = line.slice(colon + 1);
    else if (to === null && (name === 'to' || name === 't')) to = line.slice(colon + 1);
    else if (sessionExpires === null && (name === 'session-expires' || name === 'x'))
      sessionExpires = line.slice(colon + 1);
  }
  if (!callId || !cseq) return null;
  const space = cseq.search(/\s/);
  if (space <= 0) return null;
  const cseqMethod = cseq
    .slice(space + 1)
    .trim()
    .toUpperCase();
  if (cseqMethod === '') return null;
  let branch = '';
  if (via !== null) {
    const topVia = via.split(',')[0] ?? '';
    branch = BRANCH.exec(topVia)?.[1] ?? '';
  }
  const se = sessionExpires === null ? null : DELTA_SECONDS.exec(sessionExpires);
  return {
    firstLine,
    method,
    status,
    callId,
    cseq,
    cseqMethod,
    branch,
    fromTag: from === null ? '' : tagOf(from),
    toTag: to === null ? '' : tagOf(to),
    sessionExpiresS: se ? Number(se[1]) : null,
  };
}
