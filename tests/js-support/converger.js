// Starts the real converger binary for the Node suites (tests/js-phoenix,
// tests/js-webhooks, client-sdk/js): loopback port 0, embedded storage in a
// temp dir, an admin token, two shards. The binary is the one `scripts/test`
// built: CONVERGER_BIN, else <CARGO_TARGET_DIR or target>/debug/converger.
// `launch({ tls: true })` starts it with a certificate from a throwaway CA
// (made by converger-test-certs, built beside it) and speaks https with that CA.
// Node built-ins only, so every suite imports it by its path.
import { execFileSync, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { request as httpsRequest } from "node:https";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";

export const ADMIN_TOKEN = "js-admin-token";
const ROOT = resolve(import.meta.dirname, "..", "..");

function binary(name = "converger") {
  if (name === "converger" && process.env.CONVERGER_BIN) return process.env.CONVERGER_BIN;
  const target = process.env.CARGO_TARGET_DIR || join(ROOT, "target");
  return join(target, "debug", name);
}

/** A throwaway CA and a server certificate for localhost: { dir, ca, cert, key } (paths; `ca` also as PEM text in caPem). */
function makeCerts() {
  const bin = binary("converger-test-certs");
  if (!existsSync(bin)) {
    throw new Error(`no ${bin}: build it first (cargo build -p converger-e2e --bin converger-test-certs)`);
  }
  const dir = mkdtempSync(join(tmpdir(), "converger-certs-"));
  execFileSync(bin, [dir], { stdio: ["ignore", "ignore", "inherit"] });
  const ca = join(dir, "ca.pem");
  return { dir, ca, caPem: readFileSync(ca, "utf8"), cert: join(dir, "cert.pem"), key: join(dir, "key.pem") };
}

/** fetch() cannot be given a CA: https requests go through node:https. */
function fetchTls(url, { method, headers, body }, ca) {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(url, { method, headers, ca }, (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode, headers: res.headers, text: async () => Buffer.concat(chunks).toString("utf8") }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(body);
  });
}

/**
 * The running server: its `http` and `binary` addresses, `call` (REST with a
 * bearer), `ok` (`call` that throws on an answer ≥ 300, or other than
 * `status` when given) and `stop`. `extraArgs` go to the binary.
 */
export async function launch(extraArgs = [], { tls = false } = {}) {
  const bin = binary();
  const certs = tls ? makeCerts() : null;
  if (certs) extraArgs = ["--tls-cert", certs.cert, "--tls-key", certs.key, ...extraArgs];
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
  // The certificate names localhost, so https goes there (same port).
  const base = certs ? `https://localhost:${http.slice(http.lastIndexOf(":") + 1)}` : `http://${http}`;

  async function call(method, path, bearer, body) {
    const init = {
      method,
      headers: { authorization: `Bearer ${bearer}`, ...(body ? { "content-type": "application/json" } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    };
    const res = certs ? await fetchTls(base + path, init, certs.caPem) : await fetch(base + path, init);
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
    /** With tls: the CA's PEM text (what clients trust) and `https://localhost:PORT`. */
    caPem: certs?.caPem ?? null,
    base,
    call,
    ok,
    async stop() {
      child.kill("SIGTERM");
      await new Promise((done) => child.once("exit", done));
      rmSync(dataDir, { recursive: true, force: true });
      if (certs) rmSync(certs.dir, { recursive: true, force: true });
    },
  };
}
