/** What the lifecycle keeps across restarts: which scorer is in charge, since when and why, and the one before it. */
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { ForesightError } from '../../errors.js';
import type { ScorerValidation } from './rule.js';

/** `stat`, or a model artefact trained by the lifecycle (a directory under model.lifecycle.dir). */
export type ScorerRef = { kind: 'stat'; name: string } | { kind: 'tfjs'; name: string; path: string };

export interface InCharge {
  scorer: ScorerRef;
  /** Epoch ms. */
  since: number;
  /** Why it took over, in one line (the rule's verdict, a rollback's actor and reason, or the start). */
  why: string;
  /** The checks of the promotion rule and the figures they compared, when a promotion put it there. */
  reasons?: string[];
  validation?: { candidate: ScorerValidation; stat: ScorerValidation };
}

export interface LifecycleState {
  inCharge: InCharge;
  /** What was in charge before; rollback swaps the two. */
  previous: InCharge | null;
}

/** Where the state lives; a file in production, memory in tests. */
export interface StatePort {
  load(): LifecycleState | null;
  save(state: LifecycleState): void;
}

export function memoryState(initial: LifecycleState | null = null): StatePort & { current: LifecycleState | null } {
  return {
    current: initial,
    load() {
      return this.current;
    },
    save(state) {
      this.current = structuredClone(state);
    },
  };
}

/** `state.json` in the lifecycle's directory, replaced atomically (write, then rename). */
export function fileState(dir: string): StatePort {
  const file = path.join(dir, 'state.json');
  return {
    load() {
      if (!existsSync(file)) return null;
      try {
        const s = JSON.parse(readFileSync(file, 'utf8')) as LifecycleState;
        if (!s?.inCharge?.scorer?.kind) throw new Error('no inCharge.scorer');
        return s;
      } catch (err) {
        throw new ForesightError(
          'FORESIGHT_ERR_CONFIG',
          `${file} is not a model lifecycle state (${(err as Error).message}); move it away to start from stat`,
        );
      }
    },
    save(state) {
      mkdirSync(dir, { recursive: true });
      writeFileSync(`${file}.tmp`, `${JSON.stringify(state, null, 2)}\n`);
      renameSync(`${file}.tmp`, file);
    },
  };
}
