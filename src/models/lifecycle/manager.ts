/**
 * The model lifecycle in the live loop: record → train → validate → shadow → promote (or refuse), on a schedule, with
 * the previous scorer kept for rollback. It is itself the loop's Scorer: every batch goes to `stat` (kept warm, so a
 * rollback is instant), to the model in charge if any, and to a candidate in shadow; only the in-charge scores leave.
 * Time is the event time of the windows it scores (or what tests pass to tick), never the wall clock.
 */
import { Cron } from 'croner';
import { ForesightError } from '../../errors.js';
import type { Logger } from '../../log.js';
import type { AuditKind, AuditRecord, FeatureVector, NodeScore } from '../../messages.js';
import type { Scorer, ScorerNodeState, StateImport } from '../scorers/scorer.js';
import type { NodeSpan } from '../training/labels.js';
import { heldBackFrom, type Recording, scoreRecording, validateScores } from './cycle.js';
import {
  judgePromotion,
  judgeShadow,
  type PromotionRule,
  type PromotionVerdict,
  type ScorerValidation,
  type ShadowTally,
} from './rule.js';
import type { InCharge, LifecycleState, ScorerRef, StatePort } from './state.js';

export interface LifecycleSettings {
  /** Telemetry one cycle learns from: the last recordMs before the cycle. ms */
  recordMs: number;
  /** Most recent share of the recording held back from training, to validate on. (0, 1) */
  heldBackFraction: number;
  /** How long a candidate that passed validation runs beside the scorer in charge before it may take over. ms */
  shadowMs: number;
  /** Fewest live windows scored side by side in shadow. */
  shadowMinWindows: number;
  /** Retraining schedule, croner syntax (UTC). */
  schedule: string;
  /** The drain threshold the rule judges false alarms and incidents at. */
  threshold: number;
  rule: PromotionRule;
}

/** A trained candidate: its scorer, where its artefact was saved, its name. */
export interface Candidate {
  ref: Extract<ScorerRef, { kind: 'tfjs' }>;
  scorer: Scorer;
}

/** What the lifecycle needs from the rest of the system, each behind a narrow port. */
export interface LifecyclePorts {
  /** The live `stat` scorer, which keeps learning every node's baseline while it runs. */
  stat: Scorer;
  /** A fresh `stat`, to judge it on a recording the same way as the candidate. */
  freshStat: () => Scorer;
  /** The telemetry of [fromTs, toTs) through the feature extractor (read back from the bus). */
  record: (fromTs: number, toTs: number) => Promise<Recording>;
  /** Incidents (confirmed drains) and false drains operators named in that range, from the audit trail. */
  labels: (fromTs: number, toTs: number) => Promise<{ incidents: NodeSpan[]; falseDrains: NodeSpan[] }>;
  /** Trains and saves a candidate on the recording's part before `heldBackFrom`. */
  train: (
    recording: Recording,
    o: { heldBackFrom: number; incidents: NodeSpan[]; falseDrains: NodeSpan[]; at: number },
  ) => Promise<Candidate>;
  /** Loads a saved model back (at start-up, and for a rollback to it). */
  load: (ref: Extract<ScorerRef, { kind: 'tfjs' }>) => Promise<Scorer>;
  /** Frees a refused candidate's artefact (only models in charge or previous are kept). */
  discard?: (ref: Extract<ScorerRef, { kind: 'tfjs' }>) => void;
  /** Writes an audit record (the store's appendAudit). */
  audit: (record: Omit<AuditRecord, 'seq'>) => Promise<AuditRecord>;
  state: StatePort;
  logger: Logger;
}

export type Phase = 'recording' | 'idle' | 'training' | 'validating' | 'shadow';

export interface CycleOutcome {
  at: number;
  outcome: 'promoted' | 'refused' | 'failed';
  candidate: string | null;
  reasons: string[];
  validation?: { candidate: ScorerValidation; stat: ScorerValidation };
  shadow?: ShadowTally;
}

