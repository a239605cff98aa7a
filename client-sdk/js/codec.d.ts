// Types of the pure codec (src/codec.js), also re-exported by index.d.ts.
// Conventions: u8/u16/u32 are numbers; u64/i64 are bigint; ids are lowercase
// hyphenated UUID strings on decode (encode also takes a 16-byte Uint8Array);
// JSON values are strings holding raw JSON text; absent optional fields are
// null (encode also takes undefined).

/** A UUID string (any case on encode, lowercase on decode) or its 16 bytes (encode only). */
export type Id = string;
export type IdInput = string | Uint8Array;
/** 64-bit fields; encode also takes a safe-integer number. */
export type U64Input = bigint | number;

/** The oldest protocol version this codec speaks. */
export declare const MIN_VERSION: 1;
/** The newest protocol version this codec speaks; a client offers MIN_VERSION..MAX_VERSION. */
export declare const MAX_VERSION: 3;
/** A protocol version: a connection's frames all use its layouts (default 1, a connection's version until its Welcome). */
export type Version = 1 | 2;
/** Options of encode and decode: the connection's version, and the size limit (default and cap: MAX_FRAME_SIZE). */
export interface CodecOptions { version?: Version; maxSize?: number }
export declare const HEADER_SIZE: 8;
/** 16 MiB, header included. */
export declare const MAX_FRAME_SIZE: number;
export declare const FLAG_CLOSE: 0x0001;
/** Subscribe's afterSeq for "no backlog, live only": 2^64 − 1. */
export declare const LIVE_ONLY: bigint;

export type FrameKind =
  | "hello" | "welcome" | "ping" | "pong" | "error" | "ack" | "reauth"
  | "subscribe" | "subscribed" | "unsubscribe"
  | "publish" | "publish_ack" | "publish_batch" | "publish_batch_ack"
  | "deliver" | "ephemeral" | "receipt" | "history" | "history_page";

/** Frame kind numbers by name. */
export declare const Kind: Readonly<Record<FrameKind, number>>;

export type WireErrorCode =
  | "frame_too_large" | "bad_length" | "unsupported_version" | "unknown_kind" | "unknown_flags"
  | "truncated" | "trailing_bytes" | "invalid_utf8" | "invalid_value" | "too_long" | "not_in_version";

/** Bytes that are not a frame, or a frame that does not fit its layout. */
export declare class WireError extends Error {
  constructor(code: WireErrorCode, message: string, field?: string | null);
  readonly name: "WireError";
  /** The stable name the golden vectors use (`invalid.json`'s `error`). */
  readonly code: WireErrorCode;
  /** The field that failed, when one did. */
  readonly field: string | null;
  /** The catalogue number a peer answers this with: 1001 bad_frame, 1002 frame_too_large, 1003 unsupported_version. */
  readonly protocolCode: 1001 | 1002 | 1003;
}

/** A committed activity as the wire carries it (Deliver, HistoryPage). */
export interface WireActivity {
  id: Id;
  conversationId: Id;
  seq: bigint;
  /** Unix microseconds, UTC. */
  createdAt: bigint;
  type: string;
  sender: string;
  text: string | null;
  /** Raw JSON text of an array of objects. */
  attachments: string | null;
  /** Raw JSON text of an object (`{}` when empty). */
  metadata: string;
  idempotencyKey: string | null;
  /** Version 2: the message an edit, delete or reaction acts on (null in version 1). */
  targetId: Id | null;
  /** Version 2: the message a reply answers, its thread (null in version 1). */
  parentId: Id | null;
  /** Version 2: a message's current state (messages only; null in version 1). */
  state: MessageState | null;
}

/** What a message is now (version 2). */
export interface MessageState {
  /** Unix microseconds of the last edit. */
  editedAt: bigint | null;
  /** Unix microseconds of the delete (text, attachments and metadata are then gone). */
  deletedAt: bigint | null;
  replyCount: number;
  /** One per emoji, most used first. */
  reactions: Reaction[];
}

export interface Reaction {
  emoji: string;
  count: number;
  /** The reading connection's sender reacted with it. */
  me: boolean;
}

/** An activity to create as the wire carries it (Publish, PublishBatch). */
export interface WireDraft {
  conversationId: IdInput;
  type: string;
  /** Empty: the token's sender (token clients). Required with an API key. */
  sender?: string;
  text?: string | null;
  attachments?: string | null;
  /** Absent = `{}`. */
  metadata?: string | null;
  idempotencyKey?: string | null;
  /** Version 2: the message an edit, delete or reaction acts on. */
  targetId?: IdInput | null;
  /** Version 2: makes a message a reply in that message's thread. */
  parentId?: IdInput | null;
  /** Version 3: the W3C `traceparent` of the publish (present on decode only when sent). */
  traceparent?: string | null;
}

