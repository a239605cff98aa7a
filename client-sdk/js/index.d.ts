// Types of @converger/client: the client, subscriptions, errors, and (from
// codec.d.ts) the pure codec.

import type { Id, IdInput, MessageState, U64Input, WelcomeFrame } from "./codec.js";

export * from "./codec.js";

// ------------------------------------------------------------------ errors

export type ErrorName =
  | "bad_frame" | "frame_too_large" | "unsupported_version" | "unexpected_frame" | "handshake_timeout"
  | "idle_timeout" | "slow_consumer" | "tls_required"
  | "unauthorized" | "token_expired" | "forbidden" | "tenant_inactive" | "channel_inactive" | "admin_disabled"
  | "origin_not_allowed" | "not_author" | "not_a_member"
  | "bad_request" | "invalid_json" | "invalid_parameter" | "validation_failed" | "payload_too_large"
  | "unsupported_media_type" | "method_not_allowed"
  | "not_found" | "conflict" | "conversation_closed" | "invalid_reference" | "already_subscribed"
  | "too_many_subscriptions" | "target_not_found" | "invalid_target" | "target_deleted" | "reaction_not_found"
  | "disconnected" | "rejected_by_hook"
  | "overloaded" | "rate_limited" | "shutting_down" | "storage_unavailable" | "internal" | "too_many_connections"
  | "storage_full";

/** Every catalogue entry, in order: number, name, and the HTTP status REST answers with (null: binary protocol only). */
export declare const ERROR_CATALOGUE: readonly { readonly code: number; readonly name: ErrorName; readonly http: number | null }[];
/** Catalogue numbers by name: `ErrorCode.not_found === 4001`. */
export declare const ErrorCode: Readonly<Record<ErrorName, number>>;
/** The catalogue name of a number; null for a number this version does not know. */
export declare function errorName(code: number): ErrorName | null;
/** 1 protocol, 2 authentication, 3 request, 4 state, 5 capacity and server. */
export declare function errorGroup(code: number): number;

/** The server refused something: an Error frame, or a failed item of a list answer. */
export declare class ConvergerError extends Error {
  constructor(code: number, message: string, details?: { requestId?: number; close?: boolean });
  readonly name: "ConvergerError";
  /** The catalogue number (kept even when unknown to this version). */
  readonly code: number;
  /** The catalogue name, or null for an unknown number (treat it by `group`). */
  readonly codeName: ErrorName | null;
  readonly group: number;
  /** The server's message, for people. */
  readonly serverMessage: string;
  /** The request it answers; 0 = about the connection. */
  readonly requestId: number;
  /** The server closed the connection after it. */
  readonly close: boolean;
  is(name: ErrorName): boolean;
  /** overloaded, rate_limited, shutting_down, storage_unavailable, storage_full: retry after a pause (storage_full: once space is freed). */
  readonly retryable: boolean;
}

/** The connection failed or closed before an answer; `cause` says why when known. */
export declare class ConnectionError extends Error {
  constructor(message: string, options?: { cause?: unknown });
  readonly name: "ConnectionError";
}

// ------------------------------------------------------------------ client

export type Target =
  | { tcp: { host?: string; port: number; tls?: boolean | Record<string, unknown> } }
  | { url: string };

export type Credential = { token: string } | { apiKey: string };
/** A credential, or a function asked for one before every connection attempt (e.g. to fetch a fresh token). */
export type CredentialSource = Credential | (() => Credential | Promise<Credential>);

/** The part of the WebSocket API the client uses (the browser's, or the `ws` package's). */
export interface WebSocketLike {
  binaryType: string;
  readonly bufferedAmount: number;
  onopen: ((event: any) => void) | null;
  onmessage: ((event: { data: any }) => void) | null;
  onerror: ((event: any) => void) | null;
  onclose: ((event: { code: number; reason: string }) => void) | null;
  send(data: Uint8Array): void;
  close(code?: number, reason?: string): void;
}
export type WebSocketConstructor = new (url: string) => WebSocketLike;

export interface ClientOptions {
  /** The WebSocket class for `{ url }` targets; default `globalThis.WebSocket`. In Node: `import { WebSocket } from "ws"`. */
  WebSocket?: WebSocketConstructor | (new (url: string) => any);
  /** Socket connect plus handshake, per attempt. Default 10 000. */
  connectTimeoutMs?: number;
  /** A request's whole life: waiting for a connection, then for its answer. Default 30 000. */
  requestTimeoutMs?: number;
  /** Activities a subscription holds for its consumer before it resubscribes later instead. Default 10 000. */
  maxBuffered?: number;
  /** Bytes the socket may hold unsent before further frames wait (in order) for it to drain. Default 4 MiB. */
  maxSendBuffer?: number;
  /** Reconnection with exponential backoff and jitter, or false to end the client on the first drop. */
  reconnect?: false | { minDelayMs?: number; maxDelayMs?: number; maxAttempts?: number };
  /** Sent in Hello for the server's logs. Default "converger-js/0.1.0". */
  clientName?: string;
}

