export {
  createLogger,
  type LogFields,
  type LogLevel,
  type Logger,
  type LoggerOptions,
} from './logger.js';
export { redact, redactString } from './redact.js';
export {
  Counter,
  DURATION_BUCKETS,
  Gauge,
  Histogram,
  METRICS_CONTENT_TYPE,
  MetricsRegistry,
  registerProcessMetrics,
  type CounterChild,
  type GaugeChild,
  type HistogramChild,
} from './metrics.js';
