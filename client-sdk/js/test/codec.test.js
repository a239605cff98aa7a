// The codec against the golden vectors of protocol/testdata/: every vector
// decodes to its frame and re-encodes byte-exact in its protocol version,
// every invalid one fails with its error, every prefix is "need more", and a
// stream of one version's vectors split anywhere decodes to the same frames.
import { test } from "node:test";
import assert from "node:assert/strict";

import {
  decodeFrame, encodeFrame, FrameDecoder, Kind, MAX_FRAME_SIZE, MAX_VERSION, MIN_VERSION, WireError,
} from "../src/codec.js";
import { invalidVectors, toHex, validVectors } from "./support/vectors.js";

const valid = validVectors();
const invalid = invalidVectors();

test("the golden vectors cover every frame kind", () => {
  const kinds = new Set(valid.map((v) => v.frame.kind));
  assert.deepEqual([...kinds].sort(), Object.keys(Kind).sort());
  assert.ok(invalid.length > 0);
});

test("the vectors cover every version this codec speaks", () => {
  const all = Array.from({ length: MAX_VERSION - MIN_VERSION + 1 }, (_, i) => MIN_VERSION + i);
  assert.deepEqual([...new Set(valid.map((v) => v.version))].sort(), all);
});

for (const v of valid) {
  test(`vector ${v.file}/${v.name} (version ${v.version}) decodes to its frame and re-encodes byte-exact`, () => {
    const { version } = v;
    const decoded = decodeFrame(v.bytes, { version });
    assert.ok(decoded, "a whole frame");
    assert.equal(decoded.size, v.bytes.length);
    assert.deepEqual(decoded.frame, v.frame);
    assert.equal(toHex(encodeFrame(v.frame, { version })), v.hex);
    assert.equal(toHex(encodeFrame(decoded.frame, { version })), v.hex);
  });
}

for (const v of invalid) {
  test(`invalid vector ${v.name} (version ${v.version}) fails with ${v.error}`, () => {
    const { version } = v;
    assert.throws(() => decodeFrame(v.bytes, { version }), (e) => e instanceof WireError && e.code === v.error);
    const d = new FrameDecoder({ version });
    d.push(v.bytes);
    assert.throws(() => d.next(), (e) => e instanceof WireError && e.code === v.error);
  });
}

test("every prefix of every vector is need-more, never an error", () => {
  for (const v of valid) {
    for (let cut = 0; cut < v.bytes.length; cut++) {
      assert.equal(decodeFrame(v.bytes.subarray(0, cut), { version: v.version }), null, `${v.file}/${v.name} cut at ${cut}`);
    }
  }
});

// One stream per version, as one connection reads it.
const VERSIONS = Array.from({ length: MAX_VERSION - MIN_VERSION + 1 }, (_, i) => MIN_VERSION + i);
const streams = VERSIONS.map((version) => {
  const of = valid.filter((v) => v.version === version);
  return { version, bytes: Buffer.concat(of.map((v) => v.bytes)), frames: of.map((v) => v.frame) };
});

function drain(decoder, out) {
  for (let f = decoder.next(); f !== null; f = decoder.next()) out.push(f);
}

test("a stream of one version's vectors split at any byte across two reads decodes the same", () => {
  for (const { version, bytes: stream, frames } of streams) {
    for (let split = 0; split <= stream.length; split++) {
      const d = new FrameDecoder({ version });
      const out = [];
      d.push(stream.subarray(0, split));
      drain(d, out);
      d.push(stream.subarray(split));
      drain(d, out);
      assert.equal(d.buffered, 0, `version ${version} split at ${split}: bytes left over`);
      assert.deepEqual(out, frames, `version ${version} split at ${split}`);
    }
  }
});

test("a stream fed one byte at a time decodes the same", () => {
  for (const { version, bytes: stream, frames } of streams) {
    const d = new FrameDecoder({ version });
    const out = [];
    for (let i = 0; i < stream.length; i++) {
      d.push(stream.subarray(i, i + 1));
      drain(d, out);
    }
    assert.equal(d.buffered, 0);
    assert.deepEqual(out, frames);
  }
});

