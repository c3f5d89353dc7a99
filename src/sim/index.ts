export {
  type IncidentOutcome,
  type IncidentOutcomeKind,
  type ProbeState,
  type SimNodeStatus,
  type SimNodeView,
  SimulatedCluster,
  type SimulatorStats,
} from './cluster.js';
export {
  DEFAULT_MODE_WEIGHTS,
  DEFAULT_OPTIONS,
  type DisturbanceOptions,
  type IncidentPlan,
  MODE_DURATION_MS,
  type RandomIncidentOptions,
  resolveOptions,
  type SimulatedClusterInput,
  type SimulatedClusterOptions,
} from './options.js';
