// Compiled by `tsc` (npm test) and never run: the public API as a TypeScript
// user writes it, so index.d.ts cannot drift from what the README shows.
import {
  connect, ConvergerError, ConnectionError, decodeFrame, encodeFrame, ErrorCode, errorName, FrameDecoder,
  LIVE_ONLY, WireError,
  type Activity, type BatchResult, type Client, type Frame, type HistoryPage, type Subscription, type Written,
} from "../index.js";

declare function log(...args: unknown[]): void;
declare const WsImpl: new (url: string) => any;

export async function usage(): Promise<void> {
  const client: Client = await connect({ tcp: { host: "127.0.0.1", port: 4001 } }, { apiKey: "cvg_x" });
  const viaWs = await connect({ url: "ws://127.0.0.1:4000/socket/binary" }, async () => ({ token: "a.b.c" }), {
    WebSocket: WsImpl, maxBuffered: 1000, reconnect: { maxDelayMs: 2000 },
  });
  const written: Written = await client.publish({ conversationId: "0190b6a4-1c2e-7100-8000-000000000001", sender: "svc", text: "hi", metadata: { k: 1 } });
  const seq: bigint = written.seq;
  const results: BatchResult[] = await client.publishBatch([{ conversationId: "x", type: "event", sender: "svc" }]);
  for (const r of results) {
    if (r.ok) log(r.activityId, r.replayed);
    else log(r.error.code, r.error.codeName, r.error.is("conversation_closed"));
  }
  const sub: Subscription = await client.subscribe("0190b6a4-1c2e-7100-8000-000000000001", seq);
  for await (const a of sub) {
    const activity: Activity = a;
    log(activity.seq + 1n, activity.metadata, activity.attachments?.length);
    break;
  }
  await client.subscribe("0190b6a4-1c2e-7100-8000-000000000002", LIVE_ONLY);
  const page: HistoryPage = await client.history("0190b6a4-1c2e-7100-8000-000000000001", { afterSeq: 10n, untilSeq: null, limit: 50 });
  log(page.lastSeq, page.activities.length);
  await client.typing("0190b6a4-1c2e-7100-8000-000000000001", true, { sender: "svc" });
  const off = client.on("typing", (e) => log(e.sender, e.typing));
  off();
  client.on("close", (e) => { if (e instanceof ConvergerError) log(e.code === ErrorCode.unauthorized); });
  client.on("disconnect", (e: ConnectionError) => log(e.cause));
  const m: Written = await client.publish({ conversationId: "c", text: "hi" });
  await client.edit("c", m.activityId, { text: "hi!", metadata: { k: 1 } });
  await client.react("c", m.activityId, "👍", { sender: "svc" });
  await client.unreact("c", m.activityId, "👍");
  await client.reply("c", m.activityId, { text: "re" });
  await client.delete("c", m.activityId);
  await client.markRead("c", m.seq);
  await client.receipt("c", { deliveredSeq: 4n, sender: "svc" });
  client.on("receipt", (e) => log(e.sender, e.readSeq + 1n, e.deliveredSeq));
  client.on("presence", (e) => log(e.sender, e.online, e.lastSeen?.length));
  const rtt: number = await client.ping();
  await viaWs.reauth("a.b.c");
  viaWs.reconnect();
  client.close();
  log(rtt, errorName(4001));
}

export function codec(bytes: Uint8Array): void {
  const out: Uint8Array = encodeFrame({ kind: "ping", payload: 1n });
  const decoded = decodeFrame(out);
  if (decoded) {
    const f: Frame = decoded.frame;
    if (f.kind === "deliver") log(f.activities[0]?.seq);
    if (f.kind === "error") log(f.code, f.close);
  }
  const v2 = decodeFrame(bytes, { version: 2, maxSize: 1 << 20 });
  if (v2 && v2.frame.kind === "deliver") log(v2.frame.activities[0]?.state?.reactions[0]?.me, v2.frame.activities[0]?.targetId);
  encodeFrame({ kind: "receipt", requestId: 1, conversationId: "x", readSeq: 4n, deliveredSeq: null, sender: "" }, { version: 2 });
  const d = new FrameDecoder({ maxSize: 1 << 20 });
  d.version = 2;
  d.push(bytes);
  try {
    for (let f = d.next(); f !== null; f = d.next()) log(f.kind);
  } catch (e) {
    if (e instanceof WireError) log(e.code, e.protocolCode);
  }
}
