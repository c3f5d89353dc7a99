import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { type AmiEndpoint, AmiSession } from '../../src/ingest/ami/session.js';

/** Real Asterisk lab nodes from scripts/services/asterisk.sh (see deploy/asterisk/test/ for their config). */

const run = promisify(execFile);
const REPO = resolve(import.meta.dirname, '../..');
const SCRIPT = join(REPO, 'scripts/services/asterisk.sh');
const HOME = process.env.FORESIGHT_ASTERISK_HOME ?? join(REPO, 'var/asterisk');

/** The first `install` builds Asterisk (about 10 min on 2 cores); later runs find the cached build at once. */
export const ASTERISK_START_TIMEOUT_MS = 30 * 60_000;

export interface AsteriskNode {
  id: string;
  sipPort: number;
  amiPort: number;
  amiUser: string;
  amiSecret: string;
  home: string;
}

export async function asteriskService(action: 'start' | 'stop' | 'status', nodes = 2): Promise<string> {
  const args = action === 'start' ? [SCRIPT, action, String(nodes)] : [SCRIPT, action];
  const { stdout, stderr } = await run('bash', args, { timeout: ASTERISK_START_TIMEOUT_MS });
  return `${stdout}${stderr}`;
}

/** Starts (or keeps) `count` nodes and returns them as the script wrote them to nodes.json. */
export async function startAsteriskNodes(count: number): Promise<AsteriskNode[]> {
  await asteriskService('start', count);
  const nodes = JSON.parse(readFileSync(join(HOME, 'nodes.json'), 'utf8')) as AsteriskNode[];
  if (nodes.length !== count) throw new Error(`nodes.json lists ${nodes.length} nodes, expected ${count}`);
  return nodes;
}

export function amiEndpoint(node: AsteriskNode): AmiEndpoint {
  return { host: '127.0.0.1', port: node.amiPort, username: node.amiUser, secret: node.amiSecret };
}

/** CoreStatus's start-up date and time: changes when the process really restarted. */
export async function coreStartup(node: AsteriskNode): Promise<string> {
  const session = await AmiSession.open(amiEndpoint(node));
  try {
    const { response } = await session.action({ Action: 'CoreStatus' });
    return `${response.fields.corestartupdate} ${response.fields.corestartuptime}`;
  } finally {
    session.close();
  }
}