/** An activity as the client hands it out. */
export interface Activity {
  id: Id;
  conversationId: Id;
  seq: bigint;
  /** Unix microseconds, UTC. */
  createdAt: bigint;
  type: string;
  sender: string;
  text: string | null;
  /** Parsed JSON (an array of objects), or null. */
  attachments: unknown[] | null;
  /** Parsed JSON object. */
  metadata: Record<string, unknown>;
  idempotencyKey: string | null;
  /** The message an edit, delete or reaction acts on (protocol version 2; null on a version-1 connection). */
  targetId: Id | null;
  /** The message a reply answers, its thread (version 2). */
  parentId: Id | null;
  /** A message's current state (version 2; messages only). */
  state: MessageState | null;
}

/** An activity to publish. */
export interface Draft {
  conversationId: IdInput;
  /** Default "message" (which needs text or attachments); "event" for machine events. */
  type?: string;
  /** Token clients: leave empty (the token's sender). API-key clients: required. */
  sender?: string;
  text?: string | null;
  /** Objects are JSON-encoded; a string is sent as raw JSON text. */
  attachments?: unknown[] | string | null;
  metadata?: Record<string, unknown> | string | null;
  /** 1–255 bytes, unique per conversation: a repeat answers the original with `replayed: true`. */
  idempotencyKey?: string | null;
  /** The message an edit, delete or reaction acts on (protocol version 2). */
  targetId?: IdInput | null;
  /** Makes a message a reply in that message's thread (protocol version 2). */
  parentId?: IdInput | null;
  /**
   * The W3C `traceparent` (`00-{trace id}-{span id}-{flags}`) of the trace this
   * publish belongs to (protocol version 3): with the server's traces on, its
   * span of the publish is a child of it. A malformed value is ignored.
   */
  traceparent?: string | null;
}

export interface Written {
  activityId: Id;
  seq: bigint;
  createdAt: bigint;
  /** The idempotency key matched an earlier activity: these are its fields; nothing was created. */
  replayed: boolean;
}

export type BatchResult = ({ ok: true } & Written) | { ok: false; error: ConvergerError };

export interface HistoryOptions {
  /** Exclusive lower bound; 0n = from the first. */
  afterSeq?: U64Input;
  /** Inclusive upper bound; null = none. */
  untilSeq?: U64Input | null;
  /** Most activities wanted (the server caps it at 1000). Default 100. */
  limit?: number;
}

export interface HistoryPage {
  conversationId: Id;
  /** The conversation's last seq now. */
  lastSeq: bigint;
  activities: Activity[];
}

export interface TypingEvent { conversationId: Id; sender: string; typing: boolean }
/** A member's read and delivered watermarks moved (protocol version 2); 0n: nothing yet. */
export interface ReceiptEvent { conversationId: Id; sender: string; readSeq: bigint; deliveredSeq: bigint }
/** A user came online or went offline in the tenant (protocol version 2); `lastSeen` (RFC 3339) going offline. */
export interface PresenceEvent { conversationId: Id; sender: string; online: boolean; lastSeen: string | null }
/** New content for a message (at least one field); `sender` for an API-key client. */
export interface EditContent {
  text?: string | null;
  attachments?: unknown[] | string | null;
  metadata?: Record<string, unknown> | string | null;
  sender?: string;
}
/** A member's new watermarks; null leaves one as it is. */
export interface ReceiptInput { readSeq?: U64Input | null; deliveredSeq?: U64Input | null; sender?: string }
export interface EphemeralEvent { conversationId: Id; type: string; sender: string; data: unknown }
export type Welcome = Omit<WelcomeFrame, "kind"> & { kind: "welcome" };

export interface ClientEvents {
  /** A typing signal on a subscribed conversation. */
  typing: (event: TypingEvent) => void;
  /** A member's receipts moved on a subscribed conversation (protocol version 2). */
  receipt: (event: ReceiptEvent) => void;
  /** A member of a subscribed conversation came online or went offline (protocol version 2). */
  presence: (event: PresenceEvent) => void;
  /** Any ephemeral signal on a subscribed conversation (typing included). */
  ephemeral: (event: EphemeralEvent) => void;
  /** The connection dropped; requests in flight failed with this error. A reconnect follows unless disabled. */
  disconnect: (error: ConnectionError) => void;
  /** A new connection is up; subscriptions are being resumed. */
  reconnect: (welcome: Welcome) => void;
  /** The client ended: null after close(), else why (a fatal handshake refusal, reconnect attempts exhausted…). */
  close: (error: Error | null) => void;
  /** A refusal of something that has no promise to reject (an ephemeral signal), or a server error about no request. */
  error: (error: Error) => void;
}

