import { execFile } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { KamailioDispatcher } from '../../src/actions/dispatcher/kamailio.js';
import { AmiRestarter } from '../../src/actions/restarter/ami.js';
import { commandOutput } from '../../src/ingest/ami/command.js';
import { AmiSession } from '../../src/ingest/ami/session.js';
import { CHAOS_VAR, createScratchDatabase, REPO, type ScratchDatabase, sidecarConfig, waitFor } from '../chaos/env.js';
import { type AsteriskNode, amiEndpoint } from './asterisk-env.js';

/**
 * Real Asterisk nodes behind a Kamailio of their own: a second instance of scripts/services/kamailio.sh (SIP 5360,
 * JSON-RPC 5380/5381, HEP to 5390 where nobody listens) whose dispatcher set 1 lists the lab nodes' SIP URIs. The
 * shared instance on 5060 and its sipp backends are left alone.
 */

const run = promisify(execFile);
const SCRIPT = join(REPO, 'scripts/services/kamailio.sh');
const HOME = join(REPO, 'var/kamailio-asterisk');
const TEMPLATES = join(REPO, 'deploy/asterisk/test');
export const AST_PROXY = { sipPort: 5360, rpcUrl: 'http://127.0.0.1:5380/RPC' } as const;

const proxyEnv = () => ({
  FORESIGHT_KAMAILIO_HOME: HOME,
  FORESIGHT_KAMAILIO_SIP_PORT: String(AST_PROXY.sipPort),
  FORESIGHT_KAMAILIO_RPC_PORT: '5380',
  FORESIGHT_KAMAILIO_RPC_UDP_PORT: '5381',
  FORESIGHT_KAMAILIO_HEP_PORT: '5390',
  FORESIGHT_KAMAILIO_LIST: join(HOME, 'asterisk.list'),
});

export const nodeUri = (node: AsteriskNode) => `sip:127.0.0.1:${node.sipPort}`;

async function proxyService(action: 'start' | 'stop'): Promise<void> {
  // Only the script's environment gets these: FORESIGHT_* in this process would be read as Foresight config.
  await run('bash', [SCRIPT, action], { env: { ...process.env, ...proxyEnv() }, timeout: 60_000 });
}

export interface AsteriskProxy {
  dispatcher: KamailioDispatcher;
  /** Destination state of a node in set 1, as Kamailio lists it. */
  stateOf(node: AsteriskNode): Promise<{ state: string; flags: string } | undefined>;
  /** Every node back to active, the proxy stopped. */
  close(): Promise<void>;
}

/** (Re)starts the proxy with a list of `nodes` (probing flag, so keepalives run) and waits until all are `AP`. */
export async function startAsteriskProxy(nodes: readonly AsteriskNode[]): Promise<AsteriskProxy> {
  mkdirSync(HOME, { recursive: true });
  const list = nodes.map((n) => `1 ${nodeUri(n)} 8 0 duid=${n.id}`).join('\n');
  writeFileSync(join(HOME, 'asterisk.list'), `# setid destination flags priority attrs\n${list}\n`);
  await proxyService('stop');
  await proxyService('start');
  const dispatcher = new KamailioDispatcher({ url: AST_PROXY.rpcUrl, name: 'ast-proxy', timeoutMs: 1500, retries: 1 });
  const stateOf = async (node: AsteriskNode) => {
    const d = (await dispatcher.list()).find((x) => x.setId === 1 && x.uri === nodeUri(node));
    return d && { state: d.state, flags: d.flags };
  };
  // A fresh proxy marks destinations "trying" until a keepalive round (5 s) is answered.
  await waitFor(
    'every Asterisk node AP in the proxy',
    async () => (await Promise.all(nodes.map(stateOf))).every((s) => s?.flags === 'AP'),
    30_000,
    500,
  );
  return {
    dispatcher,
    stateOf,
    close: async () => {
      for (const n of nodes) await dispatcher.activate(1, nodeUri(n)).catch(() => undefined);
      await dispatcher.close();
      await proxyService('stop');
    },
  };
}

/**
 * A `foresight run` config for the lab nodes: AMI on each (the real node's manager), Foresight's OPTIONS prober on
 * their SIP URIs, drains through the Asterisk proxy, restarts through AMI `core restart gracefully`.
 */
export function asteriskSidecarConfig(o: {
  name: string;
  storeUrl: string;
  apiPort: number;
  nodes: readonly AsteriskNode[];
  actions?: Record<string, unknown>;
  /** Foresight's DB probe per node id: the node's realtime database and the lookup it makes. */
  db?: Record<string, { url: string; query: string }>;
}): Record<string, unknown> {
  const config = sidecarConfig({
    name: o.name,
    storeUrl: o.storeUrl,
    apiPort: o.apiPort,
    actions: {
      dispatcher: { kind: 'kamailio', rpcUrl: AST_PROXY.rpcUrl, timeoutMs: 1500 },
      restarter: { kind: 'ami', amiMode: 'gracefully' },
      ...(o.actions ?? {}),
    },
  });
  config.nodes = o.nodes.map((n) => ({
    id: n.id,
    setId: 1,
    uri: nodeUri(n),
    ami: { host: '127.0.0.1', port: n.amiPort, username: n.amiUser, secret: { value: n.amiSecret } },
    ...(o.db?.[n.id] ? { db: { kind: 'postgres', timeoutMs: 2000, ...o.db[n.id] } } : {}),
  }));
  const collectors = config.collectors as Record<string, unknown>;
  // Five probes per 1 s window: what brings a restarted node back.
  collectors.probe = { enabled: true, intervalMs: 200, timeoutMs: 1000 };
  mkdirSync(CHAOS_VAR, { recursive: true });
  return config;
}

