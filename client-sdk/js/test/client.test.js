// The client against the real server (one converger process for the file,
// loopback only): connect by token and by API key over TCP and over
// /socket/binary, publish and acks, idempotent replay, batches with a failed
// item, subscribe backlog then live, reconnect with resume while another
// client publishes, a slow consumer, history, typing, reauth and typed errors.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createHmac, randomUUID } from "node:crypto";
import { WebSocket } from "ws";

import { connect, ConnectionError, ConvergerError, LIVE_ONLY, WireError } from "../index.js";
import { startServer } from "./support/server.js";

let server;
const clients = [];
before(async () => { server = await startServer(); });
after(async () => {
  for (const c of clients) c.close();
  await server?.stop();
});

const TRANSPORTS = {
  tcp: () => ({ tcp: server.tcp }),
  ws: () => ({ url: server.wsUrl }),
};

async function open(transport, credential, options = {}) {
  const c = await connect(TRANSPORTS[transport](), credential, { WebSocket, ...options });
  clients.push(c);
  return c;
}

/** The next `n` activities of `sub`, failing after `ms`. */
async function take(sub, n, ms = 10_000) {
  const out = [];
  const timer = new Promise((_, fail) => setTimeout(() => fail(new Error(`only ${out.length} of ${n} activities within ${ms} ms`)), ms).unref());
  while (out.length < n) {
    const r = await Promise.race([sub.next(), timer]);
    if (r.done) throw new Error(`the subscription ended after ${out.length} of ${n}`);
    out.push(r.value);
  }
  return out;
}

/** Resolves with the first event `name` of `client` for which `where` holds, failing after `ms`. */
function nextEvent(client, name, where = () => true, ms = 5_000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { off(); reject(new Error(`no ${name} event within ${ms} ms`)); }, ms);
    const off = client.on(name, (e) => { if (where(e)) { clearTimeout(timer); off(); resolve(e); } });
  });
}

/** Runs `action` every 50 ms (at most 40 times) until `event` settles. */
async function repeatUntil(event, action) {
  let settled = false;
  const done = event.finally(() => { settled = true; });
  for (let i = 0; i < 40 && !settled; i++) {
    await action();
    await Promise.race([done.catch(() => {}), new Promise((r) => setTimeout(r, 50))]);
  }
  return done;
}

const seqs = (activities) => activities.map((a) => Number(a.seq));
const range = (from, to) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

