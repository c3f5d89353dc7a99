import net from 'node:net';

/**
 * A raw AMI listener: logs in with an event mask and keeps every byte the server sends, unparsed, so that what a real
 * Asterisk writes can be stored as a fixture exactly (test/fixtures/ami/*.ami, LF line endings).
 */
export interface AmiTap {
  /** Everything received since the login succeeded, CRLF turned into LF. */
  text(): string;
  /** Event blocks received since `mark` (an offset from `text().length`), each without its closing blank line. */
  eventsSince(mark: number): string[];
  close(): void;
}

export async function openAmiTap(o: {
  port: number;
  username: string;
  secret: string;
  events: string;
}): Promise<AmiTap> {
  const socket = net.createConnection({ host: '127.0.0.1', port: o.port });
  let raw = '';
  let loggedInAt = -1;
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => {
    raw += chunk.replace(/\r\n/g, '\n');
    if (loggedInAt < 0) {
      const at = raw.indexOf('Message: Authentication accepted\n\n');
      if (at >= 0) loggedInAt = at + 'Message: Authentication accepted\n\n'.length;
    }
  });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', () => resolve());
    socket.once('error', reject);
  });
  socket.write(`Action: Login\r\nUsername: ${o.username}\r\nSecret: ${o.secret}\r\nEvents: ${o.events}\r\n\r\n`);
  const deadline = Date.now() + 5000;
  while (loggedInAt < 0) {
    if (Date.now() > deadline) {
      socket.destroy();
      throw new Error(`AMI tap: no login on port ${o.port}: ${raw.slice(0, 200)}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  const text = () => raw.slice(loggedInAt);
  return {
    text,
    eventsSince: (mark) =>
      text()
        .slice(mark)
        .split('\n\n')
        .map((b) => b.trim())
        .filter((b) => b.startsWith('Event:')),
    close: () => socket.destroy(),
  };
}