export interface WrittenFields {
  activityId: Id;
  seq: bigint;
  createdAt: bigint;
  replayed: boolean;
}

export interface FailureItem {
  /** A catalogue number, never 0. */
  code: number;
  message: string;
  /** The catalogue name of `code`; null for a number this version does not know (decode only). */
  name?: string | null;
}

export interface HelloFrame { kind: "hello"; minVersion: number; maxVersion: number; auth: "token" | "api_key"; credential: string; client: string }
export interface WelcomeFrame {
  kind: "welcome";
  version: number;
  idleTimeoutSecs: number;
  maxFrame: number;
  sendQueueBytes: number;
  tenantId: Id;
  /** The token's conversation; null for an API key (the whole tenant). */
  conversationId: Id | null;
  /** Unix microseconds; 0n = never. */
  expiresAt: bigint;
  sender: string;
  server: string;
}
export interface PingFrame { kind: "ping"; payload: bigint }
export interface PongFrame { kind: "pong"; payload: bigint }
export interface ErrorFrame { kind: "error"; requestId: number; code: number; message: string; name?: string | null; close: boolean }
export interface AckFrame { kind: "ack"; requestId: number }
export interface ReauthFrame { kind: "reauth"; requestId: number; token: string }
export interface SubscribeFrame { kind: "subscribe"; requestId: number; items: { conversationId: Id; afterSeq: bigint }[] }
export type SubscribedItem =
  | { conversationId: Id; code: 0; lastSeq: bigint }
  | ({ conversationId: Id } & FailureItem);
export interface SubscribedFrame { kind: "subscribed"; requestId: number; items: SubscribedItem[] }
export interface UnsubscribeFrame { kind: "unsubscribe"; requestId: number; conversationIds: Id[] }
export interface PublishFrame { kind: "publish"; requestId: number; activity: WireDraft }
export interface PublishAckFrame extends WrittenFields { kind: "publish_ack"; requestId: number }
export interface PublishBatchFrame { kind: "publish_batch"; requestId: number; activities: WireDraft[] }
export type PublishBatchAckItem = ({ code: 0 } & WrittenFields) | FailureItem;
export interface PublishBatchAckFrame { kind: "publish_batch_ack"; requestId: number; items: PublishBatchAckItem[] }
export interface DeliverFrame { kind: "deliver"; activities: WireActivity[] }
export interface EphemeralFrame { kind: "ephemeral"; requestId: number; conversationId: Id; type: string; sender: string; data: string }
/** Version 2, client → server: a member's read and delivered watermarks (null = leave as it is); answered by Ack. */
export interface ReceiptFrame { kind: "receipt"; requestId: number; conversationId: IdInput; readSeq: bigint | null; deliveredSeq: bigint | null; sender: string }
export interface HistoryFrame { kind: "history"; requestId: number; conversationId: Id; afterSeq: bigint; untilSeq: bigint | null; limit: number }
export interface HistoryPageFrame { kind: "history_page"; requestId: number; conversationId: Id; lastSeq: bigint; activities: WireActivity[] }

/** Any frame, as decode answers it. */
export type Frame =
  | HelloFrame | WelcomeFrame | PingFrame | PongFrame | ErrorFrame | AckFrame | ReauthFrame
  | SubscribeFrame | SubscribedFrame | UnsubscribeFrame
  | PublishFrame | PublishAckFrame | PublishBatchFrame | PublishBatchAckFrame
  | DeliverFrame | EphemeralFrame | ReceiptFrame | HistoryFrame | HistoryPageFrame;

/** Encodes one whole frame (header included) in `version`'s layout; throws WireError (`not_in_version` for a version-2 field or kind in version 1). */
export declare function encodeFrame(frame: Frame, options?: CodecOptions): Uint8Array;

/** The header at the start of `bytes`, or null with fewer than 8 bytes; throws WireError for a bad header. */
export declare function peekHeader(bytes: Uint8Array, options?: CodecOptions): { size: number; kind: FrameKind; flags: number } | null;

/** The frame at the start of `bytes` and its size, or null ("need more"); throws WireError. */
export declare function decodeFrame(bytes: Uint8Array, options?: CodecOptions): { frame: Frame; size: number } | null;

/** Cuts a byte stream into frames: push() chunks, then next() until it answers null. */
export declare class FrameDecoder {
  constructor(options?: CodecOptions);
  /** The connection's version: set it when the Welcome chose one. */
  version: Version;
  readonly maxSize: number;
  /** Bytes buffered and not decoded yet. */
  readonly buffered: number;
  push(chunk: Uint8Array): void;
  /** The next whole frame, or null when more bytes are needed; throws WireError. */
  next(): Frame | null;
}

export declare function uuidFromBytes(bytes: Uint8Array): Id;
export declare function uuidToBytes(id: IdInput, field?: string): Uint8Array;
