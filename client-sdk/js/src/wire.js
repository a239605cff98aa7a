// Primitive readers and writers of the binary protocol: little-endian
// fixed-width integers, 64-bit fields as BigInt, 16-byte ids as UUID strings,
// length-prefixed UTF-8, and WireError. The Reader never reads past its
// frame (running short is `truncated`, naming the field); the Writer checks
// every value against its field's range and length prefix before writing it.

/**
 * Bytes that are not a frame, or a frame that does not fit its layout.
 * `code` is the stable name the golden vectors use: frame_too_large,
 * bad_length, unsupported_version, unknown_kind, unknown_flags, truncated,
 * trailing_bytes, invalid_utf8, invalid_value (and too_long, not_in_version
 * on encode).
 */
export class WireError extends Error {
  constructor(code, message, field = null) {
    super(message);
    this.name = "WireError";
    this.code = code;
    this.field = field;
  }

  /** The catalogue number a peer answers this with before closing (bad_frame, frame_too_large, unsupported_version). */
  get protocolCode() {
    if (this.code === "frame_too_large") return 1002;
    if (this.code === "unsupported_version") return 1003;
    return 1001;
  }
}

export const truncated = (field) => new WireError("truncated", `field \`${field}\` runs past the end of the frame`, field);
export const invalid = (field, reason) => new WireError("invalid_value", `field \`${field}\` is invalid: ${reason}`, field);

// ---------------------------------------------------------------- ids

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** 16 bytes (RFC 4122 order) → lowercase hyphenated UUID. */
export function uuidFromBytes(b) {
  let s = "";
  for (let i = 0; i < 16; i++) {
    if (i === 4 || i === 6 || i === 8 || i === 10) s += "-";
    s += HEX[b[i]];
  }
  return s;
}

/** A UUID string (any case) or 16 bytes → 16 bytes. */
export function uuidToBytes(id, field = "id") {
  if (id instanceof Uint8Array) {
    if (id.length !== 16) throw invalid(field, "an id is 16 bytes");
    return id;
  }
  if (typeof id !== "string" || !UUID_RE.test(id)) throw invalid(field, "not a UUID");
  const hex = id.replace(/-/g, "");
  const out = new Uint8Array(16);
  for (let i = 0; i < 16; i++) out[i] = parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  return out;
}

export const ZERO_ID = "00000000-0000-0000-0000-000000000000";

// ---------------------------------------------------------------- reading

const utf8Decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const utf8Encoder = new TextEncoder();

export class Reader {
  constructor(bytes) {
    this.bytes = bytes;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.pos = 0;
  }

  get remaining() {
    return this.bytes.length - this.pos;
  }

  need(n, field) {
    if (n > this.remaining) throw truncated(field);
    const at = this.pos;
    this.pos += n;
    return at;
  }

  u8(field) { return this.view.getUint8(this.need(1, field)); }
  u16(field) { return this.view.getUint16(this.need(2, field), true); }
  u32(field) { return this.view.getUint32(this.need(4, field), true); }
  u64(field) { return this.view.getBigUint64(this.need(8, field), true); }
  i64(field) { return this.view.getBigInt64(this.need(8, field), true); }

  id(field) {
    const at = this.need(16, field);
    return uuidFromBytes(this.bytes.subarray(at, at + 16));
  }

  bool(field) {
    const b = this.u8(field);
    if (b > 1) throw invalid(field, "a boolean is 0 or 1");
    return b === 1;
  }

  /** A string with a 1, 2 or 4 byte length prefix. */
  str(lenSize, field) {
    const n = lenSize === 1 ? this.u8(field) : lenSize === 2 ? this.u16(field) : this.u32(field);
    const at = this.need(n, field);
    try {
      return utf8Decoder.decode(this.bytes.subarray(at, at + n));
    } catch {
      throw new WireError("invalid_utf8", `field \`${field}\` is not valid UTF-8`, field);
    }
  }

  optStr(present, lenSize, field) {
    return present ? this.str(lenSize, field) : null;
  }

  /** An item count, checked against the bytes left (each item takes at least `minItem`). */
  count(minItem, field) {
    const n = this.u32(field);
    if (n * Math.max(minItem, 1) > this.remaining) throw truncated(field);
    return n;
  }
}

// ---------------------------------------------------------------- writing

const U64_MAX = 0xffff_ffff_ffff_ffffn;
const I64_MIN = -(1n << 63n);
const I64_MAX = (1n << 63n) - 1n;

function big(value, field, min, max) {
  let v = value;
  if (typeof v === "number" && Number.isSafeInteger(v)) v = BigInt(v);
  if (typeof v !== "bigint" || v < min || v > max) throw invalid(field, "out of range for a 64-bit field");
  return v;
}

export class Writer {
  constructor(capacity = 256) {
    this.bytes = new Uint8Array(capacity);
    this.view = new DataView(this.bytes.buffer);
    this.pos = 0;
  }

  reserve(n) {
    if (this.pos + n <= this.bytes.length) return;
    let cap = this.bytes.length * 2;
    while (cap < this.pos + n) cap *= 2;
    const next = new Uint8Array(cap);
    next.set(this.bytes.subarray(0, this.pos));
    this.bytes = next;
    this.view = new DataView(next.buffer);
  }

  int(value, field, size, max) {
    if (!Number.isInteger(value) || value < 0 || value > max) throw invalid(field, `not a u${size * 8}`);
    this.reserve(size);
    if (size === 1) this.view.setUint8(this.pos, value);
    else if (size === 2) this.view.setUint16(this.pos, value, true);
    else this.view.setUint32(this.pos, value, true);
    this.pos += size;
  }

  u8(v, field) { this.int(v, field, 1, 0xff); }
  u16(v, field) { this.int(v, field, 2, 0xffff); }
  u32(v, field) { this.int(v, field, 4, 0xffff_ffff); }

  u64(v, field) {
    this.reserve(8);
    this.view.setBigUint64(this.pos, big(v, field, 0n, U64_MAX), true);
    this.pos += 8;
  }

  i64(v, field) {
    this.reserve(8);
    this.view.setBigInt64(this.pos, big(v, field, I64_MIN, I64_MAX), true);
    this.pos += 8;
  }

  raw(bytes) {
    this.reserve(bytes.length);
    this.bytes.set(bytes, this.pos);
    this.pos += bytes.length;
  }

  id(v, field) { this.raw(uuidToBytes(v, field)); }

  bool(v, field) {
    if (typeof v !== "boolean") throw invalid(field, "not a boolean");
    this.u8(v ? 1 : 0, field);
  }

  str(s, lenSize, field) {
    if (typeof s !== "string") throw invalid(field, "not a string");
    const b = utf8Encoder.encode(s);
    const max = lenSize === 1 ? 0xff : lenSize === 2 ? 0xffff : 0xffff_ffff;
    if (b.length > max) {
      throw new WireError("too_long", `field \`${field}\` is ${b.length} bytes, over its limit of ${max}`, field);
    }
    if (lenSize === 1) this.u8(b.length, field);
    else if (lenSize === 2) this.u16(b.length, field);
    else this.u32(b.length, field);
    this.raw(b);
  }

  optStr(s, lenSize, field) {
    if (s !== null && s !== undefined) this.str(s, lenSize, field);
  }

  count(items, field) {
    if (!Array.isArray(items)) throw invalid(field, "not an array");
    this.u32(items.length, field);
  }
}

export const present = (v) => v !== null && v !== undefined;
