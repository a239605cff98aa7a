// The client over TLS against the real server started with --tls-cert and
// --tls-key (a throwaway CA made for the run): TCP through node:tls with the
// CA in the `tls` option, /socket/binary over wss:// (the `ws` package with
// the CA), and the `tls_required` refusal a plain TCP client gets.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { WebSocket } from "ws";

import { connect, ConvergerError } from "../index.js";
import { startServer } from "./support/server.js";

let server;
const clients = [];
before(async () => { server = await startServer({ tls: true }); });
after(async () => {
  for (const c of clients) c.close();
  await server?.stop();
});

async function open(target, credential, options = {}) {
  const c = await connect(target, credential, options);
  clients.push(c);
  return c;
}

/** The `ws` package trusting the run's CA: what a Node app with a private CA passes as `WebSocket`. */
function trustingWebSocket(ca) {
  return class extends WebSocket {
    constructor(url, protocols) {
      super(url, protocols, { ca });
    }
  };
}

async function roundTrip(client, world) {
  const sub = await client.subscribe(world.conversationId, 0n);
  const ack = await client.publish({ conversationId: world.conversationId, sender: "svc", text: "over tls" });
  for (;;) {
    const r = await sub.next();
    assert.ok(!r.done, "the subscription is open");
    if (r.value.seq === ack.seq) {
      assert.equal(r.value.text, "over tls");
      return;
    }
  }
}

test("publishes and subscribes over TLS on the binary port (node:tls with the CA)", async () => {
  const world = await server.world("tls-tcp");
  const c = await open({ tcp: { ...server.tcp, tls: { ca: server.caPem } } }, { apiKey: world.apiKey });
  await roundTrip(c, world);
  const token = await server.token(world, "user-1");
  const user = await open({ tcp: { ...server.tcp, tls: { ca: server.caPem } } }, { token });
  assert.equal(user.welcome.sender, "user-1");
});

test("publishes and subscribes over wss:// on /socket/binary", async () => {
  const world = await server.world("tls-wss");
  const c = await open({ url: server.wsUrl }, { apiKey: world.apiKey }, { WebSocket: trustingWebSocket(server.caPem) });
  await roundTrip(c, world);
});

test("plain TCP to the TLS port is refused with tls_required", async () => {
  const world = await server.world("tls-plain");
  await assert.rejects(
    open({ tcp: server.tcp }, { apiKey: world.apiKey }, { reconnect: false }),
    (e) => e instanceof ConvergerError && e.is("tls_required"),
  );
});

test("a server certificate from another CA fails the handshake", async () => {
  const world = await server.world("tls-stranger");
  await assert.rejects(open({ tcp: { ...server.tcp, tls: true } }, { apiKey: world.apiKey }), (e) => !(e instanceof ConvergerError));
});
