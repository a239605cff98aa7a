// The binary protocol codec: pure (no I/O), every frame kind both ways, and
// an incremental decoder for a byte stream. The layouts are docs/protocol.md's
// (and the Rust `converger-protocol` crate's); the golden vectors in
// protocol/testdata/ pin them (test/codec.test.js). Primitives: wire.js;
// shared records: records.js.
//
// Versions: a connection speaks one protocol version (1 or 2), chosen by
// Hello and Welcome; every encode and decode takes it (`{ version }`, default
// 1, a connection's version until its Welcome). A version-1 codec sees
// exactly version 1: version-2 kinds are unknown_kind, version-2 presence
// bits invalid_value, and encoding a version-2 field is not_in_version. Hello
// and Welcome always carry header version 1.
//
// Frames are plain objects: `{ kind: "publish", requestId: 5, activity: {…} }`.
// Field names are the docs' in camelCase; `kind` is the docs' snake_case name.
// Types: u8/u16/u32 are numbers; u64/i64 are BigInt; ids are lowercase
// hyphenated UUID strings (encode also takes a 16-byte Uint8Array); JSON
// values are strings holding the raw JSON text; absent optional fields are
// null. Error frames and failure items also carry `name`, the catalogue name
// of their code (derived, not on the wire).
//
// Invariants: decoding answers null ("need more") for any prefix of a valid
// frame, never an error; the size is checked against the limit from the first
// four bytes, before anything more is awaited; a body must be consumed exactly;
// encode(decode(bytes)) is byte-exact (every encoding is canonical).

import { errorName } from "./errors.js";
import {
  MIN_DRAFT_SIZE, readActivities, readDraft, readFailure, readWritten, writeActivities, writeDraft, writeFailure,
  writeWritten,
} from "./records.js";
import { invalid, Reader, WireError, Writer, ZERO_ID } from "./wire.js";

export { uuidFromBytes, uuidToBytes, WireError } from "./wire.js";

/** The oldest protocol version this codec speaks. */
export const MIN_VERSION = 1;
/** The newest protocol version this codec speaks (a client offers MIN_VERSION..MAX_VERSION). */
export const MAX_VERSION = 3;
export const HEADER_SIZE = 8;
/** The largest frame the protocol allows (16 MiB, header included). */
export const MAX_FRAME_SIZE = 16 * 1024 * 1024;
/** Error frame flag: the connection closes after this frame. */
export const FLAG_CLOSE = 0x0001;
/** Subscribe's `afterSeq` for "no backlog, live only". */
export const LIVE_ONLY = 0xffff_ffff_ffff_ffffn;

/** Frame kind numbers by name. */
export const Kind = Object.freeze({
  hello: 0x01, welcome: 0x02, ping: 0x03, pong: 0x04, error: 0x05, ack: 0x06, reauth: 0x07,
  subscribe: 0x10, subscribed: 0x11, unsubscribe: 0x12,
  publish: 0x20, publish_ack: 0x21, publish_batch: 0x22, publish_batch_ack: 0x23,
  deliver: 0x30, ephemeral: 0x31, receipt: 0x32, history: 0x40, history_page: 0x41,
});

const KIND_NAMES = new Map(Object.entries(Kind).map(([name, n]) => [n, name]));
/** The first version that has a kind (1 when not listed). */
const KIND_SINCE = { receipt: 2 };
const since = (kind) => KIND_SINCE[kind] ?? 1;
/** The version in a frame's header on a connection speaking `version`: Hello and Welcome always say 1. */
const headerVersion = (kind, version) => (kind === "hello" || kind === "welcome" ? 1 : version);

function checkVersion(version) {
  if (!Number.isInteger(version) || version < MIN_VERSION || version > MAX_VERSION) {
    throw new WireError("unsupported_version", `unsupported protocol version ${version}`);
  }
  return version;
}

// ---------------------------------------------------------------- bodies

const AUTH = { token: 1, api_key: 2 };

