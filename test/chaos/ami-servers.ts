/**
 * AMI replay servers for the full-stack environment (scripts/fullstack.sh): one per node, each replaying recorded
 * Asterisk traffic (test/helpers/ami-replay-server.ts) and sending the recorded call and media event bursts every few
 * seconds so the collectors see a live node. Writes `{ "ast1": port, ... }` to the file named by --ports-file once
 * every server listens, and runs until SIGTERM/SIGINT.
 *
 *   tsx test/chaos/ami-servers.ts --nodes ast1,ast2,ast3 --ports-file var/fullstack/ami-ports.json
 */
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { AmiReplayServer } from '../helpers/ami-replay-server.js';

const { values } = parseArgs({
  options: {
    nodes: { type: 'string', default: 'ast1,ast2,ast3' },
    'ports-file': { type: 'string' },
    'events-every-ms': { type: 'string', default: '3000' },
  },
});
const nodeIds = (values.nodes ?? '').split(',').filter(Boolean);
const servers = new Map<string, AmiReplayServer>();
for (const id of nodeIds) servers.set(id, await AmiReplayServer.start({ username: 'foresight' }));
const ports = Object.fromEntries([...servers].map(([id, s]) => [id, s.port]));
if (values['ports-file']) writeFileSync(values['ports-file'], `${JSON.stringify(ports)}\n`);
console.log(JSON.stringify({ event: 'listening', ports }));

const every = Math.max(200, Number(values['events-every-ms']));
let turn = 0;
const timer = setInterval(() => {
  turn++;
  for (const s of servers.values()) s.sendEvents(turn % 2 === 0 ? 'events-media' : 'events-calls');
}, every);

const shutdown = async () => {
  clearInterval(timer);
  for (const s of servers.values()) await s.close();
  process.exit(0);
};
process.once('SIGTERM', () => void shutdown());
process.once('SIGINT', () => void shutdown());
