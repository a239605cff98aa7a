// The chat methods against the real server (protocol version 2): edit,
// delete, react, unreact and reply as activities naming their message, each
// message's state in history, markRead and the receipt and presence events.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";

import { connect, ConvergerError, LIVE_ONLY } from "../index.js";
import { startServer } from "./support/server.js";

let server;
const clients = [];
before(async () => { server = await startServer(); });
after(async () => {
  for (const c of clients) c.close();
  await server?.stop();
});

async function open(credential) {
  const c = await connect({ tcp: server.tcp }, credential);
  clients.push(c);
  return c;
}

/** The next `n` activities of `sub`. */
async function take(sub, n) {
  const out = [];
  while (out.length < n) {
    const r = await sub.next();
    if (r.done) throw new Error(`the subscription ended after ${out.length} of ${n}`);
    out.push(r.value);
  }
  return out;
}

/** The first event `name` of `client` for which `where` holds. */
function nextEvent(client, name, where = () => true, ms = 10_000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { off(); reject(new Error(`no ${name} event within ${ms} ms`)); }, ms);
    const off = client.on(name, (e) => { if (where(e)) { clearTimeout(timer); off(); resolve(e); } });
  });
}

test("edits, reactions, replies and deletes travel as activities and show in the message's state", async () => {
  const world = await server.world("chat-lifecycle");
  const conv = world.conversationId;
  await server.addMember(world, "alice");
  await server.addMember(world, "bob");
  const alice = await open({ token: await server.token(world, "alice") });
  const bob = await open({ token: await server.token(world, "bob") });
  assert.equal(alice.welcome.version, 3);
  const sub = await bob.subscribe(conv, 0n);
  assert.deepEqual((await take(sub, 2)).map((a) => a.type), ["member_joined", "member_joined"]);

  const hello = await alice.publish({ conversationId: conv, text: "hello" });
  const [delivered] = await take(sub, 1);
  assert.deepEqual(delivered.state, { editedAt: null, deletedAt: null, replyCount: 0, reactions: [] });

  await alice.edit(conv, hello.activityId, { text: "hello, world", metadata: { edited: true } });
  await bob.react(conv, hello.activityId, "👍");
  await alice.react(conv, hello.activityId, "🎉");
  await alice.unreact(conv, hello.activityId, "🎉");
  const reply = await bob.reply(conv, hello.activityId, { text: "hi alice" });

  const seen = await take(sub, 5);
  assert.deepEqual(seen.map((a) => [a.type, a.targetId, a.parentId]), [
    ["edit", hello.activityId, null],
    ["reaction_add", hello.activityId, null],
    ["reaction_add", hello.activityId, null],
    ["reaction_remove", hello.activityId, null],
    ["message", null, hello.activityId],
  ]);
  assert.equal(seen[4].id, reply.activityId);

  const page = await bob.history(conv, { afterSeq: hello.seq - 1n, untilSeq: hello.seq, limit: 1 });
  const [message] = page.activities;
  assert.equal(message.text, "hello, world");
  assert.deepEqual(message.metadata, { edited: true });
  assert.ok(message.state.editedAt > 0n && message.state.deletedAt === null);
  assert.equal(message.state.replyCount, 1);
  assert.deepEqual(message.state.reactions, [{ emoji: "👍", count: 1, me: true }]);

  await assert.rejects(bob.delete(conv, hello.activityId), (e) => e instanceof ConvergerError && e.is("not_author"));
  await alice.delete(conv, hello.activityId);
  const after = (await alice.history(conv, { afterSeq: hello.seq - 1n, untilSeq: hello.seq, limit: 1 })).activities[0];
  assert.ok(after.state.deletedAt > 0n);
  assert.equal(after.text, null);
  await assert.rejects(alice.react(conv, hello.activityId, "👍"), (e) => e instanceof ConvergerError && e.is("target_deleted"));

  // An API-key client names the sender.
  const service = await open({ apiKey: world.apiKey });
  const note = await service.publish({ conversationId: conv, sender: "bot", text: "note" });
  await service.edit(conv, note.activityId, { text: "note, edited", sender: "bot" });
  await service.react(conv, note.activityId, "👀", { sender: "bot" });
});

test("markRead moves a member's receipts and the conversation's subscribers hear of it, and of users online", async () => {
  const world = await server.world("chat-receipts");
  const conv = world.conversationId;
  for (const m of ["alice", "bob", "carol"]) await server.addMember(world, m);
  const alice = await open({ token: await server.token(world, "alice") });
  const bob = await open({ token: await server.token(world, "bob") });
  const sub = await bob.subscribe(conv, LIVE_ONLY);
  const m = await alice.publish({ conversationId: conv, text: "read me" });
  assert.equal((await take(sub, 1))[0].seq, m.seq);

  const receipt = nextEvent(bob, "receipt", (e) => e.sender === "alice");
  await alice.markRead(conv, m.seq);
  assert.deepEqual(await receipt, { conversationId: conv, sender: "alice", readSeq: m.seq, deliveredSeq: m.seq });
  await alice.markRead(conv, 1n); // never backwards: accepted, nothing moves
  const member = await server.member(world, "alice");
  assert.equal(member.read_seq, Number(m.seq));
  await assert.rejects(alice.receipt(conv, { readSeq: 1n, sender: "bob" }), (e) => e instanceof ConvergerError && e.is("forbidden"));

  const online = nextEvent(bob, "presence", (e) => e.sender === "carol");
  await open({ token: await server.token(world, "carol") });
  assert.deepEqual(await online, { conversationId: conv, sender: "carol", online: true, lastSeen: null });
});
