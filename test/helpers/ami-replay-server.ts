import { readFileSync } from 'node:fs';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { type AmiFrame, AmiFrameDecoder } from '../../src/ingest/ami/frame.js';

/**
 * A TCP server that speaks AMI by replaying recorded Asterisk traffic (test/fixtures/ami/, sources in its README).
 * It answers Login, Ping, Events, CoreStatus, CoreShowChannels and Command with the recorded responses, echoing the
 * request's ActionID, and lets a test inject events, disconnects, stalls and garbage bytes. Loopback only.
 */

const FIXTURES = fileURLToPath(new URL('../fixtures/ami/', import.meta.url));

/** Loads a fixture as wire text (CRLF line endings). */
export function loadAmiFixture(name: string): string {
  return readFileSync(`${FIXTURES}${name}.ami`, 'utf8').replace(/\r?\n/g, '\r\n');
}

export interface AmiReplayServerOptions {
  username?: string;
  /** Default `good`. */
  secret?: string;
  /** Banner fixture. Default `banner-22` (the release the lab nodes run). */
  banner?: string;
  /** Which recorded Command form answers `core show taskprocessors`. Default `output` (14+). */
  commandForm?: 'output' | 'legacy';
  /** Delay before a failed login is answered (Asterisk waits 1 s). Default 20 ms. */
  loginFailureDelayMs?: number;
  /** On `core restart|stop …`: `close` sends Shutdown and drops every session after restartDelayMs; `hang` never answers. */
  restart?: 'close' | 'hang';
  restartDelayMs?: number;
}

interface Client {
  socket: net.Socket;
  decoder: AmiFrameDecoder;
  loggedIn: boolean;
}

export class AmiReplayServer {
  /** Every action received, in order, over all connections. */
  readonly received: AmiFrame[] = [];
  /** Connections accepted so far. */
  accepted = 0;
  private readonly clients = new Set<Client>();
  private stalled = false;
  private refusing = false;
  private commandForm: 'output' | 'legacy';

  private constructor(
    private readonly server: net.Server,
    private readonly options: AmiReplayServerOptions,
  ) {
    this.commandForm = options.commandForm ?? 'output';
  }

  static async start(options: AmiReplayServerOptions = {}): Promise<AmiReplayServer> {
    const server = net.createServer();
    const replay = new AmiReplayServer(server, options);
    server.on('connection', (socket) => replay.onConnection(socket));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    replay.port = (server.address() as net.AddressInfo).port;
    return replay;
  }

  /** Stays readable after close(), so a test can aim at a port where nothing listens any more. */
  port = 0;

  get sessions(): number {
    return this.clients.size;
  }

  /** Actions received with this name (case-insensitive). */
  actions(name: string): AmiFrame[] {
    return this.received.filter((f) => (f.fields.action ?? '').toLowerCase() === name.toLowerCase());
  }

  /** Sends a recorded event burst to every logged-in session. */
  sendEvents(fixture: string): void {
    const text = loadAmiFixture(fixture);
    for (const c of this.clients) if (c.loggedIn) c.socket.write(text);
  }

  /** Writes raw bytes (garbage, partial frames) to every session. */
  sendRaw(data: string | Buffer): void {
    for (const c of this.clients) c.socket.write(data);
  }

  /** Destroys every session, as a crashed Asterisk would. */
  dropAll(): void {
    for (const c of this.clients) c.socket.destroy();
    this.clients.clear();
  }

  /** While stalled the server reads but answers nothing: a hung Asterisk with its socket still open. */
  setStalled(stalled: boolean): void {
    this.stalled = stalled;
  }

  /** While refusing, new connections are closed at once (Asterisk restarting). */
  setRefusing(refusing: boolean): void {
    this.refusing = refusing;
  }

  setCommandForm(form: 'output' | 'legacy'): void {
    this.commandForm = form;
  }

  async close(): Promise<void> {
    this.dropAll();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private onConnection(socket: net.Socket): void {
    this.accepted++;
    socket.on('error', () => {});
    if (this.refusing) {
      socket.destroy();
      return;
    }
    const client: Client = { socket, decoder: new AmiFrameDecoder(), loggedIn: false };
    this.clients.add(client);
    socket.on('close', () => this.clients.delete(client));
    socket.write(loadAmiFixture(this.options.banner ?? 'banner-22'));
    socket.on('data', (chunk: Buffer) => {
      for (const frame of client.decoder.push(chunk)) {
        if (frame.kind !== 'action') continue;
        this.received.push(frame);
        if (!this.stalled) this.answer(client, frame);
      }
    });
  }

  private answer(client: Client, action: AmiFrame): void {
    const id = action.fields.actionid ?? '';
    const reply = (fixture: string) => client.socket.write(withActionId(loadAmiFixture(fixture), id));
    switch ((action.fields.action ?? '').toLowerCase()) {
      case 'login': {
        const ok =
          action.fields.secret === (this.options.secret ?? 'good') &&
          (this.options.username === undefined || action.fields.username === this.options.username);
        if (ok) {
          client.loggedIn = true;
          reply('login-success');
        } else {
          setTimeout(() => {
            reply('login-failure');
            client.socket.end();
          }, this.options.loginFailureDelayMs ?? 20);
        }
        return;
      }
      case 'ping':
        reply('ping');
        return;
      case 'events':
        reply('events-ack');
        return;
      case 'corestatus':
        reply('corestatus');
        return;
      case 'coreshowchannels':
        reply('coreshowchannels');
        return;
      case 'command':
        this.command(action, reply);
        return;
      default:
        reply('unknown-action');
        return;
    }
  }

  private command(action: AmiFrame, reply: (fixture: string) => void): void {
    const command = (action.fields.command ?? '').trim().toLowerCase();
    if (command === 'core show taskprocessors') {
      reply(this.commandForm === 'legacy' ? 'command-taskprocessors-legacy' : 'command-taskprocessors');
    } else if (command === 'core show version') {
      reply('command-legacy-single-line');
    } else if (/^core (restart|stop) (now|gracefully|when convenient)$/.test(command)) {
      // Asterisk runs the handler synchronously: no response; at the final step Shutdown goes out and sockets close.
      if ((this.options.restart ?? 'close') === 'hang') return;
      setTimeout(() => {
        this.sendEvents('events-shutdown');
        this.dropAll();
      }, this.options.restartDelayMs ?? 50);
    } else {
      reply('command-unknown');
    }
  }
}

function withActionId(text: string, id: string): string {
  return text.replace(/^ActionID: .*$/gim, `ActionID: ${id}`);
}
