/** Types for `parse-prometheus-text-format` 1.1 (no published types); only the families the host collector reads. */
declare module 'parse-prometheus-text-format' {
  export interface PrometheusSample {
    /** Number as text (`1.5e+07`, `NaN`, `+Inf`). Absent for histogram/summary samples, which carry buckets/quantiles. */
    value?: string;
    labels?: Record<string, string>;
    timestamp_ms?: string;
    buckets?: Record<string, string>;
    quantiles?: Record<string, string>;
    count?: string;
    sum?: string;
  }
  export interface PrometheusFamily {
    name: string;
    help: string;
    type: 'COUNTER' | 'GAUGE' | 'HISTOGRAM' | 'SUMMARY' | 'UNTYPED';
    metrics: PrometheusSample[];
  }
  export default function parsePrometheusTextFormat(text: string): PrometheusFamily[];
}
