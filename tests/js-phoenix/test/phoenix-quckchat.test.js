// The official `phoenix` client (pinned) speaking QuckChat's event names:
// it joins `chat:{id}` (the opt-in: that topic pushes QuckChat's names),
// sends `message:send`, `message:edit`, `message:reaction:add` and
// `message:read`, and another client receives `message:new`,
// `message:edited`, `message:reaction:added` and `message:read`.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { Socket } from "phoenix";
import { WebSocket } from "ws";

import { startServer } from "../lib/server.js";

let server;
before(async () => { server = await startServer(); });
after(async () => { await server?.stop(); });

function open(token) {
  const socket = new Socket(server.socketUrl, { transport: WebSocket, params: { token } });
  socket.connect();
  return socket;
}

function joined(channel) {
  return new Promise((ok, fail) => channel.join().receive("ok", ok).receive("error", fail).receive("timeout", () => fail(new Error("join timeout"))));
}

function pushed(channel, event, payload) {
  return new Promise((ok, fail) => channel.push(event, payload).receive("ok", ok).receive("error", (e) => fail(new Error(`${event}: ${JSON.stringify(e)}`))).receive("timeout", () => fail(new Error(`${event} timeout`))));
}

/** The next `event` on `channel` whose payload satisfies `where`; listen before the push that causes it. */
function nextEvent(channel, event, where = () => true) {
  return new Promise((ok) => {
    const ref = channel.on(event, (payload) => { if (where(payload)) { channel.off(event, ref); ok(payload); } });
  });
}

async function member(world, sender) {
  const r = await server.call("POST", `/api/v1/conversations/${world.conversationId}/members`, world.apiKey, { sender });
  assert.equal(r.status, 201);
}

test("QuckChat names on a chat: topic: send, edit, react and read, received as message:new, message:edited, message:reaction:added and message:read", async () => {
  const world = await server.world("js-quckchat");
  await member(world, "alice");
  await member(world, "bob");
  const [ta, tb] = [await server.token(world, "alice"), await server.token(world, "bob")];
  const a = open(ta), b = open(tb);
  const topic = `chat:${world.conversationId}`;
  // From seq 2 on: the two member_joined activities are not this test's.
  const ca = a.channel(topic, { last_seq: 2 }), cb = b.channel(topic, { last_seq: 2 });
  await joined(ca);
  await joined(cb);

  let seen = nextEvent(cb, "message:new");
  const sent = await pushed(ca, "message:send", { text: "hello from alice" });
  assert.equal(sent.type, "message");
  assert.equal(sent.sender, "alice");
  const created = await seen;
  assert.equal(created.id, sent.id);
  assert.equal(created.text, "hello from alice");

  seen = nextEvent(cb, "message:edited");
  const edit = await pushed(ca, "message:edit", { message_id: sent.id, text: "hello, edited" });
  assert.equal(edit.type, "edit");
  const edited = await seen;
  assert.equal(edited.message_id, sent.id);
  assert.equal(edited.text, "hello, edited");

  seen = nextEvent(ca, "message:reaction:added");
  const reaction = await pushed(cb, "message:reaction:add", { message_id: sent.id, emoji: "👍" });
  assert.equal(reaction.type, "reaction_add");
  const added = await seen;
  assert.deepEqual([added.message_id, added.emoji, added.sender], [sent.id, "👍", "bob"]);

  seen = nextEvent(ca, "message:read", (r) => r.sender === "bob");
  const read = await pushed(cb, "message:read", { seq: reaction.seq });
  assert.equal(read.read_seq, reaction.seq);
  assert.equal((await seen).read_seq, reaction.seq);

  // Converger's names are not pushed on a chat: topic.
  let converger = 0;
  ca.on("activity", () => { converger += 1; });
  ca.on("receipt", () => { converger += 1; });
  seen = nextEvent(ca, "message:new", (m) => m.text === "last");
  await pushed(cb, "message:send", { text: "last" });
  await seen;
  assert.equal(converger, 0);

  const refused = await new Promise((ok) => cb.push("message:edit", { message_id: sent.id, text: "not mine" }).receive("error", ok));
  assert.equal(refused.code, "not_author");
  a.disconnect(); b.disconnect();
});