export type ClientState = "connecting" | "open" | "reconnecting" | "closed";

export declare const CLIENT_NAME: string;

/** Connects and completes the handshake; rejects with ConvergerError (refused) or ConnectionError. */
export declare function connect(target: Target, credential: CredentialSource, options?: ClientOptions): Promise<Client>;

export declare class Client {
  constructor(target: Target, credential: CredentialSource, options?: ClientOptions);
  /** The current connection's Welcome. */
  readonly welcome: Welcome | null;
  readonly state: ClientState;
  /** Answers a function that removes the listener. */
  on<E extends keyof ClientEvents>(event: E, listener: ClientEvents[E]): () => void;
  off<E extends keyof ClientEvents>(event: E, listener: ClientEvents[E]): void;
  once<E extends keyof ClientEvents>(event: E, listener: ClientEvents[E]): () => void;
  /** Resolves once the activity is committed. */
  publish(draft: Draft): Promise<Written>;
  /** One result per draft, in order; rejects only when the whole frame fails (overloaded, shutting_down, storage_unavailable, storage_full). */
  publishBatch(drafts: Draft[]): Promise<BatchResult[]>;
  /** Resolves once the server accepted the subscription; afterSeq 0n = everything, LIVE_ONLY = from now on. */
  subscribe(conversationId: string, afterSeq?: U64Input, options?: { maxBuffered?: number }): Promise<Subscription>;
  // Chat (protocol version 2; a version-1 connection rejects these with WireError not_in_version).
  /** Edits message `targetId` (your own, for a token client). */
  edit(conversationId: IdInput, targetId: IdInput, content: EditContent): Promise<Written>;
  /** Deletes message `targetId` (your own, for a token client): its content is erased. */
  delete(conversationId: IdInput, targetId: IdInput, options?: { sender?: string }): Promise<Written>;
  react(conversationId: IdInput, targetId: IdInput, emoji: string, options?: { sender?: string }): Promise<Written>;
  unreact(conversationId: IdInput, targetId: IdInput, emoji: string, options?: { sender?: string }): Promise<Written>;
  /** Publishes `draft` as a reply in the thread of message `parentId`. */
  reply(conversationId: IdInput, parentId: IdInput, draft: Omit<Draft, "conversationId">): Promise<Written>;
  /** Read up to and including `seq`; resolves once stored. */
  markRead(conversationId: IdInput, seq: U64Input, options?: { sender?: string }): Promise<void>;
  markDelivered(conversationId: IdInput, seq: U64Input, options?: { sender?: string }): Promise<void>;
  receipt(conversationId: IdInput, receipt: ReceiptInput): Promise<void>;
  history(conversationId: IdInput, options?: HistoryOptions): Promise<HistoryPage>;
  /** Resolves once written; a refusal arrives as an "error" event. API-key clients name the sender. */
  typing(conversationId: IdInput, typing?: boolean, options?: { sender?: string }): Promise<void>;
  /** Any ephemeral signal; answers the request id a refusal would carry. */
  ephemeral(conversationId: IdInput, type: string, data: Record<string, unknown> | string, options?: { sender?: string }): Promise<number>;
  /** Round trip in milliseconds. */
  ping(): Promise<number>;
  /** A fresh token for the same tenant, conversation and sender; kept for later reconnects. */
  reauth(token: string): Promise<void>;
  /** Drops the connection and reconnects at once, resuming every subscription. */
  reconnect(): void;
  /** Ends the client: requests in flight fail, subscriptions end. */
  close(): void;
}

/** One conversation's activities in seq order, without gap or duplicate, across reconnects. */
export declare class Subscription implements AsyncIterableIterator<Activity> {
  readonly conversationId: Id;
  /** The last seq accepted (buffered or handed out): resumes go on after it. */
  readonly lastSeq: bigint | null;
  /** The conversation's last seq when the subscription began (the backlog ends there). */
  readonly lastSeqAtSubscribe: bigint | null;
  readonly maxBuffered: number;
  /** Activities waiting for the consumer. */
  readonly buffered: number;
  readonly ended: boolean;
  /** Duplicates dropped; resubscriptions after an overflow (slow consumer) or a gap. */
  readonly stats: { duplicates: number; resyncs: number };
  /** The next activity; done once unsubscribed or the client closed; throws the error that ended it (once). */
  next(): Promise<IteratorResult<Activity, undefined>>;
  /** Leaving a for-await loop: unsubscribes. */
  return(): Promise<IteratorResult<Activity, undefined>>;
  [Symbol.asyncIterator](): Subscription;
  /** Unsubscribe; buffered activities are dropped. */
  unsubscribe(): Promise<void>;
}