/** Per kind: encode(writer, frame, version) and decode(reader, flags, version) → frame. */
const BODIES = {
  hello: {
    encode(w, f) {
      w.u8(f.minVersion, "min_version");
      w.u8(f.maxVersion, "max_version");
      const tag = AUTH[f.auth];
      if (!tag) throw invalid("auth", "auth is \"token\" or \"api_key\"");
      w.u8(tag, "auth");
      w.str(f.credential, 2, "credential");
      w.str(f.client ?? "", 1, "client");
    },
    decode(r) {
      const minVersion = r.u8("min_version");
      const maxVersion = r.u8("max_version");
      if (minVersion > maxVersion) throw invalid("max_version", "below min_version");
      const tag = r.u8("auth");
      const credential = r.str(2, "credential");
      const auth = tag === 1 ? "token" : tag === 2 ? "api_key" : null;
      if (!auth) throw invalid("auth", "unknown auth kind");
      return { kind: "hello", minVersion, maxVersion, auth, credential, client: r.str(1, "client") };
    },
  },
  welcome: {
    encode(w, f) {
      w.u8(f.version, "version");
      w.u16(f.idleTimeoutSecs, "idle_timeout_secs");
      w.u32(f.maxFrame, "max_frame");
      w.u32(f.sendQueueBytes, "send_queue_bytes");
      w.id(f.tenantId, "tenant_id");
      w.id(f.conversationId ?? ZERO_ID, "conversation_id");
      w.i64(f.expiresAt, "expires_at");
      w.str(f.sender, 2, "sender");
      w.str(f.server, 1, "server");
    },
    decode(r) {
      const f = {
        kind: "welcome",
        version: r.u8("version"),
        idleTimeoutSecs: r.u16("idle_timeout_secs"),
        maxFrame: r.u32("max_frame"),
        sendQueueBytes: r.u32("send_queue_bytes"),
        tenantId: r.id("tenant_id"),
        conversationId: r.id("conversation_id"),
        expiresAt: r.i64("expires_at"),
        sender: r.str(2, "sender"),
        server: r.str(1, "server"),
      };
      if (f.conversationId === ZERO_ID) f.conversationId = null;
      if (f.version === 0) throw invalid("version", "version 0 does not exist");
      return f;
    },
  },
  ping: {
    encode(w, f) { w.u64(f.payload, "payload"); },
    decode(r) { return { kind: "ping", payload: r.u64("payload") }; },
  },
  pong: {
    encode(w, f) { w.u64(f.payload, "payload"); },
    decode(r) { return { kind: "pong", payload: r.u64("payload") }; },
  },
  error: {
    encode(w, f) {
      if (f.code === 0) throw invalid("code", "0 is not an error code");
      w.u32(f.requestId, "request_id");
      w.u16(f.code, "code");
      w.str(f.message, 2, "message");
    },
    decode(r, flags) {
      const requestId = r.u32("request_id");
      const code = r.u16("code");
      if (code === 0) throw invalid("code", "0 is not an error code");
      const message = r.str(2, "message");
      return { kind: "error", requestId, code, message, name: errorName(code), close: (flags & FLAG_CLOSE) !== 0 };
    },
  },
  ack: {
    encode(w, f) { w.u32(f.requestId, "request_id"); },
    decode(r) { return { kind: "ack", requestId: r.u32("request_id") }; },
  },
  reauth: {
    encode(w, f) {
      w.u32(f.requestId, "request_id");
      w.str(f.token, 2, "token");
    },
    decode(r) { return { kind: "reauth", requestId: r.u32("request_id"), token: r.str(2, "token") }; },
  },
  subscribe: {
    encode(w, f) {
      w.u32(f.requestId, "request_id");
      w.count(f.items, "count");
      for (const item of f.items) {
        w.id(item.conversationId, "conversation_id");
        w.u64(item.afterSeq, "after_seq");
      }
    },
    decode(r) {
      const requestId = r.u32("request_id");
      const n = r.count(24, "count");
      const items = [];
      for (let i = 0; i < n; i++) items.push({ conversationId: r.id("conversation_id"), afterSeq: r.u64("after_seq") });
      return { kind: "subscribe", requestId, items };
    },
  },
  subscribed: {
    encode(w, f) {
      w.u32(f.requestId, "request_id");
      w.count(f.items, "count");
      for (const item of f.items) {
        w.id(item.conversationId, "conversation_id");
        if (item.code === 0) {
          w.u16(0, "code");
          w.u64(item.lastSeq, "last_seq");
        } else {
          writeFailure(w, item);
        }
      }
    },
    decode(r) {
      const requestId = r.u32("request_id");
      const n = r.count(16 + 2 + 2, "count");
      const items = [];
      for (let i = 0; i < n; i++) {
        const conversationId = r.id("conversation_id");
        const code = r.u16("code");
        items.push(code === 0 ? { conversationId, code, lastSeq: r.u64("last_seq") } : { conversationId, ...readFailure(code, r) });
      }
      return { kind: "subscribed", requestId, items };
    },
  },
  unsubscribe: {
    encode(w, f) {
      w.u32(f.requestId, "request_id");
      w.count(f.conversationIds, "count");
      for (const id of f.conversationIds) w.id(id, "conversation_id");
    },
    decode(r) {
      const requestId = r.u32("request_id");
      const n = r.count(16, "count");
      const conversationIds = [];
      for (let i = 0; i < n; i++) conversationIds.push(r.id("conversation_id"));
      return { kind: "unsubscribe", requestId, conversationIds };
    },
  },
  publish: {
    encode(w, f, version) {
      w.u32(f.requestId, "request_id");
      writeDraft(w, f.activity, version);
    },
    decode(r, _, version) { return { kind: "publish", requestId: r.u32("request_id"), activity: readDraft(r, version) }; },
  },
  publish_ack: {
    encode(w, f) {
      w.u32(f.requestId, "request_id");
      writeWritten(w, f);
    },
    decode(r) { return { kind: "publish_ack", requestId: r.u32("request_id"), ...readWritten(r) }; },
  },
  publish_batch: {
    encode(w, f, version) {
      w.u32(f.requestId, "request_id");
      w.count(f.activities, "count");
      for (const d of f.activities) writeDraft(w, d, version);
    },
    decode(r, _, version) {
      const requestId = r.u32("request_id");
      const n = r.count(MIN_DRAFT_SIZE, "count");
      const activities = [];
      for (let i = 0; i < n; i++) activities.push(readDraft(r, version));
      return { kind: "publish_batch", requestId, activities };
    },
  },
  publish_batch_ack: {
    encode(w, f) {
      w.u32(f.requestId, "request_id");
      w.count(f.items, "count");
      for (const item of f.items) {
        if (item.code === 0) {
          w.u16(0, "code");
          writeWritten(w, item);
        } else {
          writeFailure(w, item);
        }
      }
    },
    decode(r) {
      const requestId = r.u32("request_id");
      const n = r.count(2 + 2, "count");
      const items = [];
      for (let i = 0; i < n; i++) {
        const code = r.u16("code");
        items.push(code === 0 ? { code, ...readWritten(r) } : readFailure(code, r));
      }
      return { kind: "publish_batch_ack", requestId, items };
    },
  },
  deliver: {
    encode(w, f, version) { writeActivities(w, f.activities, version); },
    decode(r, _, version) { return { kind: "deliver", activities: readActivities(r, version) }; },
  },
  ephemeral: {
    encode(w, f) {
      w.u32(f.requestId, "request_id");
      w.id(f.conversationId, "conversation_id");
      w.str(f.type, 1, "type");
      w.str(f.sender ?? "", 2, "sender");
      w.str(f.data, 4, "data");
    },
    decode(r) {
      return {
        kind: "ephemeral",
        requestId: r.u32("request_id"),
        conversationId: r.id("conversation_id"),
        type: r.str(1, "type"),
        sender: r.str(2, "sender"),
        data: r.str(4, "data"),
      };
    },
  },
  receipt: {
    encode(w, f) {
      w.u32(f.requestId, "request_id");
      w.id(f.conversationId, "conversation_id");
      w.u64(f.readSeq ?? 0n, "read_seq");
      w.u64(f.deliveredSeq ?? 0n, "delivered_seq");
      w.str(f.sender ?? "", 2, "sender");
    },
    decode(r) {
      const f = {
        kind: "receipt",
        requestId: r.u32("request_id"),
        conversationId: r.id("conversation_id"),
        readSeq: r.u64("read_seq"),
        deliveredSeq: r.u64("delivered_seq"),
        sender: r.str(2, "sender"),
      };
      if (f.readSeq === 0n) f.readSeq = null;
      if (f.deliveredSeq === 0n) f.deliveredSeq = null;
      return f;
    },
  },
  history: {
    encode(w, f) {
      w.u32(f.requestId, "request_id");
      w.id(f.conversationId, "conversation_id");
      w.u64(f.afterSeq, "after_seq");
      w.u64(f.untilSeq ?? 0n, "until_seq");
      w.u32(f.limit, "limit");
    },
    decode(r) {
      const f = {
        kind: "history",
        requestId: r.u32("request_id"),
        conversationId: r.id("conversation_id"),
        afterSeq: r.u64("after_seq"),
        untilSeq: r.u64("until_seq"),
        limit: r.u32("limit"),
      };
      if (f.untilSeq === 0n) f.untilSeq = null;
      return f;
    },
  },
  history_page: {
    encode(w, f, version) {
      w.u32(f.requestId, "request_id");
      w.id(f.conversationId, "conversation_id");
      w.u64(f.lastSeq, "last_seq");
      writeActivities(w, f.activities, version);
    },
    decode(r, _, version) {
      return {
        kind: "history_page",
        requestId: r.u32("request_id"),
        conversationId: r.id("conversation_id"),
        lastSeq: r.u64("last_seq"),
        activities: readActivities(r, version),
      };
    },
  },
};

