// The client: the public API, and one logical connection to a Converger
// server over TCP or WebSocket that reconnects by itself and resumes its
// subscriptions. It ties together connection.js (one live connection:
// handshake, framing, requests by id) and state.js (the subscriptions that
// outlive connections).
//
// Flow: connect() opens a connection (Hello, then Welcome); requests are
// pipelined (each carries a request id; answers may come in any order) and
// Deliver / Ephemeral frames are routed to subscriptions and event
// listeners. When the connection drops (not by close()), requests in flight
// fail with ConnectionError, the client reconnects with backoff and
// resubscribes every subscription after its last seq in one Subscribe frame.
// Handshake refusals that a retry cannot fix (2xxx authentication codes,
// unsupported_version) end the client instead.
//
// Invariants: at most one connection is live, and `state` is "open" exactly
// while one is. Request ids (and Ping payloads) keep counting across
// reconnects rather than restarting per connection, so an id in an error or
// a server log names one request of this client (until the 32-bit wrap).

import { ConnectionError, ConvergerError, errorGroup, ErrorCode } from "./errors.js";
import { Connection, deferred, handshake } from "./connection.js";
import { Emitter } from "./events.js";
import { Subscriptions } from "./state.js";
import { json, toActivity, toDraft, toEphemeral, toPresence, toReceipt, toTyping, toWritten } from "./values.js";

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
  /** The live connection; after it ends, the last one (its Welcome stays readable). */
  #conn = null;
  #ready = deferred();
  #nextId = 1;
  #nextPing = 1n;
  #subs = new Subscriptions({
    request: (build, onAnswer) => this.#request(build, onAnswer),
    isOpen: () => this.#state === "open",
  });
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
    return this.#conn?.welcome ?? null;
  }

  /** "connecting" | "open" | "reconnecting" | "closed" */
  get state() {
    return this.#state;
  }

  /**
   * Listens to "typing", "receipt", "presence", "ephemeral", "disconnect", "reconnect", "close" or "error";
   * answers a function that stops listening.
   */
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
    return this.#subs.subscribe(conversationId, afterSeq, maxBuffered);
  }

  // Chat (protocol version 2; on a version-1 connection these reject with
  // WireError not_in_version before anything is sent). A token client acts as
  // its token's sender; an API-key client names `sender`.

  /** Edits message `targetId` (your own, for a token client) with new text, attachments and/or metadata. */
  async edit(conversationId, targetId, { text, attachments, metadata, sender } = {}) {
    return this.publish({ conversationId, type: "edit", targetId, text, attachments, metadata, sender });
  }

  /** Deletes message `targetId` (your own, for a token client): its content is erased, a tombstone stays. */
  async delete(conversationId, targetId, { sender } = {}) {
    return this.publish({ conversationId, type: "delete", targetId, sender });
  }

  /** Reacts to message `targetId` with `emoji` (once per sender and emoji: a repeat changes nothing). */
  async react(conversationId, targetId, emoji, { sender } = {}) {
    return this.publish({ conversationId, type: "reaction_add", targetId, text: emoji, sender });
  }

  /** Takes back a reaction of `emoji` to message `targetId`. */
  async unreact(conversationId, targetId, emoji, { sender } = {}) {
    return this.publish({ conversationId, type: "reaction_remove", targetId, text: emoji, sender });
  }

  /** Publishes `draft` as a reply in the thread of message `parentId`. */
  async reply(conversationId, parentId, draft) {
    return this.publish({ ...draft, conversationId, parentId });
  }

  /** Marks everything up to and including `seq` as read (a watermark never moves back); resolves once stored. */
  async markRead(conversationId, seq, { sender } = {}) {
    return this.receipt(conversationId, { readSeq: seq, sender });
  }

  /** Marks everything up to and including `seq` as delivered. */
  async markDelivered(conversationId, seq, { sender } = {}) {
    return this.receipt(conversationId, { deliveredSeq: seq, sender });
  }

  /** Moves a member's watermarks (null leaves one as it is); resolves once stored. */
  async receipt(conversationId, { readSeq = null, deliveredSeq = null, sender = "" } = {}) {
    const big = (v) => (v === null || v === undefined ? null : BigInt(v));
    await this.#request((requestId) => ({
      kind: "receipt", requestId, conversationId, readSeq: big(readSeq), deliveredSeq: big(deliveredSeq), sender: sender ?? "",
    }));
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
    this.#conn.send({ kind: "ephemeral", requestId, conversationId, type, sender, data: json(data) ?? "{}" });
    return requestId;
  }

  /** Round trip to the server, in milliseconds. */
  async ping() {
    await this.#whenOpen();
    const payload = this.#nextPing++;
    const started = performance.now();
    await this.#conn.ping(payload);
    return performance.now() - started;
  }

  /** Replaces the connection's client token (same tenant, conversation and sender); also used for later reconnects. */
  async reauth(token) {
    await this.#request((requestId) => ({ kind: "reauth", requestId, token }));
    this.#credential = { token };
  }

  /** Drops the current connection and reconnects at once, resuming every subscription (e.g. after a network change). */
  reconnect() {
    if (this.#state === "open") this.#conn?.drop();
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
    const { transport, welcome } = await handshake(this.#target, this.#credential, this.#options);
    if (this.#state === "closed") {
      transport.close();
      throw new ConnectionError("the client was closed");
    }
    this.#conn = new Connection(transport, welcome, this.#options, {
      onframe: (frame) => this.#onFrame(frame),
      onerror: (error) => this.#events.emit("error", error),
      onclose: (failure) => this.#onLost(failure),
    });
    this.#state = "open";
    this.#ready.resolve();
    return welcome;
  }

  /** The live connection ended by itself; requests in flight have already failed with `failure`. */
  #onLost(failure) {
    if (this.#state === "closed") return;
    this.#subs.disconnected();
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
        this.#subs.resubscribeAll();
        this.#events.emit("reconnect", welcome);
        return;
      } catch (e) {
        if (isFatal(e)) return this.#shutdown(e);
      }
    }
  }

  #shutdown(error) {
    this.#state = "closed";
    const failure = error ?? new ConnectionError("the client was closed");
    this.#endedWith = failure;
    this.#ready.reject(failure);
    this.#conn?.close(failure);
    this.#subs.endAll(error);
    this.#events.emit("close", error);
  }

  // ------------------------------------------------------------ frames

  /** Frames that are not answers: the connection matched those already. */
  #onFrame(frame) {
    switch (frame.kind) {
      case "deliver":
        for (const a of frame.activities) this.#subs.get(a.conversationId)?._deliver(toActivity(a));
        return;
      case "ephemeral": {
        const event = toEphemeral(frame);
        this.#events.emit("ephemeral", event);
        if (frame.type === "typing") this.#events.emit("typing", toTyping(event));
        else if (frame.type === "receipt") this.#events.emit("receipt", toReceipt(event));
        else if (frame.type === "user_online" || frame.type === "user_offline") this.#events.emit("presence", toPresence(event));
        else if (frame.type === "disconnected") this.#subs.endedByServer(event);
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
    } while (this.#conn?.awaits(this.#nextId));
    return this.#nextId;
  }

  /**
   * Sends the frame `build(requestId)` makes and waits for its answer (bounded
   * by requestTimeoutMs, waiting for a connection included). `onAnswer` runs
   * synchronously as the answer is read.
   */
  async #request(build, onAnswer = null) {
    const timeoutMs = this.#options.requestTimeoutMs;
    let timer;
    const timeout = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new ConnectionError(`no answer within ${timeoutMs} ms`)), timeoutMs);
    });
    let conn = null;
    let requestId = 0;
    let late = false;
    try {
      return await Promise.race([timeout, (async () => {
        await this.#whenOpen();
        if (late) return null;
        conn = this.#conn;
        requestId = this.#takeId();
        return conn.request(requestId, build(requestId), onAnswer);
      })()]);
    } finally {
      late = true;
      clearTimeout(timer);
      if (requestId) conn.forget(requestId);
    }
  }
}