/** A node's realtime database: its PJSIP endpoint read from PostgreSQL on every request, with a delay we set. */
export interface RealtimeDb {
  db: ScratchDatabase;
  /** The lookup the node makes (res_config_pgsql queries the view by id), for Foresight's DB probe. */
  probeQuery: string;
  /** Every read of the view sleeps this long in PostgreSQL: a slow realtime database, as the node feels it. */
  setDelayMs(ms: number): Promise<void>;
}

const REALTIME_FILES = ['sorcery.conf', 'extconfig.conf', 'res_pgsql.conf'];

/**
 * Moves `node`'s PJSIP endpoint into a realtime database of its own (res_config_pgsql + res_sorcery_realtime) and
 * restarts the node on that config. The view `ps_endpoints` sleeps `realtime_delay.ms` per read, so the database is
 * made slow from inside it. `restoreLabConfig` puts the lab config back.
 */
export async function useRealtimeEndpoints(node: AsteriskNode): Promise<RealtimeDb> {
  const db = await createScratchDatabase(`rt_${node.id}`);
  const client = new pg.Client({ connectionString: db.url });
  await client.connect();
  try {
    await client.query(`
      CREATE TABLE ps_endpoints_data (id varchar(40) PRIMARY KEY, transport varchar(40), context varchar(40),
        disallow varchar(200), allow varchar(200), direct_media varchar(10));
      INSERT INTO ps_endpoints_data VALUES ('kamailio', 'transport-udp', 'lab', 'all', 'ulaw', 'no');
      CREATE TABLE realtime_delay (ms integer NOT NULL);
      INSERT INTO realtime_delay VALUES (0);
      CREATE VIEW ps_endpoints AS SELECT e.* FROM ps_endpoints_data e
        CROSS JOIN LATERAL (SELECT pg_sleep(d.ms / 1000.0) FROM realtime_delay d) s;`);
  } finally {
    await client.end();
  }
  const etc = join(node.home, 'etc');
  const url = new URL(db.url);
  writeFileSync(join(etc, 'sorcery.conf'), '[res_pjsip]\nendpoint = realtime,ps_endpoints\n');
  writeFileSync(join(etc, 'extconfig.conf'), '[settings]\nps_endpoints => pgsql,general\n');
  writeFileSync(
    join(etc, 'res_pgsql.conf'),
    `[general]\ndbhost = ${url.hostname}\ndbport = ${url.port || 5432}\ndbname = ${db.name}\n` +
      `dbuser = ${decodeURIComponent(url.username)}\ndbpass = ${decodeURIComponent(url.password)}\nrequirements = warn\n`,
  );
  // The realtime driver must be there before res_pjsip reads its first endpoint.
  const modules = readFileSync(join(TEMPLATES, 'modules.conf'), 'utf8').replace(
    'load => res_pjproject.so',
    'preload => res_config_pgsql.so\nload => res_sorcery_realtime.so\nload => res_pjproject.so',
  );
  writeFileSync(join(etc, 'modules.conf'), modules);
  await restartNode(node);
  return {
    db,
    probeQuery: "SELECT id FROM ps_endpoints WHERE id = 'kamailio'",
    setDelayMs: async (ms) => {
      const c = new pg.Client({ connectionString: db.url });
      await c.connect();
      try {
        await c.query('UPDATE realtime_delay SET ms = $1', [ms]);
      } finally {
        await c.end();
      }
    },
  };
}

/** The node's config as asterisk.sh writes it (endpoint from pjsip.conf), and a restart onto it. */
export async function restoreLabConfig(node: AsteriskNode): Promise<void> {
  const etc = join(node.home, 'etc');
  for (const f of REALTIME_FILES) rmSync(join(etc, f), { force: true });
  copyFileSync(join(TEMPLATES, 'modules.conf'), join(etc, 'modules.conf'));
  await restartNode(node);
}

/** Ends the node's channels, restarts it through AMI and waits until it serves its endpoint again. */
async function restartNode(node: AsteriskNode): Promise<void> {
  const uptime = async () =>
    Number(/System uptime: (\d+)/.exec(await amiCommand(node, 'core show uptime seconds'))?.[1]);
  const before = await uptime();
  await amiCommand(node, 'channel request hangup all');
  await new AmiRestarter({ endpoint: () => amiEndpoint(node), timeoutMs: 30_000 }).restart(node.id);
  await waitFor(
    `${node.id} serving its endpoint after the restart`,
    async () =>
      (await uptime()) < before && (await amiCommand(node, 'pjsip show endpoint kamailio')).includes('kamailio'),
    30_000,
    300,
  );
}

async function amiCommand(node: AsteriskNode, command: string): Promise<string> {
  const session = await AmiSession.open(amiEndpoint(node));
  try {
    const { response } = await session.action({ Action: 'Command', Command: command });
    return commandOutput(response).join('\n');
  } finally {
    session.close();
  }
}
