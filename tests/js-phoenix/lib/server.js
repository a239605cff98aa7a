// Starts the real converger binary on loopback port 0 (embedded storage in a
// temp dir) and offers the REST calls the tests need. The binary is the one
// `cargo test` built: CONVERGER_BIN, else <target dir>/debug/converger.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";

const ADMIN_TOKEN = "js-admin-token";
const ROOT = resolve(import.meta.dirname, "..", "..", "..");

function binary() {
  if (process.env.CONVERGER_BIN) return process.env.CONVERGER_BIN;
  const target = process.env.CARGO_TARGET_DIR || join(ROOT, "target");
  return join(target, "debug", "converger");
}

export async function startServer() {
  const dataDir = mkdtempSync(join(tmpdir(), "converger-js-"));
  const child = spawn(binary(), [
    "--http-addr", "127.0.0.1:0", "--binary-addr", "127.0.0.1:0", "--data-dir", dataDir,
    "--admin-token", ADMIN_TOKEN, "--jwt-secret", "js-jwt-secret", "--shards", "2", "--log", "warn",
  ], { stdio: ["ignore", "pipe", "inherit"] });
  const line = await new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(new Error("no ready line within 30 s")), 30_000);
    child.once("exit", (code) => fail(new Error(`converger exited with ${code} before its ready line`)));
    createInterface({ input: child.stdout }).once("line", (l) => { clearTimeout(timer); ok(l); });
  });
  const http = /http=(\S+)/.exec(line)?.[1];
  if (!http) throw new Error(`unexpected ready line: ${line}`);
  const base = `http://${http}`;

  async function call(method, path, bearer, body) {
    const res = await fetch(base + path, {
      method,
      headers: { authorization: `Bearer ${bearer}`, ...(body ? { "content-type": "application/json" } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    const text = await res.text();
    return { status: res.status, json: text ? JSON.parse(text) : null };
  }

  return {
    socketUrl: `ws://${http}/socket`,
    call,
    /** A tenant with a channel and a conversation: { apiKey, conversationId }. */
    async world(name) {
      const t = await call("POST", "/admin/api/tenants", ADMIN_TOKEN, { name });
      const apiKey = t.json.api_key;
      const ch = await call("POST", "/api/v1/channels", apiKey, { name: `${name}-ws`, type: "websocket" });
      const conv = await call("POST", "/api/v1/conversations", apiKey, { channel_id: ch.json.id });
      return { apiKey, conversationId: conv.json.id };
    },
    async token(world, sender) {
      const r = await call("POST", "/api/v1/tokens", world.apiKey, { conversation_id: world.conversationId, sender });
      return r.json.token;
    },
    async post(world, text, sender = "rest") {
      const r = await call("POST", `/api/v1/conversations/${world.conversationId}/activities`, world.apiKey, { sender, text });
      if (r.status !== 201) throw new Error(`REST write answered ${r.status}`);
      return r.json;
    },
    async stop() {
      child.kill("SIGTERM");
      await new Promise((ok) => child.once("exit", ok));
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
