import { ForesightError } from '../errors.js';

export async function runSidecar(_opts: { config: string }): Promise<void> {
  throw new ForesightError('FORESIGHT_ERR_CONFIG', 'sidecar mode is being wired; use `foresight demo` for now');
}
