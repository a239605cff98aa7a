// Starts the real converger binary on loopback port 0 (embedded storage in a
// temp dir) and offers the REST calls the tests need, as tests/js-phoenix
// does. The binary is the one `cargo test` built: CONVERGER_BIN, else
// <target dir>/debug/converger.
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
    // The receiver listens on loopback, which deliveries may reach only when allowed.
    "--delivery-allow-private",
  ], { stdio: ["ignore", "pipe", "inherit"] });
  const line = await new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(new Error("no ready line within 30 s")), 30_000);
    child.once("error", (e) => fail(new Error(`cannot start ${binary()}: ${e.message} (build it, or set CONVERGER_BIN)`)));
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

  /** `call`, but throws unless the answer has the expected status; returns the JSON. */
  async function expect(status, method, path, bearer, body) {
    const r = await call(method, path, bearer, body);
    if (r.status !== status) {
      throw new Error(`${method} ${path} answered ${r.status}, expected ${status}: ${JSON.stringify(r.json)}`);
    }
    return r.json;
  }

  return {
    call,
    expect,
    /** A new tenant's API key, through the admin API. */
    async tenant(name) {
      return (await expect(201, "POST", "/admin/api/tenants", ADMIN_TOKEN, { name })).api_key;
    },
    async stop() {
      child.kill("SIGTERM");
      await new Promise((ok) => child.once("exit", ok));
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
