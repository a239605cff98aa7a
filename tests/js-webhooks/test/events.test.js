// Lifecycle webhooks (issue 17, item 2) as a customer's receiver sees them:
// a plain Node `http` server verifying each event with the `standardwebhooks`
// package and the `secret` that `POST /api/v1/event-endpoints` returned once.
// Each change's event arrives once (one webhook-id each, verified), in the
// order of the changes; a channel delivery that fails for good is reported
// as `delivery.failed`. The server under test is the real binary.
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { after, before, test } from "node:test";
import { Webhook } from "standardwebhooks";
import { startServer } from "../lib/server.js";

const DEADLINE_MS = 20_000;

async function waitFor(what, probe, ms = DEADLINE_MS) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Verifies `/events` with `key`; answers 400 on `/fail` (a channel's deliveries that fail for good). */
async function startReceiver() {
  const receiver = { key: null, events: [], failed: 0 };
  const server = createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      const rawBody = Buffer.concat(chunks);
      if (req.url === "/fail") {
        receiver.failed += 1;
        res.writeHead(400, { "content-type": "application/json" });
        res.end('{"error":"no"}');
        return;
      }
      const record = { headers: req.headers, rawBody: rawBody.toString("utf8") };
      try {
        record.payload = new Webhook(receiver.key).verify(rawBody, req.headers);
        record.verified = true;
      } catch (e) {
        record.verified = false;
        record.error = e;
      }
      receiver.events.push(record);
      res.writeHead(record.verified ? 204 : 401);
      res.end();
    });
  });
  await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
  receiver.base = `http://127.0.0.1:${server.address().port}`;
  receiver.close = () => new Promise((ok) => server.close(ok));
  return receiver;
}

let converger;
let receiver;
let apiKey;
let endpoint;

before(async () => {
  converger = await startServer();
  receiver = await startReceiver();
  apiKey = await converger.tenant("js-events");
  endpoint = await converger.expect(201, "POST", "/api/v1/event-endpoints", apiKey, {
    url: `${receiver.base}/events`,
    events: ["conversation.created", "conversation.closed", "member.joined", "member.left", "delivery.failed"],
  });
  receiver.key = endpoint.secret;
});

after(async () => {
  await receiver?.close();
  await converger?.stop();
});

test("the endpoint's secret is a whsec_ key shown once", async () => {
  assert.match(endpoint.secret, /^whsec_[A-Za-z0-9+/]+=*$/);
  const read = await converger.expect(200, "GET", `/api/v1/event-endpoints/${endpoint.id}`, apiKey);
  assert.equal(read.secret, undefined);
  assert.equal(read.url, `${receiver.base}/events`);
  const bad = await converger.call("POST", "/api/v1/event-endpoints", apiKey, { url: receiver.base, events: ["user.away"] });
  assert.equal(bad.status, 422);
  assert.equal(bad.json.error.field, "events[0]");
});

test("each lifecycle change arrives once, verified, stamped in order", async () => {
  const channel = await converger.expect(201, "POST", "/api/v1/channels", apiKey, { name: "ws", type: "websocket" });
  const conv = await converger.expect(201, "POST", "/api/v1/conversations", apiKey, { channel_id: channel.id });
  const members = `/api/v1/conversations/${conv.id}/members`;
  await converger.expect(201, "POST", members, apiKey, { sender: "alice", role: "agent" });
  await converger.expect(204, "DELETE", `${members}/alice`, apiKey);
  await converger.expect(200, "POST", `/api/v1/conversations/${conv.id}/close`, apiKey, {});

  const mine = () => receiver.events.filter((r) => r.payload?.data?.conversation_id === conv.id);
  // Sent concurrently, they may arrive in any order: their timestamps say when each change happened.
  const got = (await waitFor("four events", () => (mine().length >= 4 ? mine() : null)))
    .slice().sort((a, b) => a.payload.timestamp.localeCompare(b.payload.timestamp));
  // Give a duplicate the time to show up, were there one.
  await new Promise((r) => setTimeout(r, 500));
  assert.equal(mine().length, 4, JSON.stringify(mine().map((r) => r.payload)));
  for (const r of got) assert.equal(r.verified, true, `verification failed: ${r.error}`);
  assert.deepEqual(got.map((r) => r.payload.type),
    ["conversation.created", "member.joined", "member.left", "conversation.closed"]);
  assert.equal(new Set(got.map((r) => r.headers["webhook-id"])).size, 4, "one webhook-id per event");
  assert.equal(got[1].payload.data.sender, "alice");
  assert.equal(got[1].payload.data.role, "agent");
  assert.equal(got[0].payload.data.channel_id, channel.id);
  assert.match(got[0].payload.timestamp, /^\d{4}-\d\d-\d\dT/);

  // The events as listed: delivered, and the webhook-id is msg_ + their id.
  const listed = await waitFor("the events to be recorded delivered", async () => {
    const page = await converger.expect(200, "GET", `/api/v1/events?endpoint_id=${endpoint.id}&status=delivered`, apiKey);
    const ours = page.data.filter((e) => e.data.conversation_id === conv.id);
    return ours.length === 4 ? ours : null;
  });
  assert.deepEqual(new Set(listed.map((e) => `msg_${e.id}`)), new Set(got.map((r) => r.headers["webhook-id"])));
});

test("a channel delivery that fails for good is reported as delivery.failed", async () => {
  const channel = await converger.expect(201, "POST", "/api/v1/channels", apiKey, {
    name: "failing", type: "webhook", config: { url: `${receiver.base}/fail` },
  });
  const conv = await converger.expect(201, "POST", "/api/v1/conversations", apiKey, { channel_id: channel.id });
  const activity = await converger.expect(201, "POST", `/api/v1/conversations/${conv.id}/activities`, apiKey,
    { sender: "bob", text: "to nowhere" });
  const got = await waitFor("delivery.failed", () =>
    receiver.events.find((r) => r.payload?.type === "delivery.failed" && r.payload.data.activity_id === activity.id));
  assert.equal(got.verified, true, `verification failed: ${got.error}`);
  assert.equal(got.payload.data.channel_id, channel.id);
  assert.equal(got.payload.data.conversation_id, conv.id);
  assert.match(got.payload.data.error, /HTTP 400/);
});
