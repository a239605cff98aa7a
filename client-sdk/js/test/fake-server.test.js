// The client against a scripted server on loopback (speaking through the
// codec), for what the real server does not do on demand: Ping from the
// server, a short idle timeout, a close-flagged Error, a duplicate or a gap
// in the seqs.
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:net";

import { connect as sdkConnect, ConvergerError, encodeFrame, FrameDecoder, LIVE_ONLY } from "../index.js";

/** connect(), closed by the after hook even when a test fails half-way. */
async function connect(...args) {
  const c = await sdkConnect(...args);
  clients.push(c);
  return c;
}

const TENANT = "0190b6a4-1c2d-7e3f-8a4b-5c6d7e8f9a0b";
const CONV = "0190b6a4-1c2e-7100-8000-000000000001";

/** A server that answers Hello with Welcome and hands every later frame to `script`. */
async function fakeServer({ idleTimeoutSecs = 60 } = {}) {
  const connections = [];
  const waiters = [];
  const server = createServer((socket) => {
    const conn = { socket, frames: [], listeners: [], send: (f) => socket.write(encodeFrame(f)) };
    const decoder = new FrameDecoder();
    socket.on("data", (chunk) => {
      decoder.push(chunk);
      for (let f = decoder.next(); f !== null; f = decoder.next()) {
        if (f.kind === "hello") {
          conn.send({
            kind: "welcome", version: 1, idleTimeoutSecs, maxFrame: 1 << 20, sendQueueBytes: 1 << 22,
            tenantId: TENANT, conversationId: null, expiresAt: 0n, sender: "", server: "fake/0",
          });
          connections.push(conn);
          waiters.splice(0).forEach((w) => w(conn));
          continue;
        }
        conn.frames.push(f);
        for (const l of conn.listeners.splice(0)) l();
      }
    });
    socket.on("error", () => {});
  });
  await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
  return {
    target: { tcp: { host: "127.0.0.1", port: server.address().port } },
    /** The n-th connection (0-based), once its handshake is done. */
    connection(n) {
      return connections[n] ? Promise.resolve(connections[n]) : new Promise((ok) => {
        const check = () => (connections[n] ? ok(connections[n]) : waiters.push(check));
        waiters.push(check);
      });
    },
    close() {
      for (const c of connections) c.socket.destroy();
      server.close();
    },
  };
}

/** The first frame of `conn` (from now or already received) for which `where` holds; bounded. */
async function frameOf(conn, where, ms = 3_000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const found = conn.frames.find(where);
    if (found) return found;
    if (Date.now() > deadline) throw new Error("no such frame in time");
    await new Promise((ok) => { conn.listeners.push(ok); setTimeout(ok, 50); });
  }
}

const activity = (seq) => ({
  id: `0190b6a4-2000-7000-9000-${String(seq).padStart(12, "0")}`, conversationId: CONV, seq: BigInt(seq), createdAt: 1719835200123456n,
  type: "message", sender: "u", text: `t${seq}`, attachments: null, metadata: "{}", idempotencyKey: null,
});

const servers = [];
const clients = [];
after(() => {
  clients.forEach((c) => c.close());
  servers.forEach((s) => s.close());
});

async function subscribed(conn, afterSeq, lastSeq) {
  const sub = await frameOf(conn, (f) => f.kind === "subscribe" && f.items[0].afterSeq === afterSeq);
  conn.send({ kind: "subscribed", requestId: sub.requestId, items: [{ conversationId: CONV, code: 0, lastSeq }] });
  return sub;
}

test("answers the server's Ping, and pings by itself when idle", async () => {
  const fake = await fakeServer({ idleTimeoutSecs: 1 });
  servers.push(fake);
  const c = await connect(fake.target, { apiKey: "cvg_x" });
  const conn = await fake.connection(0);
  conn.send({ kind: "ping", payload: 77n });
  assert.equal((await frameOf(conn, (f) => f.kind === "pong")).payload, 77n);
  await frameOf(conn, (f) => f.kind === "ping", 2_000); // about a third of the idle timeout
  c.close();
});

test("a close-flagged Error is the disconnect's cause; the reconnect resumes after the last seq and drops duplicates", async () => {
  const fake = await fakeServer();
  servers.push(fake);
  const c = await connect(fake.target, { apiKey: "cvg_x" }, { reconnect: { minDelayMs: 10 } });
  const first = await fake.connection(0);
  const subscribing = c.subscribe(CONV, 0n);
  await subscribed(first, 0n, 2n);
  const sub = await subscribing;
  first.send({ kind: "deliver", activities: [activity(1), activity(2)] });
  assert.equal((await sub.next()).value.seq, 1n);
  assert.equal((await sub.next()).value.seq, 2n);

  const dropped = new Promise((ok) => c.once("disconnect", ok));
  first.send({ kind: "error", requestId: 0, code: 1007, message: "send queue over its bound", close: true });
  first.socket.end();
  const why = await dropped;
  assert.ok(why.cause instanceof ConvergerError && why.cause.is("slow_consumer"));

  const second = await fake.connection(1);
  await subscribed(second, 2n, 3n);
  second.send({ kind: "deliver", activities: [activity(2), activity(3)] });
  const next = await sub.next();
  assert.equal(next.value.seq, 3n);
  assert.equal(sub.stats.duplicates, 1);
  c.close();
});

test("a gap in the seqs is healed by resubscribing after the last one", async () => {
  const fake = await fakeServer();
  servers.push(fake);
  const c = await connect(fake.target, { apiKey: "cvg_x" });
  const conn = await fake.connection(0);
  const subscribing = c.subscribe(CONV, 0n);
  await subscribed(conn, 0n, 0n);
  const sub = await subscribing;
  conn.send({ kind: "deliver", activities: [activity(1), activity(3)] });
  assert.equal((await sub.next()).value.seq, 1n);
  const unsub = await frameOf(conn, (f) => f.kind === "unsubscribe");
  assert.deepEqual(unsub.conversationIds, [CONV]);
  conn.send({ kind: "ack", requestId: unsub.requestId });
  await subscribed(conn, 1n, 3n);
  conn.send({ kind: "deliver", activities: [activity(2), activity(3)] });
  assert.equal((await sub.next()).value.seq, 2n);
  assert.equal((await sub.next()).value.seq, 3n);
  assert.equal(sub.stats.resyncs, 1);
  c.close();
});

test("a live-only subscription takes its resume point from Subscribed", async () => {
  const fake = await fakeServer();
  servers.push(fake);
  const c = await connect(fake.target, { apiKey: "cvg_x" }, { reconnect: { minDelayMs: 10 } });
  const first = await fake.connection(0);
  const subscribing = c.subscribe(CONV, LIVE_ONLY);
  await subscribed(first, LIVE_ONLY, 5n);
  const sub = await subscribing;
  assert.equal(sub.lastSeq, 5n);
  first.send({ kind: "deliver", activities: [activity(6)] });
  assert.equal((await sub.next()).value.seq, 6n);
  c.reconnect();
  const second = await fake.connection(1);
  await subscribed(second, 6n, 6n); // resumes after 6, not live-only again
  c.close();
});
