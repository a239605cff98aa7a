// A webhook receiver as a customer would write it: a plain Node `http`
// server that verifies each request with the `standardwebhooks` package and
// the `webhook_signing_key` the channel API returned, answering 200 only when
// the signature verifies (401 otherwise). The server under test is the real
// binary; everything stays on loopback.
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { after, before, test } from "node:test";
import { Webhook, WebhookVerificationError } from "standardwebhooks";
import { startServer } from "../lib/server.js";

const DEADLINE_MS = 20_000;

/** Polls `probe` until it returns something truthy, or fails after `ms`. */
async function waitFor(what, probe, ms = DEADLINE_MS) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * The receiver. `key` is the whsec_ it verifies with (set by the test, as an
 * operator would configure it); every request is recorded with its raw body,
 * its headers, and the outcome of verification.
 */
async function startReceiver() {
  const receiver = { key: null, got: [] };
  const server = createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      const rawBody = Buffer.concat(chunks);
      const record = { method: req.method, path: req.url, headers: req.headers, rawBody: rawBody.toString("utf8") };
      try {
        record.payload = new Webhook(receiver.key).verify(rawBody, req.headers);
        record.verified = true;
      } catch (e) {
        record.verified = false;
        record.error = e;
      }
      receiver.got.push(record);
      res.writeHead(record.verified ? 200 : 401, { "content-type": "application/json" });
      // A pre-publish hook call (docs/api.md "Pre-publish hook") wants a verdict per item.
      const items = record.payload?.type === "activity.pre_publish" ? record.payload.data.items : null;
      res.end(items ? JSON.stringify({ results: items.map(() => ({ action: "accept" })) }) : "{}");
    });
  });
  await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
  receiver.url = `http://127.0.0.1:${server.address().port}/hook`;
  receiver.close = () => new Promise((ok) => server.close(ok));
  return receiver;
}

let converger;
let receiver;
let apiKey;
let channel;
let activitiesPath;

before(async () => {
  converger = await startServer();
  receiver = await startReceiver();
  apiKey = await converger.tenant("js-webhooks");
  channel = await converger.expect(201, "POST", "/api/v1/channels", apiKey, {
    name: "hook", type: "webhook", config: { url: receiver.url },
  });
  receiver.key = channel.webhook_signing_key;
  const conv = await converger.expect(201, "POST", "/api/v1/conversations", apiKey, { channel_id: channel.id });
  activitiesPath = `/api/v1/conversations/${conv.id}/activities`;
});

after(async () => {
  await receiver?.close();
  await converger?.stop();
});

/** Posts a message and waits for its delivery to settle and for the receiver to have it. */
async function postAndReceive(text) {
  const activity = await converger.expect(201, "POST", activitiesPath, apiKey, { sender: "alice", text });
  const delivery = await waitFor(`the delivery of ${activity.id} to settle`, async () => {
    const page = await converger.expect(200, "GET", `/api/v1/deliveries?activity_id=${activity.id}`, apiKey);
    assert.equal(page.data.length, 1, "one delivery per activity on a webhook channel");
    return page.data[0].status === "pending" ? null : page.data[0];
  });
  const got = await waitFor(`the receiver to get ${activity.id}`, () =>
    receiver.got.find((r) => JSON.parse(r.rawBody).data?.activity?.id === activity.id));
  return { activity, delivery, got };
}

test("the channel API hands out a whsec_ signing key with the secret, for every type", async () => {
  assert.match(channel.webhook_signing_key, /^whsec_[A-Za-z0-9+/]+=*$/);
  const read = await converger.expect(200, "GET", `/api/v1/channels/${channel.id}`, apiKey);
  assert.equal(read.webhook_signing_key, undefined, "only where the secret is shown");
  // Any channel signs its pre-publish hook's calls with its key.
  const echo = await converger.expect(201, "POST", "/api/v1/channels", apiKey, { name: "e", type: "echo" });
  assert.match(echo.webhook_signing_key, /^whsec_/);
  assert.notEqual(echo.webhook_signing_key, channel.webhook_signing_key);
});

