import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { ForesightError } from '../../errors.js';

/** True when the file starts with the gzip magic bytes 1f 8b (the name does not matter). */
export async function isGzipFile(file: string): Promise<boolean> {
  let handle: Awaited<ReturnType<typeof open>> | undefined;
  try {
    handle = await open(file, 'r');
    const buf = Buffer.alloc(2);
    const { bytesRead } = await handle.read(buf, 0, 2, 0);
    return bytesRead === 2 && buf[0] === 0x1f && buf[1] === 0x8b;
  } catch (err) {
    throw new ForesightError('FORESIGHT_ERR_INPUT', `cannot read ${file}: ${(err as Error).message}`, { cause: err });
  } finally {
    await handle?.close();
  }
}

export interface LineSource {
  lines: AsyncIterable<string>;
  /** Compressed bytes read so far (for progress). */
  bytesRead(): number;
  gzip: boolean;
}

/** Streams a text file line by line, gunzipping it when its first bytes say so. */
export async function openLines(file: string): Promise<LineSource> {
  const gzip = await isGzipFile(file);
  const raw = createReadStream(file);
  let stream: Readable = raw;
  if (gzip) {
    const gunzip = createGunzip();
    raw.on('error', (err) => gunzip.destroy(err));
    stream = raw.pipe(gunzip);
  }
  const rl = createInterface({ input: stream, crlfDelay: Number.POSITIVE_INFINITY });
  return {
    lines: (async function* () {
      try {
        for await (const line of rl) yield line;
      } catch (err) {
        throw new ForesightError('FORESIGHT_ERR_INPUT', `cannot read ${file}: ${(err as Error).message}`, {
          cause: err,
        });
      }
    })(),
    bytesRead: () => raw.bytesRead,
    gzip,
  };
}
