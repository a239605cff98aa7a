// Starts the real converger binary on loopback port 0 (embedded storage in a
// temp dir) and offers the REST calls the tests need, as tests/js-phoenix does.
// The binary is the one `scripts/test` built: CONVERGER_BIN, else
// <CARGO_TARGET_DIR or target>/debug/converger.
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";

const ADMIN_TOKEN = "js-sdk-admin-token";
const ROOT = resolve(import.meta.dirname, "..", "..", "..", "..");

function binary() {
  if (process.env.CONVERGER_BIN) return process.env.CONVERGER_BIN;
  const target = process.env.CARGO_TARGET_DIR || join(ROOT, "target");
  return join(target, "debug", "converger");
}

export async function startServer() {
  const bin = binary();
  if (!existsSync(bin)) {
    throw new Error(`no server binary at ${bin}: build it first (cargo build -p converger-server --bin converger) or set CONVERGER_BIN`);
  }
  const dataDir = mkdtempSync(join(tmpdir(), "converger-jssdk-"));
  const child = spawn(bin, [
    "--http-addr", "127.0.0.1:0", "--binary-addr", "127.0.0.1:0", "--data-dir", dataDir,
    "--admin-token", ADMIN_TOKEN, "--jwt-secret", "js-sdk-jwt-secret", "--shards", "2", "--log", "warn",
  ], { stdio: ["ignore", "pipe", "inherit"] });
  const line = await new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(new Error("no ready line within 30 s")), 30_000);
    child.once("exit", (code) => fail(new Error(`converger exited with ${code} before its ready line`)));
    createInterface({ input: child.stdout }).once("line", (l) => { clearTimeout(timer); ok(l); });
  });
  const http = /http=(\S+)/.exec(line)?.[1];
  const bin_ = /binary=(\S+)/.exec(line)?.[1];
  if (!http || !bin_) throw new Error(`unexpected ready line: ${line}`);
  const base = `http://${http}`;
  const colon = bin_.lastIndexOf(":");

  async function call(method, path, bearer, body) {
    const res = await fetch(base + path, {
      method,
      headers: { authorization: `Bearer ${bearer}`, ...(body ? { "content-type": "application/json" } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    const text = await res.text();
    return { status: res.status, json: text ? JSON.parse(text) : null };
  }

  async function ok(method, path, bearer, body) {
    const r = await call(method, path, bearer, body);
    if (r.status >= 300) throw new Error(`${method} ${path} answered ${r.status}: ${JSON.stringify(r.json)}`);
    return r.json;
  }

  return {
    /** The binary listener, as a connect() target. */
    tcp: { host: bin_.slice(0, colon), port: Number(bin_.slice(colon + 1)) },
    /** `/socket/binary`, as a connect() target's url. */
    wsUrl: `ws://${http}/socket/binary`,
    call,
    /** A tenant with a channel and a conversation: { apiKey, channelId, conversationId }. */
    async world(name) {
      const t = await ok("POST", "/admin/api/tenants", ADMIN_TOKEN, { name });
      const apiKey = t.api_key;
      const ch = await ok("POST", "/api/v1/channels", apiKey, { name: `${name}-ch`, type: "websocket" });
      const conv = await ok("POST", "/api/v1/conversations", apiKey, { channel_id: ch.id });
      return { apiKey, channelId: ch.id, conversationId: conv.id };
    },
    /** Another conversation of the world's channel. */
    async conversation(world) {
      return (await ok("POST", "/api/v1/conversations", world.apiKey, { channel_id: world.channelId })).id;
    },
    async closeConversation(world, conversationId) {
      await ok("POST", `/api/v1/conversations/${conversationId}/close`, world.apiKey);
    },
    async token(world, sender, conversationId = world.conversationId) {
      return (await ok("POST", "/api/v1/tokens", world.apiKey, { conversation_id: conversationId, sender })).token;
    },
    async refresh(token) {
      return (await ok("POST", "/api/v1/tokens/refresh", token)).token;
    },
    async post(world, text, sender = "rest", conversationId = world.conversationId) {
      return ok("POST", `/api/v1/conversations/${conversationId}/activities`, world.apiKey, { sender, text });
    },
    async stop() {
      child.kill("SIGTERM");
      await new Promise((done) => child.once("exit", done));
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