test("a delivery verifies with standardwebhooks and the key from the API", async () => {
  const { activity, delivery, got } = await postAndReceive("hello, receiver");
  assert.equal(got.verified, true, `verification failed: ${got.error}`);
  assert.equal(delivery.status, "delivered", JSON.stringify(delivery));
  assert.equal(got.method, "POST");
  assert.equal(got.path, "/hook");
  // What verify returned is the parsed body: the activity as the REST API shows it.
  assert.equal(got.payload.type, "activity.created");
  assert.equal(got.payload.data.activity.id, activity.id);
  assert.equal(got.payload.data.activity.text, "hello, receiver");
  assert.equal(got.payload.data.channel_id, channel.id);
  assert.equal(got.headers["webhook-id"], `msg_${delivery.id}`);
  assert.equal(got.headers["content-type"], "application/json");

  // The same request with its body changed does not verify.
  const tampered = got.rawBody.replace("hello, receiver", "hello, attacker");
  assert.notEqual(tampered, got.rawBody);
  assert.throws(() => new Webhook(receiver.key).verify(tampered, got.headers), WebhookVerificationError);
  assert.throws(() => new Webhook(receiver.key).verify(Buffer.from(tampered), got.headers), WebhookVerificationError);
  // Nor does it with another id (the signature covers it), nor under another key.
  assert.throws(() => new Webhook(receiver.key).verify(got.rawBody, { ...got.headers, "webhook-id": "msg_other" }),
    WebhookVerificationError);
  assert.throws(() => new Webhook(`whsec_${Buffer.alloc(32, 7).toString("base64")}`).verify(got.rawBody, got.headers),
    WebhookVerificationError);
  // The untouched request still does.
  assert.deepEqual(new Webhook(receiver.key).verify(got.rawBody, got.headers), got.payload);
});

test("after rotate-secret the new key verifies new deliveries and the old one does not", async () => {
  const oldKey = channel.webhook_signing_key;
  const rotated = await converger.expect(200, "POST", `/api/v1/channels/${channel.id}/rotate-secret`, apiKey, {});
  const newKey = rotated.webhook_signing_key;
  assert.match(newKey, /^whsec_/);
  assert.notEqual(newKey, oldKey);
  receiver.key = newKey;

  const { activity, delivery, got } = await postAndReceive("after the rotation");
  assert.equal(got.verified, true, `verification with the new key failed: ${got.error}`);
  assert.equal(delivery.status, "delivered", JSON.stringify(delivery));
  assert.equal(got.payload.data.activity.id, activity.id);
  assert.equal(got.headers["webhook-id"], `msg_${delivery.id}`);
  assert.throws(() => new Webhook(oldKey).verify(got.rawBody, got.headers), WebhookVerificationError);

  // A receiver still holding the old key refuses (401), and the delivery fails.
  receiver.key = oldKey;
  const stale = await postAndReceive("to a stale receiver");
  assert.equal(stale.got.verified, false);
  assert.ok(stale.got.error instanceof WebhookVerificationError, String(stale.got.error));
  assert.equal(stale.delivery.status, "failed", JSON.stringify(stale.delivery));
  assert.doesNotThrow(() => new Webhook(newKey).verify(stale.got.rawBody, stale.got.headers));
});

test("a pre-publish hook call verifies with standardwebhooks and the channel's key; one that does not is refused", async () => {
  const hooked = await converger.expect(201, "POST", "/api/v1/channels", apiKey, {
    name: "hooked", type: "websocket", config: { pre_publish: { url: receiver.url, timeout_ms: 5000 } },
  });
  const conv = await converger.expect(201, "POST", "/api/v1/conversations", apiKey, { channel_id: hooked.id });
  const path = `/api/v1/conversations/${conv.id}/activities`;
  receiver.key = hooked.webhook_signing_key;
  const before = receiver.got.length;
  const written = await converger.expect(201, "POST", path, apiKey, { sender: "u", text: "checked" });
  const call = receiver.got[before];
  assert.equal(call.verified, true, `verification failed: ${call.error}`);
  assert.equal(call.payload.type, "activity.pre_publish");
  assert.equal(call.payload.data.channel_id, hooked.id);
  assert.equal(call.payload.data.items[0].id, written.id, "the item is the activity as it is stored");

  // A receiver holding another channel's key refuses the call (401): the publish is rejected (fail closed).
  receiver.key = channel.webhook_signing_key;
  const refused = await converger.call("POST", path, apiKey, { sender: "u", text: "unchecked" });
  assert.equal(refused.status, 422);
  assert.equal(refused.json.error.code, "rejected_by_hook");
});
