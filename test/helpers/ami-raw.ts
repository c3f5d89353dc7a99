import net from 'node:net';
import { waitFor } from '../chaos/env.js';

/** A raw AMI client: every byte the node sends, LF line endings, split into frames. */
export class RawAmi {
  private raw = '';
  private constructor(private readonly socket: net.Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (c: string) => {
      this.raw += c.replace(/\r\n/g, '\n');
    });
  }

  static async open(port: number): Promise<RawAmi> {
    const socket = net.createConnection({ host: '127.0.0.1', port });
    await new Promise<void>((r, j) => {
      socket.once('connect', () => r());
      socket.once('error', j);
    });
    const ami = new RawAmi(socket);
    await waitFor('the banner', () => ami.raw.includes('\n'), 5000, 20);
    return ami;
  }

  banner(): string {
    return this.raw.slice(0, this.raw.indexOf('\n') + 1);
  }

  /** Sends an action and returns the text of its reply: up to `until` (a list's last event) or one frame. */
  async send(fields: Record<string, string>, until?: string): Promise<string> {
    const mark = this.raw.length;
    this.socket.write(
      `${Object.entries(fields)
        .map(([k, v]) => `${k}: ${v}\r\n`)
        .join('')}\r\n`,
    );
    const done = () => {
      const text = this.raw.slice(mark);
      const end = until ? text.indexOf(`${until}\n`) : 0;
      if (end < 0) return false;
      const close = text.indexOf('\n\n', end);
      return close >= 0 && text.slice(0, close + 2);
    };
    return waitFor(`the reply to ${fields.Action}`, done, 5000, 20);
  }

  close(): void {
    this.socket.destroy();
  }
}