// ---------------------------------------------------------------- frames

/**
 * Encodes one whole frame (header included) for a connection speaking
 * `version` (default 1). Throws WireError when a field does not fit its
 * layout or version, or the frame is over `maxSize` (default and cap:
 * MAX_FRAME_SIZE).
 * @returns {Uint8Array}
 */
export function encodeFrame(frame, { version = MIN_VERSION, maxSize = MAX_FRAME_SIZE } = {}) {
  checkVersion(version);
  const body = BODIES[frame?.kind];
  if (!body) throw invalid("kind", `unknown frame kind ${JSON.stringify(frame?.kind)}`);
  if (since(frame.kind) > version) {
    throw new WireError("not_in_version", `\`${frame.kind}\` is not part of protocol version ${version}`, "kind");
  }
  const w = new Writer();
  w.pos = HEADER_SIZE;
  w.reserve(0);
  body.encode(w, frame, version);
  const size = w.pos;
  const limit = Math.min(maxSize, MAX_FRAME_SIZE);
  if (size > limit) {
    throw new WireError("frame_too_large", `frame of ${size} bytes is over the limit of ${limit}`);
  }
  w.view.setUint32(0, size - 4, true);
  w.view.setUint8(4, headerVersion(frame.kind, version));
  w.view.setUint8(5, Kind[frame.kind]);
  w.view.setUint16(6, frame.kind === "error" && frame.close ? FLAG_CLOSE : 0, true);
  return w.bytes.slice(0, size);
}

