// The library: create agents from code, build the HTTP API, open stores.
export {
  Agent,
  type AgentOptions,
  type AgentSettings,
  type AgentStats,
  type AgentView,
  createAgent,
  logOnlyHandler,
} from './agent/agent.js';
export { type AgentState, nextState } from './agent/lifecycle.js';
export type { DocumentHandler, HandlerContext } from './agent/pipeline.js';
export { type BackoffSettings, DEFAULT_BACKOFF, RetryLaterError } from './agent/retry.js';
export { type Config, loadConfig, publicConfig, type StoreTarget } from './config.js';
export { ControlWatcher } from './control/watcher.js';
export * from './errors.js';
export { buildApp } from './http/app.js';
export type { AgentContext, App, AppOptions } from './http/types.js';
export { createLogger } from './logging.js';
export { openStore } from './stores/index.js';
export type * from './stores/types.js';