for (const transport of Object.keys(TRANSPORTS)) {
  describe(`over ${transport}`, () => {
    test("connects with a client token: Welcome names the token's conversation and sender", async () => {
      const world = await server.world(`tok-${transport}`);
      const c = await open(transport, { token: await server.token(world, "alice") });
      assert.equal(c.state, "open");
      assert.equal(c.welcome.conversationId, world.conversationId);
      assert.equal(c.welcome.sender, "alice");
      assert.ok(c.welcome.expiresAt > BigInt(Date.now()) * 1000n);
      assert.ok(c.welcome.maxFrame > 0 && c.welcome.idleTimeoutSecs > 0);
      assert.ok((await c.ping()) >= 0);
      const ack = await c.publish({ conversationId: world.conversationId, text: "hi from a token" });
      assert.equal(ack.seq, 1n);
      const page = await c.history(world.conversationId);
      assert.equal(page.activities[0].sender, "alice");
      c.close();
      assert.equal(c.state, "closed");
    });

    test("connects with an API key: the whole tenant, no expiry", async () => {
      const world = await server.world(`key-${transport}`);
      const c = await open(transport, { apiKey: world.apiKey });
      assert.equal(c.welcome.conversationId, null);
      assert.equal(c.welcome.expiresAt, 0n);
      assert.equal(c.welcome.sender, "");
      const other = await server.conversation(world);
      const ack = await c.publish({ conversationId: other, sender: "svc", type: "event", metadata: { n: 1 } });
      assert.equal(ack.seq, 1n);
      assert.equal(ack.replayed, false);
      c.close();
    });

    test("bad credentials are a typed error", async () => {
      await assert.rejects(open(transport, { token: "not.a.token" }), (e) => e instanceof ConvergerError && e.is("unauthorized") && e.code === 2001);
      await assert.rejects(open(transport, { apiKey: "cvg_wrong" }), (e) => e instanceof ConvergerError && e.is("unauthorized"));
    });

    test("subscribe sends the backlog, then the live stream, in order", async () => {
      const world = await server.world(`sub-${transport}`);
      for (let i = 1; i <= 5; i++) await server.post(world, `rest ${i}`);
      const c = await open(transport, { token: await server.token(world, "reader") });
      const sub = await c.subscribe(world.conversationId, 0n);
      assert.equal(sub.lastSeqAtSubscribe, 5n);
      const backlog = await take(sub, 5);
      assert.deepEqual(seqs(backlog), range(1, 5));
      assert.deepEqual(backlog.map((a) => a.text), range(1, 5).map((i) => `rest ${i}`));
      assert.deepEqual(backlog[0].metadata, {});
      await Promise.all(range(6, 10).map((i) => c.publish({ conversationId: world.conversationId, text: `live ${i}` })));
      await server.post(world, "rest 11");
      const live = await take(sub, 6);
      assert.deepEqual(seqs(live), range(6, 11));
      assert.equal(live[5].sender, "rest");

      // Resume from a watermark; live-only skips the backlog.
      const c2 = await open(transport, { apiKey: world.apiKey });
      const resumed = await c2.subscribe(world.conversationId, 8n);
      assert.deepEqual(seqs(await take(resumed, 3)), [9, 10, 11]);
      const other = await server.conversation(world);
      await server.post(world, "old", "rest", other);
      const liveOnly = await c2.subscribe(other, LIVE_ONLY);
      assert.equal(liveOnly.lastSeq, 1n);
      await server.post(world, "new", "rest", other);
      const [fresh] = await take(liveOnly, 1);
      assert.equal(fresh.text, "new");
      assert.equal(fresh.seq, 2n);
      await assert.rejects(c2.subscribe(other, 0n), (e) => e instanceof ConvergerError && e.is("already_subscribed"));
      c.close();
      c2.close();
    });

    test("reconnect resumes every subscription with no gap and no duplicate while another client publishes", async () => {
      const world = await server.world(`resume-${transport}`);
      const second = await server.conversation(world);
      const subscriber = await open(transport, { apiKey: world.apiKey });
      const publisher = await open(transport, { apiKey: world.apiKey });
      const subA = await subscriber.subscribe(world.conversationId, 0n);
      const subB = await subscriber.subscribe(second, 0n);
      let reconnects = 0;
      subscriber.on("reconnect", () => { reconnects++; });
      // The publisher goes on until the subscriber has reconnected three
      // times, then 20 rounds more: every drop happens mid-stream.
      let rounds = 0;
      let stop = false;
      const publishing = (async () => {
        for (let extra = 0; extra < 20 && rounds < 1000; rounds++) {
          if (stop) extra++;
          await Promise.all([0, 1].map((k) => publisher.publish({ conversationId: k ? second : world.conversationId, sender: "pub", text: `r${rounds}` })));
        }
      })();
      for (let k = 0; k < 3; k++) {
        await new Promise((r) => setTimeout(r, 30));
        const back = nextEvent(subscriber, "reconnect");
        subscriber.reconnect();
        await back;
      }
      stop = true;
      await publishing;
      const N = rounds;
      assert.ok(N > 20, `${N} rounds published`);
      assert.deepEqual(seqs(await take(subA, N, 20_000)), range(1, N));
      assert.deepEqual(seqs(await take(subB, N, 20_000)), range(1, N));
      assert.equal(reconnects, 3);
      assert.equal(subscriber.state, "open");
      // Nothing more is buffered (no duplicate waiting behind the last one).
      await subscriber.ping();
      assert.equal(subA.buffered, 0);
      assert.equal(subB.buffered, 0);
      subscriber.close();
      publisher.close();
    });

    test("typing signals reach the other client", async () => {
      const world = await server.world(`typing-${transport}`);
      const alice = await open(transport, { token: await server.token(world, "alice") });
      const bob = await open(transport, { token: await server.token(world, "bob") });
      await bob.subscribe(world.conversationId, LIVE_ONLY);
      // Ephemeral signals may be dropped (e.g. while bob's subscription is
      // still reading its backlog), so alice repeats until bob has one.
      const started = await repeatUntil(nextEvent(bob, "typing", (e) => e.sender === "alice" && e.typing), () => alice.typing(world.conversationId, true));
      assert.deepEqual(started, { conversationId: world.conversationId, sender: "alice", typing: true });
      const stopped = await repeatUntil(nextEvent(bob, "typing", (e) => e.sender === "alice" && !e.typing), () => alice.typing(world.conversationId, false));
      assert.equal(stopped.typing, false);
      alice.close();
      bob.close();
    });
  });
}

