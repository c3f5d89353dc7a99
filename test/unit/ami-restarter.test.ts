import { afterEach, describe, expect, it } from 'vitest';
import { AmiRestarter, type AmiRestarterOptions } from '../../src/actions/restarter/ami.js';
import { ForesightError } from '../../src/errors.js';
import { AmiReplayServer, type AmiReplayServerOptions } from '../helpers/ami-replay-server.js';

const servers: AmiReplayServer[] = [];
afterEach(async () => {
  while (servers.length) await servers.pop()?.close();
});

async function setup(serverOpts: AmiReplayServerOptions = {}, opts: Partial<AmiRestarterOptions> = {}) {
  const server = await AmiReplayServer.start(serverOpts);
  servers.push(server);
  const restarter = new AmiRestarter({
    endpoint: (nodeId) =>
      nodeId === 'ast1' ? { host: '127.0.0.1', port: server.port, username: 'sidecar', secret: 'good' } : undefined,
    timeoutMs: 2000,
    ...opts,
  });
  return { server, restarter };
}

async function rejection(p: Promise<unknown>): Promise<ForesightError> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ForesightError);
  return err as ForesightError;
}

describe('AmiRestarter against the replay server', () => {
  it('sends core restart gracefully and treats the closing session as the restart', async () => {
    const { server, restarter } = await setup();
    await restarter.restart('ast1');
    const commands = server.actions('command').map((f) => f.fields.command);
    expect(commands).toEqual(['core restart gracefully']);
    expect(server.actions('login')[0]?.fields.secret).toBe('good');
  });

  it('sends when convenient when configured', async () => {
    const { server, restarter } = await setup({}, { mode: 'when convenient' });
    await restarter.restart('ast1');
    expect(server.actions('command').map((f) => f.fields.command)).toEqual(['core restart when convenient']);
  });

  it('times out when the node never restarts, saying the restart may still be pending', async () => {
    const { restarter } = await setup({ restart: 'hang' }, { timeoutMs: 200 });
    const err = await rejection(restarter.restart('ast1'));
    expect(err.code).toBe('FORESIGHT_ERR_TIMEOUT');
    expect(err.details).toMatchObject({ phase: 'sent', restartPending: true });
  });

  it('fails with FORESIGHT_ERR_RESTARTER on a refused login, without leaking the secret', async () => {
    const { restarter } = await setup({ secret: 'other' });
    const err = await rejection(restarter.restart('ast1'));
    expect(err.code).toBe('FORESIGHT_ERR_RESTARTER');
    expect(err.message).toMatch(/Authentication failed/);
    expect(JSON.stringify(err.details)).not.toContain('good');
  });

  it('fails with a retriable error when nothing listens', async () => {
    const { server, restarter } = await setup();
    servers.pop();
    await server.close();
    const err = await rejection(restarter.restart('ast1'));
    expect(err.code).toBe('FORESIGHT_ERR_RESTARTER');
    expect(err.retriable).toBe(true);
    expect(err.details.phase).toBe('connecting');
  });

  it('refuses an unknown node', async () => {
    const { restarter } = await setup();
    expect((await rejection(restarter.restart('nope'))).code).toBe('FORESIGHT_ERR_CONFIG');
  });
});
