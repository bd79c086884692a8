/**
 * Moved to `lib/control.ts` (the conversation core); re-exported here for
 * the callers that still import it from `clients/`.
 * @module
 */
export * from "../lib/control.ts";
