// The golden vectors of protocol/testdata/, turned into the codec's JS shapes:
// snake_case keys become camelCase and the decimal strings of 64-bit fields
// become BigInt (docs/protocol.md, "Test vectors").
import { readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";

export const TESTDATA = resolve(import.meta.dirname, "..", "..", "..", "..", "protocol", "testdata");

const WIDE = new Set([
  "seq", "created_at", "payload", "after_seq", "until_seq", "last_seq", "expires_at",
  "edited_at", "deleted_at", "read_seq", "delivered_seq",
]);
const camel = (k) => k.replace(/_([a-z])/g, (_, c) => c.toUpperCase());

/** A vector's `frame` JSON as the codec's frame object. */
export function toJs(value, key = null) {
  if (Array.isArray(value)) return value.map((v) => toJs(v));
  if (value && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [camel(k), k === "kind" ? v : toJs(v, k)]));
  }
  if (typeof value === "string" && WIDE.has(key)) return BigInt(value);
  return value;
}

export const fromHex = (hex) => Uint8Array.from(Buffer.from(hex, "hex"));
export const toHex = (bytes) => Buffer.from(bytes).toString("hex");

/** Every valid vector: { file, name, version, hex, bytes, frame }. */
export function validVectors() {
  const out = [];
  for (const file of readdirSync(TESTDATA).filter((f) => f.endsWith(".json") && f !== "invalid.json").sort()) {
    const doc = JSON.parse(readFileSync(join(TESTDATA, file), "utf8"));
    for (const v of doc.vectors) {
      out.push({ file, name: v.name, version: v.version, hex: v.hex, bytes: fromHex(v.hex), frame: toJs(v.frame) });
    }
  }
  return out;
}

/** Every invalid vector: { name, version, hex, bytes, error }. */
export function invalidVectors() {
  const doc = JSON.parse(readFileSync(join(TESTDATA, "invalid.json"), "utf8"));
  return doc.vectors.map((v) => ({ ...v, bytes: fromHex(v.hex) }));
}