interface Shadow {
  candidate: Candidate;
  since: number;
  until: number;
  tally: ShadowTally;
  validation: { candidate: ScorerValidation; stat: ScorerValidation };
  verdict: PromotionVerdict;
}

const AUDIT_NODE = 'model';

export class ModelLifecycle implements Scorer {
  private state: LifecycleState;
  private model: Scorer | null = null;
  private phase: Phase = 'recording';
  private phaseSince: number;
  private nextCycleAt: number;
  private shadow: Shadow | null = null;
  private lastCycle: CycleOutcome | null = null;
  private running: Promise<void> | null = null;
  private now: number;
  private stopped = false;
  private readonly cron: Cron;
  /** Called with each audit record once stored (the dashboard view). */
  onAudit: ((record: AuditRecord) => void) | null = null;

  private constructor(
    private readonly ports: LifecyclePorts,
    private readonly settings: LifecycleSettings,
    startedAt: number,
  ) {
    try {
      this.cron = new Cron(settings.schedule, { paused: true, timezone: 'UTC' });
    } catch (err) {
      throw new ForesightError(
        'FORESIGHT_ERR_CONFIG',
        `model.lifecycle.schedule "${settings.schedule}" is not a cron expression: ${(err as Error).message}`,
      );
    }
    this.now = startedAt;
    this.phaseSince = startedAt;
    // The first cycle learns from what this process saw on the bus: it waits for one full recording period.
    this.nextCycleAt = startedAt + settings.recordMs;
    this.state = ports.state.load() ?? {
      inCharge: {
        scorer: { kind: 'stat', name: ports.stat.name },
        since: startedAt,
        why: 'start: no model promoted yet',
      },
      previous: null,
    };
  }

  /** Builds the lifecycle and loads the model in charge from its saved state, if one was promoted before. */
  static async start(ports: LifecyclePorts, settings: LifecycleSettings, startedAt: number): Promise<ModelLifecycle> {
    const lc = new ModelLifecycle(ports, settings, startedAt);
    const ref = lc.state.inCharge.scorer;
    if (ref.kind === 'tfjs') {
      try {
        lc.model = await ports.load(ref);
      } catch (err) {
        ports.logger.error(
          { err: (err as Error).message, path: ref.path },
          'model in charge cannot be loaded; stat decides',
        );
        lc.state = {
          inCharge: {
            scorer: { kind: 'stat', name: ports.stat.name },
            since: startedAt,
            why: `start: ${ref.path} failed to load`,
          },
          previous: lc.state.inCharge,
        };
        ports.state.save(lc.state);
      }
    }
    return lc;
  }

  get name(): string {
    return this.model?.name ?? this.ports.stat.name;
  }

  score(vectors: readonly FeatureVector[]): NodeScore[] {
    const stat = this.ports.stat.score(vectors);
    const inCharge = this.model ? this.model.score(vectors) : stat;
    const shadow = this.shadow;
    if (shadow) {
      const candidate = shadow.candidate.scorer.score(vectors);
      for (let i = 0; i < candidate.length; i++) {
        const c = candidate[i]!;
        if (!c.observed || !c.up) continue;
        shadow.tally.windows++;
        if (c.risk >= this.settings.threshold) shadow.tally.candidateAlarms++;
        if (inCharge[i]!.risk >= this.settings.threshold) shadow.tally.incumbentAlarms++;
      }
    }
    let latest = this.now;
    for (const v of vectors) if (v.windowEnd > latest) latest = v.windowEnd;
    if (latest > this.now) void this.tick(latest);
    return inCharge;
  }

  /** The state of `stat` (always scoring) and of the model in charge, each tagged with its scorer's name. */
  exportStates(include?: (nodeId: string) => boolean): ScorerNodeState[] {
    const model = this.model?.exportStates?.(include) ?? [];
    return [...(this.ports.stat.exportStates?.(include) ?? []), ...model];
  }

  /** Routes a node's state to the scorer it came from: `stat`, or the model in charge when it is the same model. */
  importState(state: ScorerNodeState): StateImport {
    const target = state?.scorer === this.model?.name ? this.model : this.ports.stat;
    return target?.importState?.(state) ?? { ok: false, reason: `${target?.name ?? 'scorer'} keeps no state` };
  }

