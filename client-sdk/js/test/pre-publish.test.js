// The pre-publish hook as the SDK surfaces it, against the real server (one
// converger process for the file, started with --delivery-allow-private so
// its hook may be this process, on loopback): a publish the channel's hook
// rejects fails with ConvergerError 4012 `rejected_by_hook` carrying the
// hook's reason, not retryable, and the connection goes on; a batch item the
// hook rejects fails alone; a rewrite is stored rewritten.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";

import { connect, ConvergerError, ErrorCode, errorName } from "../index.js";
import { startServer } from "./support/server.js";

let server;
let hook;
const clients = [];

/** Rejects `bad` ("no bad words"), rewrites `rude` to `[polite]`, accepts the rest. */
function verdict(item) {
  if (item.text === "bad") return { action: "reject", reason: "no bad words" };
  if (item.text === "rude") return { action: "rewrite", text: "[polite]" };
  return { action: "accept" };
}

before(async () => {
  server = await startServer({ args: ["--delivery-allow-private"] });
  hook = createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      const items = JSON.parse(Buffer.concat(chunks).toString("utf8")).data.items;
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify({ results: items.map(verdict) }));
    });
  });
  await new Promise((ok) => hook.listen(0, "127.0.0.1", ok));
});
after(async () => {
  for (const c of clients) c.close();
  await server?.stop();
  hook?.closeAllConnections();
  await new Promise((ok) => (hook ? hook.close(ok) : ok()));
});

async function hookedWorld(name) {
  const url = `http://127.0.0.1:${hook.address().port}/hook`;
  return server.world(name, { pre_publish: { url, timeout_ms: 2000 } });
}

test("the catalogue names 4012 rejected_by_hook", () => {
  assert.equal(ErrorCode.rejected_by_hook, 4012);
  assert.equal(errorName(4012), "rejected_by_hook");
});

test("a publish the hook rejects fails with 4012 and the hook's reason; it takes no seq and the connection goes on", async () => {
  const world = await hookedWorld("hook-js");
  const c = await connect({ tcp: server.tcp }, { apiKey: world.apiKey });
  clients.push(c);
  const conv = world.conversationId;
  assert.equal((await c.publish({ conversationId: conv, sender: "svc", text: "hello" })).seq, 1n);
  await assert.rejects(c.publish({ conversationId: conv, sender: "svc", text: "bad" }), (e) => {
    assert.ok(e instanceof ConvergerError, `${e}`);
    assert.equal(e.code, 4012);
    assert.equal(e.codeName, "rejected_by_hook");
    assert.ok(e.is("rejected_by_hook"));
    assert.equal(e.serverMessage, "no bad words");
    assert.equal(e.message, "rejected_by_hook: no bad words");
    assert.equal(e.retryable, false, "the same activity would be rejected again");
    assert.equal(e.close, false);
    return true;
  });
  assert.equal((await c.publish({ conversationId: conv, sender: "svc", text: "rude" })).seq, 2n, "the rejection took no seq");

  const results = await c.publishBatch([
    { conversationId: conv, sender: "svc", text: "one" },
    { conversationId: conv, sender: "svc", text: "bad" },
    { conversationId: conv, sender: "svc", text: "two" },
  ]);
  assert.deepEqual(results.map((r) => r.ok), [true, false, true]);
  assert.deepEqual([results[0].seq, results[2].seq], [3n, 4n]);
  assert.ok(results[1].error instanceof ConvergerError && results[1].error.is("rejected_by_hook"));
  assert.equal(results[1].error.serverMessage, "no bad words");

  const page = await c.history(conv);
  assert.deepEqual(page.activities.map((a) => a.text), ["hello", "[polite]", "one", "two"]);
  c.close();
});