/**
 * Reads the header at the start of `bytes` on a connection speaking
 * `version` (default 1): `{ size, kind, flags }`, or null when fewer than 8
 * bytes are there (an oversized or too-short length is refused as soon as
 * its 4 bytes are).
 */
export function peekHeader(bytes, { version = MIN_VERSION, maxSize = MAX_FRAME_SIZE } = {}) {
  checkVersion(version);
  if (bytes.length < 4) return null;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const length = view.getUint32(0, true);
  const size = length + 4;
  const limit = Math.min(maxSize, MAX_FRAME_SIZE);
  if (size > limit) throw new WireError("frame_too_large", `frame of ${size} bytes is over the limit of ${limit}`);
  if (length < HEADER_SIZE - 4) throw new WireError("bad_length", `frame length ${length} is shorter than the header`);
  if (bytes.length < HEADER_SIZE) return null;
  const headerByte = bytes[4];
  const known = KIND_NAMES.get(bytes[5]);
  const expected = known ? headerVersion(known, version) : version;
  if (headerByte !== expected) throw new WireError("unsupported_version", `unsupported protocol version ${headerByte}`);
  const kind = known && since(known) <= version ? known : null;
  if (!kind) throw new WireError("unknown_kind", `unknown frame kind 0x${bytes[5].toString(16).padStart(2, "0")}`);
  const flags = view.getUint16(6, true);
  const allowed = kind === "error" ? FLAG_CLOSE : 0;
  if (flags & ~allowed) throw new WireError("unknown_flags", `unknown flags 0x${flags.toString(16)} on frame kind ${kind}`);
  return { size, kind, flags };
}