  /** Moves the lifecycle to `now`: starts a due cycle, ends a shadow period. Resolves when the work it started ends. */
  tick(now: number): Promise<void> {
    if (now > this.now) this.now = now;
    if (this.running || this.stopped) return this.running ?? Promise.resolve();
    const work = this.step(this.now);
    if (!work) return Promise.resolve();
    this.running = work
      .catch((err: unknown) => this.ports.logger.error({ err: (err as Error).message }, 'model lifecycle step failed'))
      .finally(() => {
        this.running = null;
      });
    return this.running;
  }

  /** Waits for the work in progress (tests, shutdown). */
  async idle(): Promise<void> {
    while (this.running) await this.running;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.idle();
  }

  private step(now: number): Promise<void> | null {
    if (this.shadow && now >= this.shadow.until) return this.endShadow(now);
    if (!this.shadow && now >= this.nextCycleAt) return this.cycle(now);
    return null;
  }

  private enter(phase: Phase, at: number): void {
    this.phase = phase;
    this.phaseSince = at;
  }

  private scheduleNext(after: number): void {
    const next = this.cron.nextRun(new Date(after));
    this.nextCycleAt = next ? next.getTime() : Number.POSITIVE_INFINITY;
  }

  private async cycle(at: number): Promise<void> {
    const fromTs = at - this.settings.recordMs;
    this.enter('training', at);
    try {
      const recording = await this.ports.record(fromTs, at);
      const labels = await this.ports.labels(fromTs, at);
      const hb = heldBackFrom(recording, this.settings.heldBackFraction);
      const candidate = await this.ports.train(recording, { heldBackFrom: hb, ...labels, at });
      this.enter('validating', this.now);
      const judge = { heldBackFrom: hb, incidents: labels.incidents, threshold: this.settings.threshold };
      const validation = {
        candidate: validateScores(candidate.ref.name, scoreRecording(candidate.scorer, recording.vectors), judge),
        stat: validateScores(this.ports.stat.name, scoreRecording(this.ports.freshStat(), recording.vectors), judge),
      };
      const verdict = judgePromotion(validation.candidate, validation.stat, this.settings.rule);
      if (!verdict.promote) {
        this.ports.discard?.(candidate.ref);
        await this.finish(at, {
          at,
          outcome: 'refused',
          candidate: candidate.ref.name,
          reasons: verdict.reasons,
          validation,
        });
        return;
      }
      // Validation scored the whole recording with it, so its per-node state (trends) is warm for the live windows.
      this.shadow = {
        candidate,
        since: this.now,
        until: this.now + this.settings.shadowMs,
        tally: { windows: 0, candidateAlarms: 0, incumbentAlarms: 0 },
        validation,
        verdict,
      };
      this.enter('shadow', this.now);
      this.ports.logger.info({ candidate: candidate.ref.name, until: this.shadow.until }, 'candidate model in shadow');
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      await this.finish(at, { at, outcome: 'failed', candidate: null, reasons: [`cycle failed: ${reason}`] });
    }
  }

  private async endShadow(now: number): Promise<void> {
    const s = this.shadow!;
    this.shadow = null;
    const live = judgeShadow(s.tally, this.settings.shadowMinWindows);
    if (!live.promote) this.ports.discard?.(s.candidate.ref);
    const reasons = [...s.verdict.reasons, ...live.reasons];
    const outcome: CycleOutcome = {
      at: now,
      outcome: live.promote ? 'promoted' : 'refused',
      candidate: s.candidate.ref.name,
      reasons,
      validation: s.validation,
      shadow: s.tally,
    };
    if (live.promote) {
      const why = `promoted: beat ${s.validation.stat.scorer} on the held-back recording and in ${Math.round(
        this.settings.shadowMs / 60_000,
      )} min of shadow`;
      this.switchTo(
        { scorer: s.candidate.ref, since: now, why, reasons, validation: s.validation },
        s.candidate.scorer,
      );
      await this.writeAudit('ModelPromoted', now, 'auto', why, {
        candidate: s.candidate.ref,
        reasons,
        validation: s.validation,
        shadow: s.tally,
      });
    }
    await this.finish(now, outcome, live.promote);
  }

