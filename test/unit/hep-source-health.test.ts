import dgram from 'node:dgram';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { silentLogger } from '../../src/log.js';
import { createCollectors, startAll } from '../../src/pipeline/collectors.js';

async function holdUdpPort(): Promise<{ port: number; close: () => Promise<void> }> {
  const sock = dgram.createSocket('udp4');
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
  return { port: sock.address().port, close: () => new Promise((r) => sock.close(() => r())) };
}

function hepSource(port: number) {
  const config = parseConfig({
    mode: 'sidecar',
    nodes: [{ id: 'ast1', uri: 'sip:127.0.0.1:5071' }],
    collectors: { hep: { enabled: true, host: '127.0.0.1', port }, probe: { enabled: false } },
    actions: { dispatcher: { kind: 'simulated' } },
  });
  const source = createCollectors(config, () => {}, silentLogger()).find((s) => s.name === 'hep');
  if (!source) throw new Error('no hep source built');
  return source;
}

describe('the HEP source in readiness', () => {
  it('is unhealthy, naming the port, when another process holds its port; healthy once it listens', async () => {
    const holder = await holdUdpPort();
    const blocked = hepSource(holder.port);
    try {
      // A failed start is logged and never fatal for the other sources, so readiness must carry it.
      await startAll([blocked], silentLogger());
      expect(blocked.health()).toEqual([
        { name: 'hep', ok: false, detail: `not listening on 127.0.0.1:${holder.port}` },
      ]);
    } finally {
      await blocked.stop();
      await holder.close();
    }
    const free = hepSource(holder.port);
    try {
      await startAll([free], silentLogger());
      expect(free.health()[0]).toMatchObject({ name: 'hep', ok: true });
    } finally {
      await free.stop();
    }
  });
});
