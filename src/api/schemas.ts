import { type Static, Type } from '@sinclair/typebox';
import { AUDIT_KINDS, LIFECYCLE_STATES } from '../messages.js';

/** JSON schemas of every route, in TypeBox so the types and the validation come from one place. */

export const ErrorBody = Type.Object(
  { error: Type.Object({ code: Type.String(), message: Type.String() }) },
  { description: 'Every 4xx/5xx answer' },
);

export const NodeIdParams = Type.Object({
  id: Type.String({ pattern: '^[A-Za-z0-9._:-]{1,64}$', description: 'Node id as configured, e.g. ast1' }),
});
export type NodeIdParams = Static<typeof NodeIdParams>;

export const DecisionIdParams = Type.Object({
  id: Type.String({ pattern: '^[A-Za-z0-9._:-]{1,128}$', description: 'Decision id' }),
});
export type DecisionIdParams = Static<typeof DecisionIdParams>;

const Contribution = Type.Object({ feature: Type.String(), weight: Type.Number(), value: Type.Number() });
const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(t: T) => Type.Union([t, Type.Null()]);

export const NodeViewSchema = Type.Object({
  nodeId: Type.String(),
  setId: Nullable(Type.Integer()),
  uri: Nullable(Type.String()),
  state: Type.Union([...LIFECYCLE_STATES.map((s) => Type.Literal(s)), Type.Literal('unknown')]),
  stateSince: Nullable(Type.Number({ description: 'epoch ms' })),
  stateReason: Nullable(Type.String()),
  pinned: Type.Boolean(),
  manualOverride: Nullable(Type.String()),
  risk: Nullable(Type.Number({ minimum: 0, maximum: 1 })),
  timeToFailureS: Nullable(Type.Number({ description: 'seconds' })),
  explanation: Type.Array(Contribution),
  activeCalls: Nullable(Type.Number({ description: 'null when nothing counted the calls' })),
  activeCallsSource: Nullable(Type.Union([Type.Literal('ami'), Type.Literal('sip')])),
  observed: Type.Boolean(),
  up: Nullable(Type.Boolean()),
  scorer: Nullable(Type.String()),
  scoreTs: Nullable(Type.Number({ description: 'epoch ms' })),
  features: Nullable(Type.Record(Type.String(), Type.Number())),
  featuresWindowEnd: Nullable(Type.Number({ description: 'epoch ms' })),
});

export const NodesResponse = Type.Object({
  threshold: Type.Number({ description: 'Risk threshold of the action engine' }),
  nodes: Type.Array(NodeViewSchema),
});

const HistoryPointSchema = Type.Object({
  ts: Type.Number(),
  risk: Type.Number(),
  timeToFailureS: Nullable(Type.Number()),
  observed: Type.Boolean(),
  activeCalls: Nullable(Type.Number()),
  up: Type.Boolean(),
});

export const HistoryQuery = Type.Object(
  {
    before: Type.Optional(Type.Integer({ minimum: 0, description: 'Only points strictly before this epoch ms' })),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 5000, default: 360 })),
  },
  { additionalProperties: false },
);
export type HistoryQuery = Static<typeof HistoryQuery>;

export const HistoryResponse = Type.Object({
  nodeId: Type.String(),
  items: Type.Array(HistoryPointSchema),
  nextBefore: Nullable(Type.Number()),
});

export const ActionBody = Type.Object(
  {
    reason: Type.String({ minLength: 1, maxLength: 1000, pattern: '\\S', description: 'Why, in plain words' }),
    force: Type.Optional(Type.Boolean({ description: 'Skip soft guardrails (cooldown, hysteresis)' })),
  },
  { additionalProperties: false },
);
export type ActionBody = Static<typeof ActionBody>;

export const VerdictBody = Type.Object(
  {
    verdict: Type.Union([Type.Literal('correct'), Type.Literal('false_alarm')]),
    reason: Type.String({ minLength: 1, maxLength: 1000, pattern: '\\S' }),
  },
  { additionalProperties: false },
);
export type VerdictBody = Static<typeof VerdictBody>;

export const AuditRecordSchema = Type.Object({
  seq: Type.Integer(),
  ts: Type.Number(),
  nodeId: Type.String(),
  kind: Type.String(),
  actor: Type.String(),
  reason: Type.String(),
  decisionId: Nullable(Type.String()),
  dryRun: Type.Boolean(),
  details: Type.Object({}, { additionalProperties: true }),
});

export const ActionResponse = Type.Object({ audit: AuditRecordSchema });

export const AuditQuerySchema = Type.Object(
  {
    nodeId: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9._:-]{1,64}$' })),
    kind: Type.Optional(Type.Union(AUDIT_KINDS.map((k) => Type.Literal(k)))),
    before: Type.Optional(Type.Integer({ minimum: 0, description: 'Only records with seq strictly below' })),
    since: Type.Optional(Type.Integer({ minimum: 0, description: 'Only records at or after this epoch ms' })),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500, default: 50 })),
  },
  { additionalProperties: false },
);
export type AuditQuerySchema = Static<typeof AuditQuerySchema>;

export const AuditPage = Type.Object({
  items: Type.Array(AuditRecordSchema),
  nextBefore: Nullable(Type.Integer()),
});

export const ModelResponse = Type.Object(
  { name: Type.String(), version: Type.String() },
  { additionalProperties: true },
);

export const RollbackBody = Type.Object(
  { reason: Type.String({ minLength: 1, maxLength: 1000, pattern: '\\S', description: 'Why, in plain words' }) },
  { additionalProperties: false },
);
export type RollbackBody = Static<typeof RollbackBody>;

const ThresholdEntry = Type.Object({
  scorer: Type.String(),
  threshold: Type.Number(),
  falseAlarms: Type.Integer(),
  trueAlarms: Type.Integer(),
  /** Epoch ms of the last move; 0 when verdicts never moved it. */
  updatedAt: Type.Number(),
  inCharge: Type.Boolean(),
});

export const ThresholdsResponse = Type.Object({
  inCharge: Type.Union([Type.String(), Type.Null()], { description: 'scorer whose scores the decisions use now' }),
  effective: Type.Number({ description: 'drain threshold in use now' }),
  configured: Type.Number({ description: 'actions.guardrails.riskThreshold' }),
  feedback: Type.Object({
    enabled: Type.Boolean(),
    min: Type.Number(),
    max: Type.Number(),
    falseAlarmStep: Type.Number(),
    trueAlarmStep: Type.Number(),
  }),
  scorers: Type.Array(ThresholdEntry),
});

export const ConfigResponse = Type.Object({}, { additionalProperties: true });

export const Liveness = Type.Object({ status: Type.Literal('ok') });

export const Readiness = Type.Object({
  ready: Type.Boolean(),
  checks: Type.Array(Type.Object({ name: Type.String(), ok: Type.Boolean(), detail: Type.Optional(Type.String()) })),
});

export const EventsQuery = Type.Object(
  { token: Type.Optional(Type.String({ maxLength: 512 })) },
  { additionalProperties: false },
);

/** 4xx answers documented on every route. */
export const clientErrors = { 400: ErrorBody, 401: ErrorBody, 403: ErrorBody, 404: ErrorBody } as const;
