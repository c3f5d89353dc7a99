import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DryRunDispatcher } from '../../src/actions/dry-run.js';
import { CommandRestarter } from '../../src/actions/restarter/command.js';
import { WebhookRestarter } from '../../src/actions/restarter/webhook.js';

describe('CommandRestarter', () => {
  let dir: string | null = null;
  afterEach(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
    dir = null;
  });

  it('runs the command with the node id as $1 and in FORESIGHT_NODE_ID', async () => {
    dir = mkdtempSync(join(tmpdir(), 'foresight-cmd-'));
    const out = join(dir, 'out.txt');
    const r = new CommandRestarter({ command: `echo "$1 $FORESIGHT_NODE_ID" >> '${out}'` });
    await r.restart('ast-2.eu');
    expect(readFileSync(out, 'utf8')).toBe('ast-2.eu ast-2.eu\n');
  });

  it('reports a non-zero exit with its output, a hung command as a timeout, and refuses odd node ids', async () => {
    await expect(new CommandRestarter({ command: 'echo boom >&2; exit 3' }).restart('ast1')).rejects.toMatchObject({
      code: 'FORESIGHT_ERR_RESTARTER',
      details: { exitCode: 3, output: 'boom\n' },
    });
    await expect(new CommandRestarter({ command: 'sleep 5', timeoutMs: 100 }).restart('ast1')).rejects.toMatchObject({
      code: 'FORESIGHT_ERR_TIMEOUT',
    });
    await expect(new CommandRestarter({ command: 'true' }).restart('ast1; rm -rf /')).rejects.toMatchObject({
      code: 'FORESIGHT_ERR_BAD_REQUEST',
    });
    expect(() => new CommandRestarter({ command: '  ' })).toThrow(/empty/);
  });
});

describe('WebhookRestarter', () => {
  let server: Server | null = null;
  afterEach(async () => {
    const s = server;
    server = null;
    if (s) await new Promise<void>((r) => s.close(() => r()));
  });

  async function serve(handler: (req: IncomingMessage, body: string, res: ServerResponse) => void): Promise<string> {
    const s = createServer((req, res) => {
      let body = '';
      req.on('data', (c) => {
        body += c;
      });
      req.on('end', () => handler(req, body, res));
    });
    server = s;
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
    return `http://127.0.0.1:${(s.address() as AddressInfo).port}/restart`;
  }

  it('POSTs the node id as JSON and retries 5xx until accepted', async () => {
    const bodies: unknown[] = [];
    const statuses = [503, 502, 200];
    const url = await serve((req, body, res) => {
      bodies.push({ method: req.method, auth: req.headers.authorization, body: JSON.parse(body) });
      res.statusCode = statuses.shift() ?? 200;
      res.end('ok');
    });
    const r = new WebhookRestarter({
      url,
      retries: 3,
      backoffMs: 1,
      headers: { authorization: 'Bearer t' },
      now: () => 42,
    });
    await r.restart('ast3');
    expect(bodies).toHaveLength(3);
    expect(bodies[0]).toEqual({
      method: 'POST',
      auth: 'Bearer t',
      body: { action: 'restart', nodeId: 'ast3', ts: 42 },
    });
  });

  it('does not retry a 4xx, and gives up with a timeout on a silent endpoint', async () => {
    let hits = 0;
    const url = await serve((_req, _body, res) => {
      hits++;
      res.statusCode = 404;
      res.end('no such node');
    });
    await expect(new WebhookRestarter({ url, retries: 3, backoffMs: 1 }).restart('ast1')).rejects.toMatchObject({
      details: { status: 404, body: 'no such node' },
    });
    expect(hits).toBe(1);
    await new Promise<void>((r) => server?.close(() => r()));
    server = null;

    let silentHits = 0;
    const pending: ServerResponse[] = [];
    const silent = await serve((_req, _body, res) => {
      silentHits++;
      pending.push(res); // never answers
    });
    await expect(
      new WebhookRestarter({ url: silent, retries: 1, backoffMs: 1, timeoutMs: 100 }).restart('ast1'),
    ).rejects.toMatchObject({ code: 'FORESIGHT_ERR_TIMEOUT' });
    expect(silentHits).toBe(2);
    for (const res of pending) res.destroy();
  });

  it('rejects a URL that is not http(s)', () => {
    expect(() => new WebhookRestarter({ url: 'ftp://x' })).toThrow(/http/);
    expect(() => new WebhookRestarter({ url: 'not a url' })).toThrow(/invalid/);
  });
});

describe('DryRunDispatcher without a real dispatcher', () => {
  it('reports the configured destinations and overlays its would-be changes', async () => {
    const d = new DryRunDispatcher({ destinations: [{ setId: 1, uri: 'sip:127.0.0.1:5071' }], now: () => 7 });
    await d.drain(1, 'SIP:127.0.0.1:5071');
    expect((await d.list())[0]).toMatchObject({ state: 'disabled', flags: 'DX' });
    await d.activate(1, 'sip:127.0.0.1:5071');
    expect((await d.list())[0]).toMatchObject({ state: 'active', flags: 'AP' });
    expect(d.actions).toEqual([
      { op: 'drain', setId: 1, target: 'SIP:127.0.0.1:5071', at: 7 },
      { op: 'activate', setId: 1, target: 'sip:127.0.0.1:5071', at: 7 },
    ]);
  });
});