test("many publishes in flight are each acked; seqs are gap-free", async () => {
  const world = await server.world("inflight");
  const c = await open("tcp", { apiKey: world.apiKey });
  const acks = await Promise.all(range(1, 100).map((i) => c.publish({ conversationId: world.conversationId, sender: "svc", text: `n${i}` })));
  assert.deepEqual(acks.map((a) => Number(a.seq)).sort((x, y) => x - y), range(1, 100));
  assert.equal(new Set(acks.map((a) => a.activityId)).size, 100);
  c.close();
});

test("a repeated idempotency key replays the original activity", async () => {
  const world = await server.world("idem");
  const c = await open("tcp", { token: await server.token(world, "alice") });
  const draft = { conversationId: world.conversationId, text: "once", idempotencyKey: "order-42" };
  const first = await c.publish(draft);
  const again = await c.publish(draft);
  assert.equal(first.replayed, false);
  assert.equal(again.replayed, true);
  assert.equal(again.activityId, first.activityId);
  assert.equal(again.seq, first.seq);
  assert.equal(again.createdAt, first.createdAt);
  const page = await c.history(world.conversationId);
  assert.equal(page.activities.length, 1);
  assert.equal(page.activities[0].idempotencyKey, "order-42");
  c.close();
});

test("a batch answers per item: written, replayed, closed, missing, invalid", async () => {
  const world = await server.world("batch");
  const closed = await server.conversation(world);
  await server.closeConversation(world, closed);
  const c = await open("ws", { apiKey: world.apiKey });
  const conv = world.conversationId;
  const results = await c.publishBatch([
    { conversationId: conv, sender: "svc", text: "one", idempotencyKey: "b1" },
    { conversationId: closed, sender: "svc", text: "to a closed one" },
    { conversationId: "0190b6a4-1c2e-7100-8000-00000000dead", sender: "svc", text: "nowhere" },
    { conversationId: conv, sender: "svc", text: "two", attachments: [{ name: "a.txt" }] },
    { conversationId: conv, sender: "svc", text: "one again", idempotencyKey: "b1" },
    { conversationId: conv, sender: "", text: "no sender" },
  ]);
  assert.equal(results.length, 6);
  assert.deepEqual(results.map((r) => r.ok), [true, false, false, true, true, false]);
  assert.equal(results[0].seq, 1n);
  assert.equal(results[3].seq, 2n);
  assert.equal(results[4].replayed, true);
  assert.equal(results[4].activityId, results[0].activityId);
  assert.ok(results[1].error instanceof ConvergerError && results[1].error.is("conversation_closed"));
  assert.ok(results[2].error.is("not_found"));
  assert.ok(results[5].error.is("validation_failed"));
  const page = await c.history(conv);
  assert.deepEqual(page.activities.map((a) => a.text), ["one", "two"]);
  assert.deepEqual(page.activities[1].attachments, [{ name: "a.txt" }]);
  c.close();
});

test("history pages by seq range", async () => {
  const world = await server.world("history");
  const c = await open("tcp", { apiKey: world.apiKey });
  await c.publishBatch(range(1, 12).map((i) => ({ conversationId: world.conversationId, sender: "svc", text: `h${i}` })));
  const first = await c.history(world.conversationId, { limit: 5 });
  assert.equal(first.lastSeq, 12n);
  assert.deepEqual(seqs(first.activities), range(1, 5));
  const next = await c.history(world.conversationId, { afterSeq: 5n, limit: 5 });
  assert.deepEqual(seqs(next.activities), range(6, 10));
  const bounded = await c.history(world.conversationId, { afterSeq: 2n, untilSeq: 4n, limit: 100 });
  assert.deepEqual(seqs(bounded.activities), [3, 4]);
  const latest = await c.history(world.conversationId, { afterSeq: first.lastSeq - 3n });
  assert.deepEqual(latest.activities.map((a) => a.text), ["h10", "h11", "h12"]);
  await assert.rejects(c.history("0190b6a4-1c2e-7100-8000-00000000dead"), (e) => e.is("not_found"));
  c.close();
});

