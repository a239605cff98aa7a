// The error types of the SDK and the server's error-code catalogue.
//
// - ConvergerError: the server refused something (an Error frame, or a failed
//   item of Subscribed / PublishBatchAck). Carries the catalogue number and name.
// - WireError (codec.js): bytes that are not a frame, or a frame that does not
//   fit its layout.
// - ConnectionError: the connection failed or closed before an answer came.
//
// The catalogue is docs/protocol.md's table (the same numbers and names as
// the Rust `converger_protocol::ErrorCode`); test/catalogue.test.js checks the
// two agree, so it cannot drift.

/** [code, name, HTTP status or null (binary protocol only)], in catalogue order. */
const CATALOGUE = [
  [1001, "bad_frame", null],
  [1002, "frame_too_large", null],
  [1003, "unsupported_version", null],
  [1004, "unexpected_frame", null],
  [1005, "handshake_timeout", null],
  [1006, "idle_timeout", null],
  [1007, "slow_consumer", null],
  [1008, "tls_required", 400],
  [2001, "unauthorized", 401],
  [2002, "token_expired", null],
  [2003, "forbidden", 403],
  [2004, "tenant_inactive", 403],
  [2005, "channel_inactive", 403],
  [2006, "admin_disabled", 404],
  [2007, "origin_not_allowed", 403],
  [2008, "not_author", 403],
  [2009, "not_a_member", 403],
  [3001, "bad_request", 400],
  [3002, "invalid_json", 400],
  [3003, "invalid_parameter", 400],
  [3004, "validation_failed", 422],
  [3005, "payload_too_large", 413],
  [3006, "unsupported_media_type", 415],
  [3007, "method_not_allowed", 405],
  [4001, "not_found", 404],
  [4002, "conflict", 409],
  [4003, "conversation_closed", 409],
  [4004, "invalid_reference", 422],
  [4005, "already_subscribed", null],
  [4006, "too_many_subscriptions", null],
  [4007, "target_not_found", 404],
  [4008, "invalid_target", 422],
  [4009, "target_deleted", 409],
  [4010, "reaction_not_found", 404],
  [4011, "disconnected", null],
  [4012, "rejected_by_hook", 422],
  [5001, "overloaded", 503],
  [5002, "rate_limited", 429],
  [5003, "shutting_down", 503],
  [5004, "storage_unavailable", 503],
  [5005, "internal", 500],
  [5006, "too_many_connections", 503],
  [5007, "storage_full", 503],
];

/** Every catalogue entry: `{ code, name, http }`. */
export const ERROR_CATALOGUE = Object.freeze(
  CATALOGUE.map(([code, name, http]) => Object.freeze({ code, name, http })),
);

/** Catalogue numbers by name: `ErrorCode.not_found === 4001`. */
export const ErrorCode = Object.freeze(Object.fromEntries(CATALOGUE.map(([code, name]) => [name, code])));

const NAMES = new Map(CATALOGUE.map(([code, name]) => [code, name]));

/** The catalogue name of a number, or null for a number this version does not know. */
export function errorName(code) {
  return NAMES.get(code) ?? null;
}

/** The thousands group of a code: 1 protocol, 2 authentication, 3 request, 4 state, 5 capacity and server. */
export function errorGroup(code) {
  return Math.floor(code / 1000);
}

/** The server refused something; `code` is a catalogue number. */
export class ConvergerError extends Error {
  /**
   * @param {number} code catalogue number
   * @param {string} message the server's message (for people)
   * @param {{requestId?: number, close?: boolean}} [details]
   */
  constructor(code, message, { requestId = 0, close = false } = {}) {
    const codeName = errorName(code);
    super(`${codeName ?? `error ${code}`}: ${message}`);
    this.name = "ConvergerError";
    this.code = code;
    this.codeName = codeName;
    this.group = errorGroup(code);
    this.serverMessage = message;
    this.requestId = requestId;
    this.close = close;
  }

  /** True when this is the named catalogue error (`err.is("not_found")`). */
  is(name) {
    return this.codeName === name;
  }

  /** Refusals worth retrying after a pause (storage_full: a longer one, once space is freed). */
  get retryable() {
    return this.code === ErrorCode.overloaded || this.code === ErrorCode.rate_limited
      || this.code === ErrorCode.shutting_down || this.code === ErrorCode.storage_unavailable
      || this.code === ErrorCode.storage_full;
  }
}

/** The connection failed or closed; `cause` says why when known (a ConvergerError with the close flag, a socket error…). */
export class ConnectionError extends Error {
  constructor(message, options) {
    super(message, options);
    this.name = "ConnectionError";
  }
}
