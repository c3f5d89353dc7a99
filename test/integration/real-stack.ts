import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import {
  createScratchDatabase,
  NODE_IDS,
  type NodeInputs,
  PG_ADMIN_URL,
  REPO,
  type ScratchDatabase,
} from '../chaos/env.js';
import { AmiReplayServer } from '../helpers/ami-replay-server.js';
import { kafkaService } from './kafka-support.js';
import { type KamailioLab, startKamailioLab } from './kamailio-env.js';

const run = promisify(execFile);

/**
 * What a `foresight run` sidecar test needs around it: node_exporter, Kafka, the Kamailio lab with its sipp backends,
 * a scratch PostgreSQL database as the store, and one AMI replay server per node; `inputs` wires each node to its AMI
 * server, the local PostgreSQL as its realtime database, and node_exporter.
 */
export interface RealStack {
  lab: KamailioLab;
  db: ScratchDatabase;
  ami: ReadonlyMap<string, AmiReplayServer>;
  inputs: Record<string, NodeInputs>;
  /** Closes the AMI servers, puts every dispatcher destination back, stops the lab and drops the database. */
  close(): Promise<void>;
}

export async function startRealStack(name: string): Promise<RealStack> {
  await run('bash', [join(REPO, 'scripts/services/node-exporter.sh'), 'start'], { timeout: 120_000 });
  await kafkaService('start');
  const lab = await startKamailioLab();
  const db = await createScratchDatabase(name);
  const ami = new Map<string, AmiReplayServer>();
  const inputs: Record<string, NodeInputs> = {};
  for (const id of NODE_IDS) {
    const server = await AmiReplayServer.start({ username: 'foresight' });
    ami.set(id, server);
    inputs[id] = { amiPort: server.port, dbUrl: PG_ADMIN_URL, metricsUrl: 'http://127.0.0.1:9100/metrics' };
  }
  return {
    lab,
    db,
    ami,
    inputs,
    close: async () => {
      for (const s of ami.values()) await s.close();
      await lab.activateAll().catch(() => undefined);
      await lab.stop();
      await db.drop().catch(() => undefined);
    },
  };
}