  private async finish(now: number, outcome: CycleOutcome, audited = false): Promise<void> {
    this.lastCycle = outcome;
    this.enter('idle', now);
    this.scheduleNext(now);
    if (!audited) {
      await this.writeAudit(
        'ModelRefused',
        now,
        'auto',
        `${outcome.candidate ?? 'cycle'} not promoted: ${outcome.reasons.filter((r) => !r.startsWith('ok')).join('; ')}`,
        {
          ...outcome,
        },
      );
    }
  }

  private switchTo(next: InCharge, scorer: Scorer | null): void {
    this.state = { inCharge: next, previous: this.state.inCharge };
    this.model = scorer;
    this.ports.state.save(this.state);
  }

  /** Puts the previous scorer back in charge (the one being replaced becomes the previous, so rollback is undone by another). */
  async rollback(actor: string, reason: string, at = this.now): Promise<AuditRecord> {
    const previous = this.state.previous;
    if (!previous) {
      throw new ForesightError(
        'FORESIGHT_ERR_CONFLICT',
        'nothing to roll back to: no scorer was in charge before this one',
      );
    }
    const ref = previous.scorer;
    const scorer = ref.kind === 'tfjs' ? await this.ports.load(ref) : null;
    const from = this.state.inCharge.scorer.name;
    const why = `rolled back from ${from} by ${actor}: ${reason}`;
    this.switchTo({ scorer: ref, since: at, why }, scorer);
    return this.writeAudit('ModelRolledBack', at, actor, why, { from: this.state.previous?.scorer, to: ref });
  }

  private async writeAudit(
    kind: AuditKind,
    ts: number,
    actor: string,
    reason: string,
    details: Record<string, unknown>,
  ): Promise<AuditRecord> {
    const record = await this.ports.audit({
      ts,
      nodeId: AUDIT_NODE,
      kind,
      actor,
      reason,
      decisionId: null,
      dryRun: false,
      details: JSON.parse(JSON.stringify(details)) as Record<string, unknown>,
    });
    this.onAudit?.(record);
    return record;
  }

  /** What the API and the dashboard show: who decides, since when and why; where the lifecycle is. */
  status(): LifecycleStatus {
    const iso = (ms: number) => (Number.isFinite(ms) ? new Date(ms).toISOString() : null);
    const show = (c: InCharge) => ({
      ...c.scorer,
      since: iso(c.since),
      why: c.why,
      reasons: c.reasons ?? [],
      validation: c.validation ?? null,
    });
    return {
      inCharge: show(this.state.inCharge),
      previous: this.state.previous ? show(this.state.previous) : null,
      lifecycle: {
        phase: this.phase,
        phaseSince: iso(this.phaseSince),
        nextCycleAt: this.shadow ? null : iso(this.nextCycleAt),
        recordMs: this.settings.recordMs,
        schedule: this.settings.schedule,
        shadow: this.shadow
          ? {
              candidate: this.shadow.candidate.ref.name,
              since: iso(this.shadow.since),
              until: iso(this.shadow.until),
              ...this.shadow.tally,
            }
          : null,
        lastCycle: this.lastCycle ? { ...this.lastCycle, at: iso(this.lastCycle.at) } : null,
      },
    };
  }
}

type ShownInCharge = ScorerRef & {
  since: string | null;
  why: string;
  reasons: string[];
  validation: InCharge['validation'] | null;
};

export interface LifecycleStatus {
  inCharge: ShownInCharge;
  previous: ShownInCharge | null;
  lifecycle: {
    phase: Phase;
    phaseSince: string | null;
    nextCycleAt: string | null;
    recordMs: number;
    schedule: string;
    shadow: (ShadowTally & { candidate: string; since: string | null; until: string | null }) | null;
    lastCycle: (Omit<CycleOutcome, 'at'> & { at: string | null }) | null;
  };
}
