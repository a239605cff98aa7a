// The official `phoenix` JavaScript client (pinned) used exactly as a browser
// app would, with `ws` as its transport in Node: connect, join, push, receive
// broadcasts from another socket and from REST, presence, reconnect with
// last_seq, token refresh and rejoin.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { Presence, Socket } from "phoenix";
import { WebSocket } from "ws";

import { startServer } from "../lib/server.js";

let server;
before(async () => { server = await startServer(); });
after(async () => { await server?.stop(); });

function open(token) {
  const socket = new Socket(server.socketUrl, { transport: WebSocket, params: () => ({ token: token() }) });
  socket.connect();
  return socket;
}

function joined(channel) {
  return new Promise((ok, fail) => channel.join().receive("ok", ok).receive("error", fail).receive("timeout", () => fail(new Error("join timeout"))));
}

function pushed(channel, event, payload) {
  return new Promise((ok, fail) => channel.push(event, payload).receive("ok", ok).receive("error", fail).receive("timeout", () => fail(new Error(`${event} timeout`))));
}

function nextEvent(channel, event, where = () => true) {
  return new Promise((ok) => {
    const ref = channel.on(event, (payload) => { if (where(payload)) { channel.off(event, ref); ok(payload); } });
  });
}

test("join, push activity:create, and receive broadcasts from another socket and from REST", async () => {
  const world = await server.world("js-basic");
  const [ta, tb] = [await server.token(world, "alice"), await server.token(world, "bob")];
  const a = open(() => ta), b = open(() => tb);
  const topic = `conversation:${world.conversationId}`;
  const ca = a.channel(topic, {}), cb = b.channel(topic, {});
  await joined(ca);
  await joined(cb);

  const seen = nextEvent(cb, "activity", (x) => x.text === "hello from alice");
  const stored = await pushed(ca, "activity:create", { text: "hello from alice" });
  assert.equal(stored.seq, 1);
  assert.equal(stored.sender, "alice");
  assert.equal((await seen).id, stored.id);

  const fromRest = nextEvent(ca, "activity", (x) => x.text === "from REST");
  const rest = await server.post(world, "from REST");
  assert.equal((await fromRest).seq, rest.seq);
  a.disconnect(); b.disconnect();
});

test("presence state and diff track who is in the conversation", async () => {
  const world = await server.world("js-presence");
  const [ta, tb] = [await server.token(world, "alice"), await server.token(world, "bob")];
  const topic = `conversation:${world.conversationId}`;
  const a = open(() => ta);
  const ca = a.channel(topic, {});
  const presence = new Presence(ca);
  const both = new Promise((ok) => presence.onSync(() => {
    const ids = presence.list((id) => id).sort();
    if (ids.join() === "alice,bob") ok(ids);
  }));
  await joined(ca);
  const b = open(() => tb);
  const cb = b.channel(topic, {});
  await joined(cb);
  assert.deepEqual(await both, ["alice", "bob"]);

  const bobLeft = new Promise((ok) => presence.onSync(() => {
    if (presence.list((id) => id).join() === "alice") ok();
  }));
  b.disconnect();
  await bobLeft;

  const typing = nextEvent(ca, "typing");
  const b2 = open(() => tb);
  const cb2 = b2.channel(topic, {});
  await joined(cb2);
  cb2.push("typing", { typing: true });
  assert.deepEqual(await typing, { sender: "bob", typing: true });
  a.disconnect(); b2.disconnect();
});

test("a client that reconnects with last_seq gets what it missed, in order, then the live stream", async () => {
  const world = await server.world("js-resume");
  const token = await server.token(world, "carol");
  let lastSeq = 0;
  const got = [];
  const socket = open(() => token);
  const channel = socket.channel(`conversation:${world.conversationId}`, () => ({ last_seq: lastSeq }));
  channel.on("activity", (a) => { if (a.seq > lastSeq) { got.push(a.seq); lastSeq = a.seq; } });
  await joined(channel);
  for (const t of ["one", "two"]) await server.post(world, t);
  while (lastSeq < 2) await new Promise((r) => setTimeout(r, 20));

  socket.disconnect();
  for (const t of ["three", "four", "five"]) await server.post(world, t);
  const rejoined = new Promise((ok) => channel.on("activity", (a) => { if (a.seq === 6) ok(); }));
  socket.connect(); // the channel rejoins by itself, with the current last_seq
  while (lastSeq < 5) await new Promise((r) => setTimeout(r, 20));
  await server.post(world, "six");
  await rejoined;
  assert.deepEqual(got, [1, 2, 3, 4, 5, 6]);
  socket.disconnect();
});

test("a refreshed token reconnects and rejoins", async () => {
  const world = await server.world("js-refresh");
  let token = await server.token(world, "dave");
  const socket = open(() => token);
  // Rejoining from seq 0 replays everything: the write below is seen whether it
  // lands before or after the rejoin completes.
  const channel = socket.channel(`conversation:${world.conversationId}`, () => ({ last_seq: 0 }));
  await joined(channel);
  const refreshed = await server.call("POST", "/api/v1/tokens/refresh", token);
  assert.equal(refreshed.status, 200);
  assert.notEqual(refreshed.json.token, token);
  token = refreshed.json.token;
  socket.disconnect();
  const seen = nextEvent(channel, "activity", (a) => a.text === "after refresh");
  socket.connect(); // params() now hands the refreshed token to the new connection
  await server.post(world, "after refresh");
  assert.equal((await seen).text, "after refresh");
  socket.disconnect();
});
