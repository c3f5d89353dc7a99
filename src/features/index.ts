export {
  type ExtractorStats,
  FeatureExtractor,
  type FeatureExtractorOptions,
  type NodeFeatureState,
  type NodeRef,
  REJECT_REASONS,
  type RejectedSample,
  type RejectReason,
} from './extractor.js';
export {
  DERIVED_FEATURES,
  EWMA_SIGNALS,
  FEATURE_DOCS,
  FEATURE_INDEX,
  FEATURE_NAMES,
  featureArray,
  featureIndex,
  RAW_FEATURES,
  SLOPE_SIGNALS,
  slopeFeature,
  Z_LIMIT,
  Z_SIGNALS,
} from './names.js';
export { clampZ, Ring, robustZ, slopePerMinute } from './stats.js';
