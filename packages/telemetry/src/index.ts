export {
  createLogger,
  type LogFields,
  type LogLevel,
  type Logger,
  type LoggerOptions,
} from './logger.js';
export { redact, redactString } from './redact.js';
