/**
 * Restarts an Asterisk node with the AMI Command `core restart gracefully` (or `when convenient`), over a dedicated
 * short-lived connection made with the asterisk-manager package.
 *
 * Asterisk runs the restart handler synchronously: no response comes back; the session closes when Asterisk restarts
 * (domain README C.5). So the closing of the connection after the command was sent is the expected sign of success,
 * and a response is a failure (refused, or the shutdown was aborted). asterisk-manager is sound for this one-shot use
 * once its gaps are covered here: our own overall timeout (it has none), our own `error` listener (it swallows socket
 * errors), no keepConnected (we want no reconnection), and no reliance on its `events` flag. See docs/ami.md.
 */
import AsteriskManager, { type Manager, type ManagerMessage } from 'asterisk-manager';
import { errorMessage, ForesightError } from '../../errors.js';
import type { AmiEndpoint } from '../../ingest/ami/session.js';
import { type Logger, silentLogger } from '../../log.js';
import type { Restarter } from '../ports.js';

export type AmiRestartMode = 'gracefully' | 'when convenient';

export interface AmiRestarterOptions {
  /** AMI endpoint of each node; undefined for a node this restarter does not know. */
  endpoint: (nodeId: string) => AmiEndpoint | undefined;
  /** `gracefully` (default): new calls refused, waits for active calls. `when convenient`: waits for an idle moment. */
  mode?: AmiRestartMode;
  /** Overall bound from connect to the connection closing. Default 120 s (a graceful restart waits for calls). */
  timeoutMs?: number;
  logger?: Logger;
}

type Phase = 'connecting' | 'login' | 'sent';

export class AmiRestarter implements Restarter {
  readonly name = 'ami';
  private readonly logger: Logger;

  constructor(private readonly options: AmiRestarterOptions) {
    this.logger = (options.logger ?? silentLogger()).child({ component: 'ami-restarter' });
  }

  restart(nodeId: string): Promise<void> {
    const endpoint = this.options.endpoint(nodeId);
    if (!endpoint) {
      return Promise.reject(
        new ForesightError('FORESIGHT_ERR_CONFIG', `no AMI endpoint configured for node ${nodeId}`),
      );
    }
    const command = `core restart ${this.options.mode ?? 'gracefully'}`;
    const timeoutMs = this.options.timeoutMs ?? 120_000;
    const where = { nodeId, host: endpoint.host, port: endpoint.port };

    return new Promise<void>((resolve, reject) => {
      // No port: the constructor must not connect and log in on its own, so that we own every callback.
      const ami: Manager = AsteriskManager(undefined, endpoint.host, endpoint.username, endpoint.secret, false);
      let phase: Phase = 'connecting';
      let socketError: Error | null = null;
      let done = false;

      const finish = (err?: Error) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        ami.removeAllListeners();
        ami.on('error', () => {}); // late socket errors after we leave
        ami.disconnect();
        if (err) {
          this.logger.warn({ ...where, err: err.message }, 'AMI restart failed');
          reject(err);
        } else {
          this.logger.info({ ...where, command }, 'AMI session closed after restart command: node is restarting');
          resolve();
        }
      };

      const timer = setTimeout(() => {
        finish(
          new ForesightError(
            'FORESIGHT_ERR_TIMEOUT',
            `AMI restart of ${nodeId} timed out after ${timeoutMs} ms (${phase})`,
            {
              // Once sent, the restart stays pending in Asterisk even though we hang up.
              details: { ...where, phase, restartPending: phase === 'sent' },
            },
          ),
        );
      }, timeoutMs);

      ami.on('error', (err: Error) => {
        socketError = err;
      });
      ami.on('close', () => {
        if (phase === 'sent') finish();
        else {
          finish(
            new ForesightError('FORESIGHT_ERR_RESTARTER', `AMI connection to ${nodeId} closed during ${phase}`, {
              cause: socketError ?? undefined,
              details: { ...where, phase, error: socketError ? errorMessage(socketError) : null },
            }),
          );
        }
      });

      ami.connect(endpoint.port, endpoint.host, () => {
        phase = 'login';
        ami.login((loginErr?: ManagerMessage) => {
          if (loginErr) {
            finish(
              new ForesightError(
                'FORESIGHT_ERR_RESTARTER',
                `AMI login to ${nodeId} refused: ${text(loginErr.message)}`,
                {
                  details: { ...where, phase },
                },
              ),
            );
            return;
          }
          phase = 'sent';
          this.logger.info({ ...where, command }, 'sending AMI restart command');
          ami.action({ action: 'Command', command }, (err, res) => {
            // Any response means Asterisk did not restart on this command.
            const msg = (err ?? res) as ManagerMessage | undefined;
            finish(
              new ForesightError(
                'FORESIGHT_ERR_RESTARTER',
                `AMI ${command} on ${nodeId} answered instead of restarting`,
                {
                  details: { ...where, response: text(msg?.response), output: text(msg?.output) },
                },
              ),
            );
          });
        });
      });
    });
  }
}

/** asterisk-manager gives a string, an array (repeated keys) or nothing. */
function text(value: ManagerMessage[string]): string {
  if (value === undefined) return '';
  if (typeof value === 'string') return value;
  if (Array.isArray(value)) return value.join('\n');
  return JSON.stringify(value);
}
