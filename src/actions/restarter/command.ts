/** Restarts a node by running an operator-supplied shell command (ssh, systemctl, an orchestrator CLI...). */
import { execFile } from 'node:child_process';
import { ForesightError } from '../../errors.js';
import type { Logger } from '../../log.js';
import { silentLogger } from '../../log.js';
import type { Restarter } from '../ports.js';

export interface CommandRestarterOptions {
  /**
   * Run with `/bin/sh -c`. The node id is passed as `$1` and as `FORESIGHT_NODE_ID`, never spliced into the text,
   * so a node id cannot inject shell syntax. Example: `ssh "$1" sudo systemctl restart asterisk`.
   */
  command: string;
  /** Kill the command after this long. Default 60 s. */
  timeoutMs?: number;
  logger?: Logger;
}

const NODE_ID = /^[A-Za-z0-9._:-]{1,128}$/;
const OUTPUT_TAIL = 2000;

export class CommandRestarter implements Restarter {
  readonly name = 'command';
  private readonly logger: Logger;

  constructor(private readonly options: CommandRestarterOptions) {
    if (!options.command.trim()) throw new ForesightError('FORESIGHT_ERR_CONFIG', 'restart command is empty');
    this.logger = (options.logger ?? silentLogger()).child({ component: 'command-restarter' });
  }

  restart(nodeId: string): Promise<void> {
    if (!NODE_ID.test(nodeId)) {
      return Promise.reject(
        new ForesightError('FORESIGHT_ERR_BAD_REQUEST', `invalid node id ${JSON.stringify(nodeId)}`),
      );
    }
    const timeout = this.options.timeoutMs ?? 60_000;
    return new Promise((resolve, reject) => {
      execFile(
        '/bin/sh',
        ['-c', this.options.command, 'foresight-restart', nodeId],
        { timeout, killSignal: 'SIGKILL', env: { ...process.env, FORESIGHT_NODE_ID: nodeId }, maxBuffer: 1 << 20 },
        (err, stdout, stderr) => {
          if (!err) {
            this.logger.info({ nodeId }, 'restart command succeeded');
            resolve();
            return;
          }
          const e = err as NodeJS.ErrnoException & { killed?: boolean; code?: number | string | null };
          const output = `${stderr}${stdout}`.slice(-OUTPUT_TAIL);
          if (e.killed) {
            reject(
              new ForesightError(
                'FORESIGHT_ERR_TIMEOUT',
                `restart command for ${nodeId} timed out after ${timeout} ms`,
                {
                  cause: err,
                  details: { output },
                },
              ),
            );
            return;
          }
          reject(
            new ForesightError('FORESIGHT_ERR_RESTARTER', `restart command for ${nodeId} failed (exit ${e.code})`, {
              cause: err,
              details: { exitCode: e.code, output },
            }),
          );
        },
      );
    });
  }
}