/**
 * Decodes the frame at the start of `bytes` on a connection speaking
 * `version` (default 1).
 * - `{ frame, size }`: a whole frame; it took the first `size` bytes.
 * - `null`: only part of a frame so far ("need more"): read more and call again.
 * - throws WireError: the bytes are not a frame (the connection cannot go on).
 */
export function decodeFrame(bytes, { version = MIN_VERSION, maxSize = MAX_FRAME_SIZE } = {}) {
  const header = peekHeader(bytes, { version, maxSize });
  if (!header || bytes.length < header.size) return null;
  const r = new Reader(bytes.subarray(HEADER_SIZE, header.size));
  const frame = BODIES[header.kind].decode(r, header.flags, version);
  if (r.remaining > 0) {
    throw new WireError("trailing_bytes", `${r.remaining} bytes left over after the last field of frame kind ${header.kind}`);
  }
  return { frame, size: header.size };
}

/**
 * Cuts a byte stream into frames: `push(chunk)` what the socket gave, then
 * call `next()` until it answers null (need more). Holds at most one partial
 * frame plus the last chunk; a frame over the limit is refused from its first
 * four bytes, before it is buffered. After a WireError the stream is dead.
 * `version` (default 1) is the connection's: set it when the Welcome chose one.
 */
export class FrameDecoder {
  constructor({ version = MIN_VERSION, maxSize = MAX_FRAME_SIZE } = {}) {
    this.version = checkVersion(version);
    this.maxSize = maxSize;
    this.buf = new Uint8Array(0);
    this.start = 0;
    this.end = 0;
  }

  /** Bytes buffered and not yet decoded. */
  get buffered() {
    return this.end - this.start;
  }

  push(chunk) {
    if (this.end + chunk.length > this.buf.length) {
      const live = this.end - this.start;
      if (live + chunk.length <= this.buf.length && this.start > 0) {
        this.buf.copyWithin(0, this.start, this.end);
      } else {
        const next = new Uint8Array(Math.max(live + chunk.length, this.buf.length * 2, 4096));
        next.set(this.buf.subarray(this.start, this.end));
        this.buf = next;
      }
      this.start = 0;
      this.end = live;
    }
    this.buf.set(chunk, this.end);
    this.end += chunk.length;
  }

  /** The next whole frame, or null when more bytes are needed. Throws WireError. */
  next() {
    const decoded = decodeFrame(this.buf.subarray(this.start, this.end), { version: this.version, maxSize: this.maxSize });
    if (!decoded) return null;
    this.start += decoded.size;
    if (this.start === this.end) this.start = this.end = 0;
    return decoded.frame;
  }
}
