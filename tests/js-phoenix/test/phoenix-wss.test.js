// The official `phoenix` JavaScript client over wss:// against the server
// started with --tls-cert/--tls-key (a throwaway CA for the run), with `ws`
// trusting that CA as its transport, as a Node app with a private CA would:
// join, push, receive a broadcast from REST over https.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { Socket } from "phoenix";
import { WebSocket } from "ws";

import { startServer } from "../lib/server.js";

let server;
before(async () => { server = await startServer({ tls: true }); });
after(async () => { await server?.stop(); });

/** `ws` with the run's CA: the Phoenix client constructs it as `new transport(url)`. */
function trustingWebSocket(ca) {
  return class extends WebSocket {
    constructor(url, protocols) {
      super(url, protocols, { ca });
    }
  };
}

test("join and push over wss://, and receive a REST write made over https", async () => {
  const world = await server.world("js-wss");
  const token = await server.token(world, "alice");
  const socket = new Socket(server.socketUrl, { transport: trustingWebSocket(server.caPem), params: () => ({ token }) });
  socket.connect();
  const channel = socket.channel(`conversation:${world.conversationId}`, {});
  await new Promise((ok, fail) => channel.join().receive("ok", ok).receive("error", fail).receive("timeout", () => fail(new Error("join timeout"))));

  const stored = await new Promise((ok, fail) =>
    channel.push("activity:create", { text: "hello over wss" }).receive("ok", ok).receive("error", fail).receive("timeout", () => fail(new Error("push timeout"))));
  assert.equal(stored.seq, 1);
  assert.equal(stored.sender, "alice");

  const fromRest = new Promise((ok) => channel.on("activity", (x) => { if (x.text === "from https") ok(x); }));
  const rest = await server.post(world, "from https");
  assert.equal((await fromRest).seq, rest.seq);
  socket.disconnect();
});

test("a plain ws:// connection to the TLS port does not open", async () => {
  const plainUrl = server.socketUrl.replace("wss://", "ws://");
  const result = await new Promise((ok) => {
    const ws = new WebSocket(`${plainUrl}/websocket?vsn=2.0.0`);
    ws.on("open", () => { ws.close(); ok("open"); });
    ws.on("unexpected-response", (_req, res) => ok(res.statusCode));
    ws.on("error", () => ok("error"));
  });
  assert.equal(result, 400, "the plain upgrade request is answered 400 tls_required");
});
