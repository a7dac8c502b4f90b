export {
  LOG_FORMATS,
  LOG_LEVELS,
  LogSettingError,
  createLogger,
  formatLogLine,
  parseLogFormat,
  parseLogLevel,
  type LogFields,
  type LogFormat,
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
  mergeMetrics,
  registerProcessMetrics,
  type CounterChild,
  type GaugeChild,
  type HistogramChild,
  type MetricsCombine,
} from './metrics.js';