test("version 2 kinds and fields do not encode in version 1, and nothing else changes", () => {
  for (const v of valid.filter((x) => x.version === 2)) {
    if (v.frame.kind === "ack" || v.frame.kind === "ephemeral") {
      const bytes = encodeFrame(v.frame, { version: 1 });
      assert.equal(toHex(bytes.subarray(5)), v.hex.slice(10), `${v.file}/${v.name}: only the header's version differs`);
    } else {
      assert.throws(() => encodeFrame(v.frame, { version: 1 }), { code: "not_in_version" }, `${v.file}/${v.name}`);
    }
  }
  assert.throws(() => encodeFrame({ kind: "ping", payload: 1n }, { version: MAX_VERSION + 1 }), { code: "unsupported_version" });
});

test("a draft's traceparent is version 3: refused before it, and only the draft changes", () => {
  const v3 = valid.filter((x) => x.version === 3);
  assert.ok(v3.some((v) => v.frame.kind === "publish" && v.frame.activity.traceparent));
  for (const v of v3) {
    assert.throws(() => encodeFrame(v.frame, { version: 2 }), { code: "not_in_version", field: "traceparent" }, `${v.file}/${v.name}`);
  }
  const id = "0190b6a4-1c2e-7100-8000-000000000001";
  const plain = { kind: "publish", requestId: 1, activity: { conversationId: id, type: "message", sender: "", text: "hi" } };
  assert.equal(toHex(encodeFrame(plain, { version: 3 }).subarray(5)), toHex(encodeFrame(plain, { version: 2 }).subarray(5)));
});

test("the size limit is checked from the first four bytes", () => {
  const header = new Uint8Array(4);
  new DataView(header.buffer).setUint32(0, 1000 - 4, true);
  assert.throws(() => decodeFrame(header, { maxSize: 999 }), { code: "frame_too_large" });
  assert.equal(decodeFrame(header, { maxSize: 1000 }), null);
  const d = new FrameDecoder({ maxSize: 999 });
  d.push(header);
  assert.throws(() => d.next(), { code: "frame_too_large" });
  // A limit above the protocol's counts as the protocol's.
  new DataView(header.buffer).setUint32(0, MAX_FRAME_SIZE + 1 - 4, true);
  assert.throws(() => decodeFrame(header, { maxSize: MAX_FRAME_SIZE * 2 }), { code: "frame_too_large" });
});

test("encoding refuses what does not fit its layout", () => {
  const id = "0190b6a4-1c2e-7100-8000-000000000001";
  const draft = { conversationId: id, type: "message", sender: "", text: "hi" };
  assert.throws(() => encodeFrame({ kind: "publish", requestId: 1, activity: { ...draft, type: "x".repeat(256) } }), { code: "too_long", field: "type" });
  assert.throws(() => encodeFrame({ kind: "publish", requestId: -1, activity: draft }), { code: "invalid_value", field: "request_id" });
  assert.throws(() => encodeFrame({ kind: "publish", requestId: 1, activity: { ...draft, conversationId: "nope" } }), { code: "invalid_value" });
  assert.throws(() => encodeFrame({ kind: "ping", payload: -1n }), { code: "invalid_value" });
  assert.throws(() => encodeFrame({ kind: "publish", requestId: 1, activity: { ...draft, text: "x".repeat(2000) } }, { maxSize: 1000 }), { code: "frame_too_large" });
  assert.throws(() => encodeFrame({ kind: "nope" }), { code: "invalid_value" });
  // Upper-case ids and 16-byte arrays are accepted; decoding answers lower case.
  const upper = encodeFrame({ kind: "ack", requestId: 1 });
  assert.equal(upper.length, 12);
  const bytes = encodeFrame({ kind: "unsubscribe", requestId: 2, conversationIds: [id.toUpperCase(), new Uint8Array(16)] });
  assert.deepEqual(decodeFrame(bytes).frame.conversationIds, [id, "00000000-0000-0000-0000-000000000000"]);
});
