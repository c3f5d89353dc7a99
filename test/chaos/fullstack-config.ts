/**
 * Prints the sidecar config of the full-stack environment (scripts/fullstack.sh): ast1..ast3 on the test Kamailio's
 * dispatcher URIs, AMI at the replay servers' ports (read from --ami-ports), the realtime-database probe and the
 * store on the local PostgreSQL, node_exporter for host metrics, HEP on 9060, Kafka bus, API on --api-port.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { NODE_IDS, type NodeInputs, PG_ADMIN_URL, sidecarConfig } from './env.js';

const { values } = parseArgs({
  options: {
    'ami-ports': { type: 'string' },
    'api-port': { type: 'string', default: '8080' },
    'store-url': { type: 'string' },
  },
});
const ports = values['ami-ports']
  ? (JSON.parse(readFileSync(values['ami-ports'], 'utf8')) as Record<string, number>)
  : {};
const inputs: Record<string, NodeInputs> = {};
for (const id of NODE_IDS) {
  const amiPort = ports[id];
  inputs[id] = {
    dbUrl: PG_ADMIN_URL,
    metricsUrl: 'http://127.0.0.1:9100/metrics',
    ...(amiPort !== undefined ? { amiPort } : {}),
  };
}
const config = sidecarConfig({
  name: 'fullstack',
  topicPrefix: 'fullstack',
  storeUrl: values['store-url'] ?? PG_ADMIN_URL,
  apiPort: Number(values['api-port']),
  inputs,
  hep: true,
  kamailioStats: true,
  // Product defaults (hysteresis, cooldown, rate limit) for an environment explored by hand; only the caps are set.
  actions: { guardrails: { minActive: 2, maxOutOfService: 1 } },
});
process.stdout.write(`${JSON.stringify(config, null, 2)}\n`);