test("a slow consumer's bounded buffer resubscribes and loses nothing", async () => {
  const world = await server.world("slow");
  const c = await open("tcp", { apiKey: world.apiKey });
  const sub = await c.subscribe(world.conversationId, 0n, { maxBuffered: 4 });
  const N = 60;
  for (let i = 1; i <= N; i += 20) {
    await c.publishBatch(range(i, i + 19).map((k) => ({ conversationId: world.conversationId, sender: "svc", text: `s${k}` })));
  }
  await new Promise((r) => setTimeout(r, 100)); // let deliveries pile up past the bound
  assert.ok(sub.buffered <= 4);
  const got = [];
  while (got.length < N) {
    got.push(...await take(sub, 1));
    if (got.length % 10 === 0) await new Promise((r) => setTimeout(r, 5));
  }
  assert.deepEqual(seqs(got), range(1, N));
  assert.ok(sub.stats.resyncs > 0, "the bound was reached and healed by resubscribing");
  c.close();
});

test("a token only reaches its own conversation and sender", async () => {
  const world = await server.world("scope");
  const other = await server.conversation(world);
  const c = await open("tcp", { token: await server.token(world, "alice") });
  await assert.rejects(c.subscribe(other, 0n), (e) => e instanceof ConvergerError && e.is("forbidden") && e.requestId > 0);
  await assert.rejects(c.publish({ conversationId: other, text: "no" }), (e) => e.is("forbidden"));
  await assert.rejects(c.publish({ conversationId: world.conversationId, sender: "mallory", text: "no" }), (e) => e.is("forbidden"));
  await assert.rejects(c.publish({ conversationId: world.conversationId }), (e) => e.is("validation_failed"));
  // Ephemeral refusals arrive as "error" events.
  const refused = nextEvent(c, "error");
  await c.typing(other, true);
  assert.ok((await refused).is("forbidden"));
  assert.equal(c.state, "open");
  c.close();
});

test("reauth swaps in a fresh token; a token for someone else is refused", async () => {
  const world = await server.world("reauth");
  const token = await server.token(world, "alice");
  const c = await open("tcp", { token });
  await c.reauth(await server.refresh(token));
  await assert.rejects(c.reauth(await server.token(world, "bob")), (e) => e.is("forbidden"));
  await assert.rejects(c.reauth("bad.to.ken"), (e) => e.is("unauthorized"));
  assert.ok((await c.publish({ conversationId: world.conversationId, text: "still here" })).seq === 1n);
  c.close();
});

/** An HS256 client token signed the way a tenant's backend signs one (docs/api.md "Tenant-signed tokens"). */
function tenantSigned(world, key, sender, ttl = 600) {
  const b64 = (v) => Buffer.from(JSON.stringify(v)).toString("base64url");
  const now = Math.floor(Date.now() / 1000);
  const claims = { sub: sender, tenant_id: world.tenantId, conversation_id: world.conversationId, iat: now, exp: now + ttl, jti: randomUUID() };
  const input = `${b64({ alg: "HS256", typ: "JWT", kid: key.kid })}.${b64(claims)}`;
  return `${input}.${createHmac("sha256", key.secret).update(input).digest("base64url")}`;
}

test("a token the tenant signs with its own key is taken unchanged, over TCP and /socket/binary, until revoked", async () => {
  const world = await server.world("tenant-signed");
  const key = await server.signingKey(world);
  for (const transport of ["tcp", "ws"]) {
    const c = await open(transport, { token: tenantSigned(world, key, "alice") });
    assert.ok((await c.publish({ conversationId: world.conversationId, text: `signed, ${transport}` })).seq >= 1n);
    await c.reauth(tenantSigned(world, key, "alice", 900));
    c.close();
  }
  await server.revokeSigningKey(world, key.kid);
  await assert.rejects(open("tcp", { token: tenantSigned(world, key, "alice") }), (e) => e.is("unauthorized"));
});

