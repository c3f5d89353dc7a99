/**
 * HEP v3 (EEP) decoder for the packets Kamailio's siptrace mirrors to Foresight.
 *
 * Wire format: "HEP3", u16 total length, then chunks of (u16 vendor, u16 type, u16 length incl. the 6-byte chunk
 * header, value). Only vendor 0 chunks are interpreted; others are skipped. Bad input never throws: the result says
 * why a datagram was rejected, so the collector can count it.
 */

/** Chunk types of vendor 0 that Foresight reads. */
export const HEP_CHUNK = {
  ipFamily: 1,
  ipProto: 2,
  ipv4Src: 3,
  ipv4Dst: 4,
  ipv6Src: 5,
  ipv6Dst: 6,
  srcPort: 7,
  dstPort: 8,
  tsSec: 9,
  tsUsec: 10,
  protoType: 11,
  captureId: 12,
  authKey: 14,
  payload: 15,
  compressedPayload: 16,
  correlationId: 17,
} as const;

/** One decoded HEP v3 packet. */
export interface HepPacket {
  /** Address family: 2 = IPv4, 10 = IPv6. */
  family: number;
  /** IP protocol of the mirrored packet: 17 = UDP, 6 = TCP. */
  ipProto: number;
  srcIp: string;
  dstIp: string;
  srcPort: number;
  dstPort: number;
  /** Capture time, seconds part; null when the sender left it out. */
  tsSec: number | null;
  /** Capture time, microseconds part. */
  tsUsec: number;
  /** Payload protocol: 1 = SIP. */
  protoType: number;
  captureId: number | null;
  /** The mirrored message (a view into the datagram, not a copy). */
  payload: Buffer;
  correlationId: string | null;
}

export type HepRejectReason =
  /** Shorter than the 6-byte header. */
  | 'short'
  /** Does not start with "HEP3" (HEP v1/v2 and other protocols). */
  | 'magic'
  /** The header length exceeds the datagram, or a chunk runs past the end. */
  | 'truncated'
  /** A chunk has an impossible length or a value of the wrong size. */
  | 'bad_chunk'
  /** Addresses, ports or payload are missing (e.g. a keepalive or a compressed payload). */
  | 'incomplete';

export type HepDecodeResult = { ok: true; packet: HepPacket } | { ok: false; reason: HepRejectReason };

const MAGIC = 0x48455033; // "HEP3"

function fail(reason: HepRejectReason): HepDecodeResult {
  return { ok: false, reason };
}

function ipv4(buf: Buffer, off: number): string {
  return `${buf[off]}.${buf[off + 1]}.${buf[off + 2]}.${buf[off + 3]}`;
}

/** RFC 5952 text form (longest run of zero groups compressed), so it compares equal to URL-normalised addresses. */
export function formatIpv6(buf: Buffer, off: number): string {
  const groups: number[] = [];
  for (let i = 0; i < 8; i++) groups.push(buf.readUInt16BE(off + i * 2));
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  const head = hex.slice(0, bestStart).join(':');
  const tail = hex.slice(bestStart + bestLen).join(':');
  return `${head}::${tail}`;
}

/** Decodes one datagram. Never throws. */
export function decodeHep(buf: Buffer): HepDecodeResult {
  if (buf.length < 6) return fail('short');
  if (buf.readUInt32BE(0) !== MAGIC) return fail('magic');
  const total = buf.readUInt16BE(4);
  if (total < 6) return fail('bad_chunk');
  if (total > buf.length) return fail('truncated');

  let family = 0;
  let ipProto = 0;
  let srcIp: string | null = null;
  let dstIp: string | null = null;
  let srcPort = -1;
  let dstPort = -1;
  let tsSec: number | null = null;
  let tsUsec = 0;
  let protoType = 0;
  let captureId: number | null = null;
  let payload: Buffer | null = null;
  let correlationId: string | null = null;

  let off = 6;
  while (off < total) {
    if (off + 6 > total) return fail('truncated');
    const vendor = buf.readUInt16BE(off);
    const type = buf.readUInt16BE(off + 2);
    const len = buf.readUInt16BE(off + 4);
    if (len < 6) return fail('bad_chunk');
    const end = off + len;
    if (end > total) return fail('truncated');
    const v = off + 6;
    const size = len - 6;
    if (vendor === 0) {
      switch (type) {
        case HEP_CHUNK.ipFamily:
          if (size !== 1) return fail('bad_chunk');
          family = buf[v] as number;
          break;
        case HEP_CHUNK.ipProto:
          if (size !== 1) return fail('bad_chunk');
          ipProto = buf[v] as number;
          break;
        case HEP_CHUNK.ipv4Src:
          if (size !== 4) return fail('bad_chunk');
          srcIp = ipv4(buf, v);
          break;
        case HEP_CHUNK.ipv4Dst:
          if (size !== 4) return fail('bad_chunk');
          dstIp = ipv4(buf, v);
          break;
        case HEP_CHUNK.ipv6Src:
          if (size !== 16) return fail('bad_chunk');
          srcIp = formatIpv6(buf, v);
          break;
        case HEP_CHUNK.ipv6Dst:
          if (size !== 16) return fail('bad_chunk');
          dstIp = formatIpv6(buf, v);
          break;
        case HEP_CHUNK.srcPort:
          if (size !== 2) return fail('bad_chunk');
          srcPort = buf.readUInt16BE(v);
          break;
        case HEP_CHUNK.dstPort:
          if (size !== 2) return fail('bad_chunk');
          dstPort = buf.readUInt16BE(v);
          break;
        case HEP_CHUNK.tsSec:
          if (size !== 4) return fail('bad_chunk');
          tsSec = buf.readUInt32BE(v);
          break;
        case HEP_CHUNK.tsUsec:
          if (size !== 4) return fail('bad_chunk');
          tsUsec = buf.readUInt32BE(v);
          break;
        case HEP_CHUNK.protoType:
          if (size !== 1) return fail('bad_chunk');
          protoType = buf[v] as number;
          break;
        case HEP_CHUNK.captureId:
          // 4 bytes in HEP3; some agents send 2.
          if (size === 4) captureId = buf.readUInt32BE(v);
          else if (size === 2) captureId = buf.readUInt16BE(v);
          else return fail('bad_chunk');
          break;
        case HEP_CHUNK.payload:
          payload = buf.subarray(v, end);
          break;
        case HEP_CHUNK.correlationId:
          correlationId = buf.toString('latin1', v, end);
          break;
        default:
          // Auth key (14) is deliberately not kept: it is a secret. Unknown chunks are skipped.
          break;
      }
    }
    off = end;
  }
  if (srcIp === null || dstIp === null || srcPort < 0 || dstPort < 0 || payload === null) return fail('incomplete');
  return {
    ok: true,
    packet: {
      family,
      ipProto,
      srcIp,
      dstIp,
      srcPort,
      dstPort,
      tsSec,
      tsUsec,
      protoType,
      captureId,
      payload,
      correlationId,
    },
  };
}

/** Capture time in epoch ms, or null when the packet carries none. */
export function hepTimestampMs(p: HepPacket): number | null {
  return p.tsSec === null ? null : p.tsSec * 1000 + p.tsUsec / 1000;
}
