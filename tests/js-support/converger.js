// Starts the real converger binary for the Node suites (tests/js-phoenix,
// tests/js-webhooks, client-sdk/js): loopback port 0, embedded storage in a
// temp dir, an admin token, two shards. The binary is the one `scripts/test`
// built: CONVERGER_BIN, else <CARGO_TARGET_DIR or target>/debug/converger.
// Node built-ins only, so every suite imports it by its path.
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";

export const ADMIN_TOKEN = "js-admin-token";
const ROOT = resolve(import.meta.dirname, "..", "..");

function binary() {
  if (process.env.CONVERGER_BIN) return process.env.CONVERGER_BIN;
  const target = process.env.CARGO_TARGET_DIR || join(ROOT, "target");
  return join(target, "debug", "converger");
}

/**
 * The running server: its `http` and `binary` addresses, `call` (REST with a
 * bearer), `ok` (`call` that throws on an answer ≥ 300, or other than
 * `status` when given) and `stop`. `extraArgs` go to the binary.
 */
export async function launch(extraArgs = []) {
  const bin = binary();
  if (!existsSync(bin)) {
    throw new Error(`no server binary at ${bin}: build it first (cargo build -p converger-server --bin converger) or set CONVERGER_BIN`);
  }
  const dataDir = mkdtempSync(join(tmpdir(), "converger-js-"));
  const child = spawn(bin, [
    "--http-addr", "127.0.0.1:0", "--binary-addr", "127.0.0.1:0", "--data-dir", dataDir,
    "--admin-token", ADMIN_TOKEN, "--jwt-secret", "js-jwt-secret", "--shards", "2", "--log", "warn",
    ...extraArgs,
  ], {
    stdio: ["ignore", "pipe", "inherit"],
    // Every suite connects from one address: lift the per-address limits
    // (flags in extraArgs still win over the environment).
    env: {
      ...process.env,
      CONVERGER_IP_REQUESTS_PER_SECOND: "1000000",
      CONVERGER_IP_CONNECTIONS_PER_SECOND: "1000000",
      CONVERGER_MAX_CONNECTIONS_PER_IP: "1000000",
    },
  });
  const line = await new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(new Error("no ready line within 30 s")), 30_000);
    child.once("error", (e) => fail(new Error(`cannot start ${bin}: ${e.message}`)));
    child.once("exit", (code) => fail(new Error(`converger exited with ${code} before its ready line`)));
    createInterface({ input: child.stdout }).once("line", (l) => { clearTimeout(timer); ok(l); });
  });
  const http = /http=(\S+)/.exec(line)?.[1];
  const binaryAddr = /binary=(\S+)/.exec(line)?.[1];
  if (!http || !binaryAddr) throw new Error(`unexpected ready line: ${line}`);
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

  async function ok(method, path, bearer, body, status) {
    const r = await call(method, path, bearer, body);
    if (status === undefined ? r.status >= 300 : r.status !== status) {
      const want = status === undefined ? "" : `, expected ${status}`;
      throw new Error(`${method} ${path} answered ${r.status}${want}: ${JSON.stringify(r.json)}`);
    }
    return r.json;
  }

  return {
    http,
    binary: binaryAddr,
    call,
    ok,
    async stop() {
      child.kill("SIGTERM");
      await new Promise((done) => child.once("exit", done));
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
