// The client: one logical connection to a Converger server over TCP or
// WebSocket that reconnects by itself and resumes its subscriptions.
//
// Flow: connect() opens a transport, sends Hello and waits for Welcome; then
// requests are pipelined (each carries a request id; answers may come in any
// order) and Deliver / Ephemeral frames are routed to subscriptions and event
// listeners. When the connection drops (not by close()), requests in flight
// fail with ConnectionError, the client reconnects with backoff and
// resubscribes every subscription after its last seq in one Subscribe frame.
// Handshake refusals that a retry cannot fix (2xxx authentication codes,
// unsupported_version) end the client instead.

import { encodeFrame, MAX_FRAME_SIZE, VERSION } from "./codec.js";
import { ConnectionError, ConvergerError, errorGroup, ErrorCode } from "./errors.js";
import { Subscription } from "./subscription.js";
import { openTcp, openWebSocket } from "./transport.js";

export const CLIENT_NAME = "converger-js/0.1.0";

const DEFAULTS = {
  connectTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
  maxBuffered: 10_000,
  maxSendBuffer: 4 * 1024 * 1024,
  reconnect: { minDelayMs: 100, maxDelayMs: 5_000, maxAttempts: Infinity },
  WebSocket: undefined,
  clientName: CLIENT_NAME,
};

/**
 * Connects and completes the handshake.
 * @param {{tcp: {host?: string, port: number, tls?: boolean | object}} | {url: string}} target
 * @param {{token: string} | {apiKey: string} | (() => ({token: string} | {apiKey: string} | Promise<any>))} credential
 * @param {object} [options]
 */
export async function connect(target, credential, options = {}) {
  const client = new Client(target, credential, options);
  await client._open();
  return client;
}

/** A minimal event emitter that also runs in browsers. A throwing listener does not stop the others. */
class Emitter {
  #listeners = new Map();

