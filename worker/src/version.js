// Single source of truth for the worker version (reported by `perry --version`
// and GET /health). The Perry agent restarts a worker whose version differs
// from its own, so bump this together with the agent/collection release.
export const VERSION = "0.1.0";
