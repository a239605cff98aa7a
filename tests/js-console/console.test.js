// The admin console in a real browser: Debian's chromium driven by
// playwright-core against the real binary (tests/js-support/converger.js).
// Screenshots of every page land in screenshots/ (gitignored) for a person
// to look at.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { ADMIN_TOKEN, launch } from "../js-support/converger.js";

const SHOTS = join(import.meta.dirname, "screenshots");
mkdirSync(SHOTS, { recursive: true });

let server, browser, page, profile, receiver;
let healthy = false;
const state = {};

/** A webhook receiver on loopback: 500 until `healthy`, then 200. */
function startReceiver() {
  return new Promise((ok) => {
    const s = createServer((req, res) => {
      req.resume();
      req.on("end", () => {
        res.writeHead(healthy ? 200 : 500, { "content-type": "application/json" });
        res.end("{}");
      });
    });
    s.listen(0, "127.0.0.1", () => ok(s));
  });
}

async function until(what, check, ms = 15000) {
  const end = Date.now() + ms;
  for (;;) {
    const got = await check();
    if (got) return got;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Chromium with a fresh profile (Playwright passes it as --user-data-dir). */
function launchBrowser() {
  profile = mkdtempSync(join(tmpdir(), "converger-chromium-"));
  return chromium.launchPersistentContext(profile, {
    executablePath: "/usr/bin/chromium",
    headless: true,
    viewport: { width: 1280, height: 800 },
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
}

async function show(hash) {
  await page.evaluate((h) => { location.hash = h; }, hash);
}

before(async () => {
  receiver = await startReceiver();
  server = await launch(["--delivery-allow-private", "true", "--delivery-retry-base-ms", "20"]);
  browser = await launchBrowser();
  page = await browser.newPage();
  page.on("pageerror", (e) => { state.pageErrors = [...(state.pageErrors || []), e.message]; });
});

after(async () => {
  await browser?.close();
  await server?.stop();
  receiver?.close();
  if (profile) rmSync(profile, { recursive: true, force: true });
});

test("log in with the admin token", async () => {
  const res = await page.goto(`${server.base}/admin`);
  assert.equal(res.status(), 200);
  assert.match(res.headers()["content-security-policy"], /script-src 'self'/);
  await page.fill("#token", "wrong");
  await page.click("#login button[type=submit]");
  await page.waitForSelector("#login-error:has-text('wrong admin token')");
  await page.fill("#token", ADMIN_TOKEN);
  await page.click("#login button[type=submit]");
  await page.waitForSelector("#stats .stat");
  assert.equal(await page.evaluate(() => document.cookie), "", "no cookie");
  assert.ok(!page.url().includes(ADMIN_TOKEN), "never in the URL");
});

test("create a tenant and see its key once", async () => {
  await show("#/tenants");
  await page.fill("#tenant-name", "acme");
  await page.click("form button[type=submit]");
  const key = (await page.textContent("[data-secret] .secret", { timeout: 5000 })).trim();
  assert.match(key, /^cvg_/);
  state.apiKey = key;
  const tenants = await server.ok("GET", "/admin/api/tenants", ADMIN_TOKEN);
  state.tenantId = tenants.data.find((t) => t.name === "acme").id;
  await page.waitForSelector("td:has-text('acme')");
  await page.screenshot({ path: join(SHOTS, "tenants.png") });
  await show("#/overview");
  await show("#/tenants");
  await page.waitForSelector("td:has-text('acme')");
  assert.equal(await page.$("[data-secret]"), null, "the key is not shown again");
});

test("create a channel of every type; a missing field shows at its field", async () => {
  await show(`#/channels?tenant=${state.tenantId}`);
  await page.waitForSelector("#channel-form");
  await page.fill("#channel-name", "bad-hook");
  await page.selectOption("#channel-type", "webhook");
  await page.click("#channel-form button[type=submit]");
  await page.waitForSelector("#err-config-url:has-text('required')");
  const hookUrl = `http://127.0.0.1:${receiver.address().port}/hook`;
  const kinds = [
    ["echo", "bot-echo", {}],
    ["webhook", "hook", { url: hookUrl }],
    ["websocket", "web", {}],
    ["whatsapp_meta", "meta", { phone_number_id: "123456", access_token: "tok", verify_token: "verify" }],
    ["whatsapp_infobip", "infobip", { api_key: "key", sender: "441234567" }],
  ];
  for (const [type, name, config] of kinds) {
    await page.fill("#channel-name", name);
    await page.selectOption("#channel-type", type);
    for (const [k, v] of Object.entries(config)) await page.fill(`#config-${k}`, v);
    await page.click("#channel-form button[type=submit]");
    await page.waitForSelector(`tr[data-channel="${name}"]`);
    assert.match(await page.textContent("[data-secret] .secret"), /^cvs_/);
  }
  const channels = await server.ok("GET", `/admin/api/channels?tenant_id=${state.tenantId}`, ADMIN_TOKEN);
  assert.deepEqual(channels.data.map((c) => c.type).sort(), kinds.map((k) => k[0]).sort());
  state.channels = Object.fromEntries(channels.data.map((c) => [c.name, c.id]));
  await page.selectOption("#channel-type", "whatsapp_meta");
  await page.screenshot({ path: join(SHOTS, "channels.png"), fullPage: true });
});

test("an activity posted over REST appears in the live tail; hostile text stays text", async () => {
  const conv = await server.ok("POST", "/api/v1/conversations", state.apiKey, { channel_id: state.channels.web });
  state.conversationId = conv.id;
  await server.ok("POST", `/api/v1/conversations/${conv.id}/activities`, state.apiKey, { sender: "alice", text: "before the page" });
  await show(`#/conversations?id=${conv.id}`);
  await page.waitForSelector("#live-state:text-is('live')");
  await page.waitForSelector("#tail :text('before the page')");
  await server.ok("POST", `/api/v1/conversations/${conv.id}/activities`, state.apiKey, { sender: "bob", text: "hello live" });
  await page.waitForSelector("#tail :text('hello live')", { timeout: 5000 });
  const hostile = "<img src=x onerror=window.__xss=1>";
  await server.ok("POST", `/api/v1/conversations/${conv.id}/activities`, state.apiKey, { sender: "mallory", text: hostile });
  await page.waitForSelector(`#tail .text:text-is("${hostile}")`, { timeout: 5000 });
  assert.equal(await page.evaluate(() => window.__xss), undefined);
  assert.equal(await page.$("#tail img"), null, "no element made from tenant text");
  // An operator's activity goes through the same write and arrives once.
  await page.fill("#op-text", "from the operator");
  await page.click("#op-form button[type=submit]");
  await page.waitForSelector("#tail :text('from the operator')");
  const seqs = await page.$$eval("#tail .activity", (ns) => ns.map((n) => Number(n.dataset.seq)));
  assert.deepEqual(seqs, [1, 2, 3, 4]);
  await page.screenshot({ path: join(SHOTS, "conversation.png"), fullPage: true });
  await show(`#/conversations?tenant=${state.tenantId}`);
  await page.waitForSelector("table td a");
  await page.screenshot({ path: join(SHOTS, "conversations.png") });
});

test("a failing webhook shows failed with its error; retried after recovery it is delivered", async () => {
  const conv = await server.ok("POST", "/api/v1/conversations", state.apiKey, { channel_id: state.channels.hook });
  const a = await server.ok("POST", `/api/v1/conversations/${conv.id}/activities`, state.apiKey, { sender: "alice", text: "doomed" });
  await until("the delivery to fail", async () => {
    const d = await server.ok("GET", `/api/v1/deliveries?activity_id=${a.id}`, state.apiKey);
    return d.data[0]?.status === "failed";
  });
  await show(`#/deliveries?channel=${state.channels.hook}`);
  const row = page.locator("#list-failed tr[data-delivery]");
  await row.first().waitFor();
  const text = await row.first().textContent();
  assert.match(text, /500/, text);
  assert.match(text, /5/, "five attempts");
  await page.waitForSelector('tr[data-channel="hook"] td:nth-child(5):text-is("1")');
  await page.screenshot({ path: join(SHOTS, "deliveries.png"), fullPage: true });
  healthy = true;
  await row.first().locator("button").click();
  await until("the delivery to be delivered", async () => {
    const d = await server.ok("GET", `/api/v1/deliveries?activity_id=${a.id}`, state.apiKey);
    return d.data[0]?.status === "delivered";
  });
  await show("#/overview");
  await show(`#/deliveries?channel=${state.channels.hook}`);
  await page.waitForSelector("#list-delivered tr[data-delivery]");
  await page.waitForSelector('tr[data-channel="hook"] td:nth-child(4):text-is("1")');
});

test("overview and a narrow screen", async () => {
  await show("#/overview");
  await page.waitForSelector("#stats .stat");
  // Some traffic across three polls, so the charts have something to draw.
  for (let i = 0; i < 30; i++) {
    await server.ok("POST", `/api/v1/conversations/${state.conversationId}/activities`, state.apiKey, { sender: "load", text: `n${i}` });
    await new Promise((r) => setTimeout(r, 150));
  }
  await page.waitForTimeout(2500);
  await page.screenshot({ path: join(SHOTS, "overview.png") });
  await page.setViewportSize({ width: 390, height: 844 });
  await show(`#/conversations?id=${state.conversationId}`);
  await page.waitForSelector("#tail :text('hello live')");
  await page.screenshot({ path: join(SHOTS, "narrow-conversation.png"), fullPage: true });
  await show("#/tenants");
  await page.waitForSelector("td:has-text('acme')");
  await page.screenshot({ path: join(SHOTS, "narrow-tenants.png"), fullPage: true });
  assert.deepEqual(state.pageErrors || [], []);
});

test("an address outside the allow-list gets 403 for the page and the API", async () => {
  const outside = await launch(["--admin-allow", "10.0.0.0/8"]);
  try {
    const other = await browser.newPage();
    const res = await other.goto(`${outside.base}/admin`);
    assert.equal(res.status(), 403);
    const api = await other.evaluate(async (token) => (await fetch("/admin/api/stats", { headers: { authorization: `Bearer ${token}` } })).status, ADMIN_TOKEN);
    assert.equal(api, 403);
    const asset = await other.evaluate(async () => (await fetch("/admin/assets/app.js")).status);
    assert.equal(asset, 403);
    await other.close();
  } finally {
    await outside.stop();
  }
});