test("a credential function is asked again on every reconnect", async () => {
  const world = await server.world("credfn");
  let asked = 0;
  const c = await open("tcp", async () => { asked++; return { token: await server.token(world, "alice") }; });
  const back = nextEvent(c, "reconnect");
  c.reconnect();
  await back;
  assert.equal(asked, 2);
  c.close();
});

test("a reconnect refused for good ends the client and its subscriptions with the typed error", async () => {
  const world = await server.world("fatal");
  const token = await server.token(world, "alice");
  let calls = 0;
  const c = await open("ws", () => (++calls === 1 ? { token } : { token: "expired.or.revoked" }));
  const sub = await c.subscribe(world.conversationId, 0n);
  const closed = nextEvent(c, "close");
  c.reconnect();
  const why = await closed;
  assert.ok(why instanceof ConvergerError && why.is("unauthorized"));
  assert.equal(c.state, "closed");
  await assert.rejects(sub.next(), (e) => e.is("unauthorized"));
  assert.deepEqual(await sub.next(), { value: undefined, done: true });
  await assert.rejects(c.publish({ conversationId: world.conversationId, text: "x" }), (e) => e.is("unauthorized"));
});

test("close fails requests in flight and ends subscriptions; oversized frames are refused before sending", async () => {
  const world = await server.world("close");
  const c = await open("tcp", { apiKey: world.apiKey });
  const big = "x".repeat(c.welcome.maxFrame);
  await assert.rejects(c.publish({ conversationId: world.conversationId, sender: "svc", text: big }), (e) => e instanceof WireError && e.code === "frame_too_large");
  const sub = await c.subscribe(world.conversationId, 0n);
  const inFlight = c.publish({ conversationId: world.conversationId, sender: "svc", text: "late" });
  c.close();
  await assert.rejects(inFlight, ConnectionError);
  assert.deepEqual(await sub.next(), { value: undefined, done: true });
  await assert.rejects(c.ping(), ConnectionError);
});

test("a subscription the server ends (disconnect, close) ends with the code and reason, and may be started again", async () => {
  const world = await server.world("ended");
  const c = await open("tcp", { token: await server.token(world, "alice") });
  const sub = await c.subscribe(world.conversationId, 0n);
  await server.post(world, "before");
  assert.deepEqual(seqs(await take(sub, 1)), [1]);
  const errored = nextEvent(c, "error", (e) => e.is("disconnected"));
  assert.equal((await server.disconnect(world, "please rejoin", "alice")).disconnected, 1);
  await assert.rejects(sub.next(), (e) => e instanceof ConvergerError && e.is("disconnected") && e.serverMessage === "please rejoin");
  assert.deepEqual(await sub.next(), { value: undefined, done: true }, "ended for good, not resumed");
  await errored; // the Error frame behind it, about no request

  // Not a ban: subscribing again works; closing the conversation ends it with conversation_closed.
  const again = await c.subscribe(world.conversationId, 1n);
  await server.post(world, "after");
  assert.deepEqual(seqs(await take(again, 1)), [2]);
  await server.closeConversation(world, world.conversationId);
  await assert.rejects(again.next(), (e) => e instanceof ConvergerError && e.is("conversation_closed"));
  c.close();
});

test("leaving a for-await loop unsubscribes", async () => {
  const world = await server.world("forawait");
  const c = await open("tcp", { apiKey: world.apiKey });
  await c.publishBatch(range(1, 3).map((i) => ({ conversationId: world.conversationId, sender: "svc", text: `f${i}` })));
  const texts = [];
  for await (const a of await c.subscribe(world.conversationId)) {
    texts.push(a.text);
    if (a.seq === 3n) break;
  }
  assert.deepEqual(texts, ["f1", "f2", "f3"]);
  // Subscribing again works: the first was unsubscribed.
  const again = await c.subscribe(world.conversationId, 2n);
  assert.deepEqual(seqs(await take(again, 1)), [3]);
  c.close();
});