  on(event, fn) {
    if (!this.#listeners.has(event)) this.#listeners.set(event, new Set());
    this.#listeners.get(event).add(fn);
    return () => this.off(event, fn);
  }

  off(event, fn) {
    this.#listeners.get(event)?.delete(fn);
  }

  once(event, fn) {
    const off = this.on(event, (...args) => { off(); fn(...args); });
    return off;
  }

  emit(event, ...args) {
    for (const fn of [...(this.#listeners.get(event) ?? [])]) {
      try {
        fn(...args);
      } catch (e) {
        queueMicrotask(() => { throw e; });
      }
    }
  }
}

function deferred() {
  let resolve, reject;
  const promise = new Promise((ok, fail) => { resolve = ok; reject = fail; });
  promise.catch(() => {});
  return { promise, resolve, reject };
}

const json = (v) => (v === null || v === undefined ? null : typeof v === "string" ? v : JSON.stringify(v));

function parseJson(text) {
  if (text === null) return null;
  try {
    return JSON.parse(text);
  } catch {
    return text; // the server validates JSON before storing it; kept raw just in case
  }
}

/** A wire activity record as the client hands it out (JSON values parsed). */
function toActivity(a) {
  return { ...a, attachments: parseJson(a.attachments), metadata: parseJson(a.metadata) };
}

function toWritten(x) {
  return { activityId: x.activityId, seq: x.seq, createdAt: x.createdAt, replayed: x.replayed };
}

function toDraft(d) {
  if (!d || typeof d !== "object") throw new TypeError("a draft is an object");
  return {
    conversationId: d.conversationId,
    type: d.type ?? "message",
    sender: d.sender ?? "",
    text: d.text ?? null,
    attachments: json(d.attachments),
    metadata: json(d.metadata),
    idempotencyKey: d.idempotencyKey ?? null,
  };
}

/** Handshake refusals a reconnect cannot fix. */
function isFatal(error) {
  return error instanceof ConvergerError && (errorGroup(error.code) === 2 || error.code === ErrorCode.unsupported_version);
}

export class Client {
  #target;
  #credential;
  #options;
  #events = new Emitter();
  /** "connecting" | "open" | "reconnecting" | "closed" */
  #state = "connecting";
  #transport = null;
  #welcome = null;
  #ready = deferred();
  #pending = new Map();
  #nextId = 1;
  #subs = new Map();
  #pings = new Map();
  #nextPing = 1n;
  #outbox = [];
  #flushing = false;
  #keepalive = null;
  #lastSent = 0;
  #lastHeard = 0;
  #closeError = null;
  #endedWith = null;

  constructor(target, credential, options = {}) {
    if (!target || (!target.tcp && !target.url)) throw new TypeError("target is { tcp: { host, port } } or { url }");
    this.#target = target;
    this.#credential = credential;
    this.#options = { ...DEFAULTS, ...options, reconnect: options.reconnect === false ? false : { ...DEFAULTS.reconnect, ...options.reconnect } };
  }

  // ------------------------------------------------------------ public API

  /** The current connection's Welcome (who this client is, the server's limits). */
  get welcome() {
    return this.#welcome;
  }

  /** "connecting" | "open" | "reconnecting" | "closed" */
  get state() {
    return this.#state;
  }

  /** Listens to "typing", "ephemeral", "disconnect", "reconnect", "close" or "error"; answers a function that stops listening. */
  on(event, listener) {
    return this.#events.on(event, listener);
  }

  off(event, listener) {
    this.#events.off(event, listener);
  }

  once(event, listener) {
    return this.#events.once(event, listener);
  }

  /** Publishes one activity; resolves once it is committed. */
  async publish(draft) {
    const ack = await this.#request((requestId) => ({ kind: "publish", requestId, activity: toDraft(draft) }));
    return toWritten(ack);
  }

  /** Publishes many activities in one frame; one result per draft, in order. Rejects only when the whole frame fails. */
  async publishBatch(drafts) {
    const activities = drafts.map(toDraft);
    const ack = await this.#request((requestId) => ({ kind: "publish_batch", requestId, activities }));
    return ack.items.map((item) => (item.code === 0
      ? { ok: true, ...toWritten(item) }
      : { ok: false, error: new ConvergerError(item.code, item.message, { requestId: ack.requestId }) }));
  }

  /**
   * Subscribes to a conversation after `afterSeq` (0n: everything, LIVE_ONLY: live only).
   * Resolves once the server has accepted it; rejects with ConvergerError when refused.
   */
  async subscribe(conversationId, afterSeq = 0n, { maxBuffered = this.#options.maxBuffered } = {}) {
    const id = conversationId.toLowerCase();
    if (this.#subs.has(id)) throw new ConvergerError(ErrorCode.already_subscribed, "already subscribed on this client");
    const sub = new Subscription(this.#subControl, id, BigInt(afterSeq), maxBuffered);
    this.#subs.set(id, sub);
    try {
      const answer = await this.#request(
        (requestId) => ({ kind: "subscribe", requestId, items: [{ conversationId: id, afterSeq: sub.resumeSeq }] }),
        (frame) => this.#applySubscribed(frame, [sub]),
      );
      const item = answer.items[0];
      if (item.code !== 0) throw new ConvergerError(item.code, item.message, { requestId: answer.requestId });
      return sub;
    } catch (e) {
      if (this.#subs.get(id) === sub) this.#subs.delete(id);
      sub._end(e);
      throw e;
    }
  }

  /** One page of a conversation's history: activities with afterSeq < seq <= untilSeq (at most `limit`). */
  async history(conversationId, { afterSeq = 0n, untilSeq = null, limit = 100 } = {}) {
    const page = await this.#request((requestId) => ({
      kind: "history", requestId, conversationId, afterSeq: BigInt(afterSeq), untilSeq: untilSeq === null ? null : BigInt(untilSeq), limit,
    }));
    return { conversationId: page.conversationId, lastSeq: page.lastSeq, activities: page.activities.map(toActivity) };
  }

  /**
   * Sends a typing signal. Resolves once written: success is silent; a refusal
   * arrives as an "error" event (a ConvergerError with this request's id).
   */
  async typing(conversationId, typing = true, { sender = "" } = {}) {
    await this.ephemeral(conversationId, "typing", { typing: Boolean(typing) }, { sender });
  }

  /** Sends any ephemeral signal (`data` is a JSON object or its text); see typing(). */
  async ephemeral(conversationId, type, data, { sender = "" } = {}) {
    await this.#whenOpen();
    const requestId = this.#takeId();
    this.#send({ kind: "ephemeral", requestId, conversationId, type, sender, data: json(data) ?? "{}" });
    return requestId;
  }

  /** Round trip to the server, in milliseconds. */
  async ping() {
    await this.#whenOpen();
    const payload = this.#nextPing++;
    const started = performance.now();
    const answered = deferred();
    this.#pings.set(payload, answered);
    this.#send({ kind: "ping", payload });
    await answered.promise;
    return performance.now() - started;
  }

  /** Replaces the connection's client token (same tenant, conversation and sender); also used for later reconnects. */
  async reauth(token) {
    await this.#request((requestId) => ({ kind: "reauth", requestId, token }));
    this.#credential = { token };
  }

  /** Drops the current connection and reconnects at once, resuming every subscription (e.g. after a network change). */
  reconnect() {
    if (this.#state === "open") this.#transport?.close();
  }

  /** Closes for good: requests in flight fail, subscriptions end. */
  close() {
    if (this.#state === "closed") return;
    this.#shutdown(null);
  }

  // ------------------------------------------------------------ connection

  /** The first connection: its failure is connect()'s. */
  async _open() {
    try {
      await this.#connectOnce();
    } catch (e) {
      this.#state = "closed";
      this.#ready.reject(e);
      throw e;
    }
  }

  async #connectOnce() {
    const credential = typeof this.#credential === "function" ? await this.#credential() : this.#credential;
    const auth = credential?.token !== undefined ? "token" : credential?.apiKey !== undefined ? "api_key" : null;
    if (!auth) throw new TypeError("credential is { token } or { apiKey }");
    const opts = { maxFrame: MAX_FRAME_SIZE, timeoutMs: this.#options.connectTimeoutMs, WebSocket: this.#options.WebSocket };
    const transport = this.#target.tcp ? await openTcp(this.#target.tcp, opts) : await openWebSocket(this.#target.url, opts);
    const welcome = await new Promise((resolve, reject) => {
      const timer = setTimeout(() => { transport.close(); reject(new ConnectionError("no Welcome in time")); }, this.#options.connectTimeoutMs);
      transport.onframe = (frame) => {
        clearTimeout(timer);
        if (frame.kind === "welcome") return resolve(frame);
        if (frame.kind === "error") reject(new ConvergerError(frame.code, frame.message, { close: frame.close }));
        else reject(new ConnectionError(`the server answered Hello with ${frame.kind}`));
        transport.close();
      };
      transport.onclose = (error) => {
        clearTimeout(timer);
        reject(error ?? new ConnectionError("the connection closed during the handshake"));
      };
      transport.send(encodeFrame({
        kind: "hello", minVersion: VERSION, maxVersion: VERSION, auth,
        credential: auth === "token" ? credential.token : credential.apiKey, client: this.#options.clientName,
      }));
    });
    if (this.#state === "closed") {
      transport.close();
      throw new ConnectionError("the client was closed");
    }
    this.#transport = transport;
    this.#welcome = welcome;
    this.#closeError = null;
    this.#lastHeard = this.#lastSent = Date.now();
    transport.onframe = (frame) => this.#onFrame(frame);
    transport.onclose = (error) => this.#onClose(transport, error);
    this.#state = "open";
    this.#startKeepalive(welcome.idleTimeoutSecs);
    this.#ready.resolve();
    this.#flush();
    return welcome;
  }

  #startKeepalive(idleSecs) {
    clearInterval(this.#keepalive);
    if (!idleSecs) return;
    const every = Math.max(250, (idleSecs * 1000) / 3);
    this.#keepalive = setInterval(() => {
      const now = Date.now();
      if (now - this.#lastHeard > idleSecs * 1000 + every) {
        this.#transport?.close(); // heard nothing, not even Pongs: the connection is dead
      } else if (now - this.#lastSent >= every) {
        this.#send({ kind: "ping", payload: 0n });
      }
    }, every);
    this.#keepalive.unref?.();
  }

  #onClose(transport, error) {
    if (transport !== this.#transport) return;
    clearInterval(this.#keepalive);
    this.#transport = null;
    this.#outbox = [];
    const why = this.#closeError ?? error;
    const failure = new ConnectionError(why ? `connection lost: ${why.message}` : "connection closed", { cause: why ?? undefined });
    this.#failPending(failure);
    if (this.#state === "closed") return;
    for (const sub of this.#subs.values()) sub._disconnected();
    this.#events.emit("disconnect", failure);
    if (!this.#options.reconnect) return this.#shutdown(failure);
    this.#state = "reconnecting";
    this.#ready = deferred();
    this.#reconnectLoop();
  }

  async #reconnectLoop() {
    const { minDelayMs, maxDelayMs, maxAttempts } = this.#options.reconnect;
    for (let attempt = 0; this.#state === "reconnecting"; attempt++) {
      if (attempt >= maxAttempts) return this.#shutdown(new ConnectionError(`gave up reconnecting after ${attempt} attempts`));
      const delay = attempt === 0 ? 0 : Math.min(maxDelayMs, minDelayMs * 2 ** (attempt - 1)) * (0.5 + Math.random() / 2);
      if (delay) await new Promise((resolve) => setTimeout(resolve, delay));
      if (this.#state !== "reconnecting") return;
      try {
        const welcome = await this.#connectOnce();
        this.#resubscribeAll();
        this.#events.emit("reconnect", welcome);
        return;
      } catch (e) {
        if (isFatal(e)) return this.#shutdown(e);
      }
    }
  }

  /** After a reconnect: every subscription in one Subscribe frame, each after its last seq. */
  #resubscribeAll() {
    // A subscription still waiting for its first answer is not included: its
    // subscribe() call fails with the connection and the caller decides.
    const subs = [...this.#subs.values()].filter((s) => s.lastSeqAtSubscribe !== null);
    if (subs.length > 0) this.#startSubs(subs);
  }

  #startSubs(subs) {
    const items = subs.map((s) => ({ conversationId: s.conversationId, afterSeq: s.resumeSeq }));
    this.#request((requestId) => ({ kind: "subscribe", requestId, items }), (frame) => this.#applySubscribed(frame, subs))
      .catch(() => {
        // The connection dropped again: the next reconnect resubscribes.
      });
  }

  /**
   * A Subscribed answer, applied as its frame is read: the Deliver frames
   * right behind it (often in the same read) must find their subscription
   * started.
   */
  #applySubscribed(frame, subs) {
    frame.items.forEach((item, i) => {
      const sub = subs[i];
      if (!sub || this.#subs.get(sub.conversationId) !== sub) return;
      if (item.code === 0) {
        sub._subscribed(item.lastSeq);
      } else {
        this.#subs.delete(sub.conversationId);
        sub._end(new ConvergerError(item.code, item.message, { requestId: frame.requestId }));
      }
    });
  }

  /** The subscriptions' hooks into the client. */
  #subControl = {
    resync: (sub) => {
      if (this.#state !== "open") return; // the reconnect resubscribes it
      const unsubscribed = this.#request((requestId) => ({ kind: "unsubscribe", requestId, conversationIds: [sub.conversationId] }));
      unsubscribed.catch(() => {});
      this.#startSubs([sub]);
    },
    unsubscribe: async (sub) => {
      if (this.#subs.get(sub.conversationId) !== sub) return;
      this.#subs.delete(sub.conversationId);
      if (this.#state !== "open") return;
      try {
        await this.#request((requestId) => ({ kind: "unsubscribe", requestId, conversationIds: [sub.conversationId] }));
      } catch {
        // Closed meanwhile: nothing is subscribed on a closed connection.
      }
    },
  };

  #shutdown(error) {
    this.#state = "closed";
    clearInterval(this.#keepalive);
    const failure = error ?? new ConnectionError("the client was closed");
    this.#endedWith = failure;
    this.#ready.reject(failure);
    this.#failPending(failure);
    for (const sub of this.#subs.values()) sub._end(error);
    this.#subs.clear();
    const transport = this.#transport;
    this.#transport = null;
    transport?.close();
    this.#events.emit("close", error);
  }

  #failPending(error) {
    const pending = [...this.#pending.values()];
    this.#pending.clear();
    for (const p of pending) p.reject(error);
    const pings = [...this.#pings.values()];
    this.#pings.clear();
    for (const p of pings) p.reject(error);
  }

  // ------------------------------------------------------------ frames

  #onFrame(frame) {
    this.#lastHeard = Date.now();
    switch (frame.kind) {
      case "deliver":
        for (const a of frame.activities) this.#subs.get(a.conversationId)?._deliver(toActivity(a));
        return;
      case "ephemeral": {
        const event = { conversationId: frame.conversationId, type: frame.type, sender: frame.sender, data: parseJson(frame.data) };
        this.#events.emit("ephemeral", event);
        if (frame.type === "typing") {
          this.#events.emit("typing", { conversationId: event.conversationId, sender: event.sender, typing: event.data?.typing !== false });
        }
        return;
      }
      case "ping":
        this.#send({ kind: "pong", payload: frame.payload });
        return;
      case "pong":
        this.#pings.get(frame.payload)?.resolve();
        this.#pings.delete(frame.payload);
        return;
      case "error": {
        const error = new ConvergerError(frame.code, frame.message, { requestId: frame.requestId, close: frame.close });
        const pending = frame.requestId !== 0 ? this.#pending.get(frame.requestId) : undefined;
        if (frame.close) this.#closeError = error; // the reason the connection is about to end
        if (pending) {
          this.#pending.delete(frame.requestId);
          pending.reject(error);
        } else if (!frame.close) {
          this.#events.emit("error", error);
        }
        return;
      }
      case "ack":
      case "subscribed":
      case "publish_ack":
      case "publish_batch_ack":
      case "history_page": {
        const pending = this.#pending.get(frame.requestId);
        if (!pending) return; // timed out meanwhile
        this.#pending.delete(frame.requestId);
        pending.onAnswer?.(frame);
        pending.resolve(frame);
        return;
      }
      default:
        // Kinds only a client sends: the server never sends them.
        this.#events.emit("error", new ConnectionError(`unexpected ${frame.kind} frame from the server`));
    }
  }

  // ------------------------------------------------------------ requests and sending

  #whenOpen() {
    if (this.#state === "open") return Promise.resolve();
    if (this.#state === "closed") return Promise.reject(this.#endedWith ?? new ConnectionError("the client is closed"));
    return this.#ready.promise;
  }

  #takeId() {
    do {
      this.#nextId = this.#nextId >= 0xffff_ffff ? 1 : this.#nextId + 1;
    } while (this.#pending.has(this.#nextId));
    return this.#nextId;
  }

  /**
   * Sends the frame `build(requestId)` makes and waits for its answer (bounded
   * by requestTimeoutMs). `onAnswer` runs synchronously as the answer is read.
   */
  async #request(build, onAnswer = null) {
    const timeoutMs = this.#options.requestTimeoutMs;
    let timer;
    const timeout = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new ConnectionError(`no answer within ${timeoutMs} ms`)), timeoutMs);
    });
    let requestId = 0;
    let late = false;
    try {
      return await Promise.race([timeout, (async () => {
        await this.#whenOpen();
        if (late) return null;
        requestId = this.#takeId();
        const frame = build(requestId);
        const answer = deferred();
        answer.onAnswer = onAnswer;
        this.#pending.set(requestId, answer);
        try {
          this.#send(frame);
        } catch (e) {
          this.#pending.delete(requestId);
          throw e;
        }
        return answer.promise;
      })()]);
    } finally {
      late = true;
      clearTimeout(timer);
      if (requestId) this.#pending.delete(requestId);
    }
  }

  /**
   * Encodes (throwing WireError for what does not fit, e.g. over Welcome.maxFrame)
   * and writes a frame, or queues it in order while the socket holds more than
   * maxSendBuffer bytes.
   */
  #send(frame) {
    const bytes = encodeFrame(frame, this.#welcome?.maxFrame ?? MAX_FRAME_SIZE);
    if (!this.#transport) throw new ConnectionError("not connected");
    this.#lastSent = Date.now();
    if (this.#outbox.length > 0 || this.#transport.buffered > this.#options.maxSendBuffer) {
      this.#outbox.push(bytes);
      this.#flush();
    } else {
      this.#transport.send(bytes);
    }
  }

  async #flush() {
    if (this.#flushing) return;
    this.#flushing = true;
    try {
      while (this.#outbox.length > 0 && this.#transport) {
        const transport = this.#transport;
        if (transport.buffered > this.#options.maxSendBuffer) {
          await transport.drained();
          continue;
        }
        transport.send(this.#outbox.shift());
      }
    } finally {
      this.#flushing = false;
    }
  }
}

