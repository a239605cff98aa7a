// One live connection to the server: the handshake that opens it, then a
// Connection that owns it until it ends. Nothing here outlives the socket;
// what must survive a reconnect (subscriptions, resume points) is in
// state.js, and the decision to reconnect is the client's.
//
// Invariants:
// - A request waiting in `pending` was written on this connection; when the
//   connection ends, every one of them (and every Ping) fails at once, with
//   the reason the connection ended. An answer is never matched across
//   connections.
// - Frames go out in the order they were sent: once one waits in the outbox
//   (the socket holds more than maxSendBuffer bytes), every later one queues
//   behind it.
// - Answers are matched and handed over synchronously as their frame is
//   read, so whatever the answer sets up (a subscription's start) is in
//   place before the next frame of the same read is dispatched.

import { encodeFrame, MAX_FRAME_SIZE, MAX_VERSION, MIN_VERSION } from "./codec.js";
import { ConnectionError, ConvergerError } from "./errors.js";
import { openTcp, openWebSocket } from "./transport.js";

/** A promise with its settlers; never an unhandled rejection, since a caller may have given up on it. */
export function deferred() {
  let resolve, reject;
  const promise = new Promise((ok, fail) => { resolve = ok; reject = fail; });
  promise.catch(() => {});
  return { promise, resolve, reject };
}

/**
 * Opens a transport and exchanges Hello for Welcome, each step bounded by
 * connectTimeoutMs. A refusal fails with the server's ConvergerError (its
 * code tells whether retrying can help).
 * @returns {Promise<{transport: object, welcome: object}>}
 */
export async function handshake(target, credentialSource, options) {
  // Asked again before every attempt, so a credential function can hand out a fresh token.
  const credential = typeof credentialSource === "function" ? await credentialSource() : credentialSource;
  const auth = credential?.token !== undefined ? "token" : credential?.apiKey !== undefined ? "api_key" : null;
  if (!auth) throw new TypeError("credential is { token } or { apiKey }");
  const opts = { maxFrame: MAX_FRAME_SIZE, timeoutMs: options.connectTimeoutMs, WebSocket: options.WebSocket };
  const transport = target.tcp ? await openTcp(target.tcp, opts) : await openWebSocket(target.url, opts);
  const welcome = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => { transport.close(); reject(new ConnectionError("no Welcome in time")); }, options.connectTimeoutMs);
    transport.onframe = (frame) => {
      clearTimeout(timer);
      if (frame.kind === "welcome" && frame.version >= MIN_VERSION && frame.version <= MAX_VERSION) {
        // Set now, before the next frame of the same read is decoded.
        transport.version = frame.version;
        return resolve(frame);
      }
      if (frame.kind === "welcome") reject(new ConnectionError(`the server chose protocol version ${frame.version}, which this client does not speak`));
      else if (frame.kind === "error") reject(new ConvergerError(frame.code, frame.message, { close: frame.close }));
      else reject(new ConnectionError(`the server answered Hello with ${frame.kind}`));
      transport.close();
    };
    transport.onclose = (error) => {
      clearTimeout(timer);
      reject(error ?? new ConnectionError("the connection closed during the handshake"));
    };
    transport.send(encodeFrame({
      kind: "hello", minVersion: MIN_VERSION, maxVersion: MAX_VERSION, auth,
      credential: auth === "token" ? credential.token : credential.apiKey, client: options.clientName,
    }));
  });
  return { transport, welcome };
}

/**
 * A connection after its handshake. It answers Pings, keeps itself alive,
 * matches answers to requests, and tells its owner through `hooks`:
 *   onframe(frame)    a frame that is not an answer (Deliver, Ephemeral, …)
 *   onerror(error)    an Error frame that answers no request and does not close
 *   onclose(failure)  the connection ended by itself (not by close()); requests already failed with `failure`
 */
export class Connection {
  /** The server's Welcome on this connection: who the client is, the limits. */
  welcome;
  #transport;
  #options;
  #hooks;
  #pending = new Map();
  #pings = new Map();
  #outbox = [];
  #flushing = false;
  #keepalive = null;
  #lastSent;
  #lastHeard;
  /** An Error frame with the close flag: the reason the connection is about to end. */
  #closeError = null;

  constructor(transport, welcome, options, hooks) {
    this.welcome = welcome;
    this.#transport = transport;
    this.#options = options;
    this.#hooks = hooks;
    this.#lastHeard = this.#lastSent = Date.now();
    transport.onframe = (frame) => this.#onFrame(frame);
    transport.onclose = (error) => this.#onClose(error);
    this.#startKeepalive(welcome.idleTimeoutSecs);
  }

  /** Whether `requestId` still waits for an answer here (ids must not be reused while it does). */
  awaits(requestId) {
    return this.#pending.has(requestId);
  }

  /**
   * Writes a request frame and answers the promise of its answer frame (an
   * Error frame for it rejects). `onAnswer` runs synchronously as the answer is read.
   */
  request(requestId, frame, onAnswer) {
    const answer = deferred();
    answer.onAnswer = onAnswer;
    this.#pending.set(requestId, answer);
    try {
      this.send(frame);
    } catch (e) {
      this.#pending.delete(requestId);
      throw e;
    }
    return answer.promise;
  }

  /** The caller stopped waiting (timeout): a late answer is then dropped. */
  forget(requestId) {
    this.#pending.delete(requestId);
  }

  /** Sends a Ping; the promise settles with its Pong (or the connection's end). */
  ping(payload) {
    const answered = deferred();
    this.#pings.set(payload, answered);
    this.send({ kind: "ping", payload });
    return answered.promise;
  }

  /**
   * Encodes (throwing WireError for what does not fit, e.g. over Welcome.maxFrame)
   * and writes a frame, or queues it in order while the socket holds more than
   * maxSendBuffer bytes.
   */
  send(frame) {
    const bytes = encodeFrame(frame, { version: this.welcome.version, maxSize: this.welcome.maxFrame ?? MAX_FRAME_SIZE });
    if (!this.#transport) throw new ConnectionError("not connected");
    this.#lastSent = Date.now();
    if (this.#outbox.length > 0 || this.#transport.buffered > this.#options.maxSendBuffer) {
      this.#outbox.push(bytes);
      this.#flush();
    } else {
      this.#transport.send(bytes);
    }
  }

  /** Drops the socket; the connection then ends as if the network had cut it (onclose follows). */
  drop() {
    this.#transport?.close();
  }

  /** Ends the connection on the owner's behalf: requests in flight fail with `failure`, and no onclose follows. */
  close(failure) {
    clearInterval(this.#keepalive);
    this.#failPending(failure);
    const transport = this.#transport;
    this.#transport = null;
    transport?.close();
  }

  #startKeepalive(idleSecs) {
    if (!idleSecs) return;
    // Well inside the server's idle timeout, so a quiet client is never cut for idleness.
    const every = Math.max(250, (idleSecs * 1000) / 3);
    this.#keepalive = setInterval(() => {
      const now = Date.now();
      if (now - this.#lastHeard > idleSecs * 1000 + every) {
        this.#transport?.close(); // heard nothing, not even Pongs: the connection is dead
      } else if (now - this.#lastSent >= every) {
        this.send({ kind: "ping", payload: 0n });
      }
    }, every);
    this.#keepalive.unref?.();
  }

  #onClose(error) {
    if (!this.#transport) return; // closed by close(): its failure is already given
    clearInterval(this.#keepalive);
    this.#transport = null;
    this.#outbox = [];
    const why = this.#closeError ?? error;
    const failure = new ConnectionError(why ? `connection lost: ${why.message}` : "connection closed", { cause: why ?? undefined });
    this.#failPending(failure);
    this.#hooks.onclose(failure);
  }

  #failPending(error) {
    const pending = [...this.#pending.values()];
    this.#pending.clear();
    for (const p of pending) p.reject(error);
    const pings = [...this.#pings.values()];
    this.#pings.clear();
    for (const p of pings) p.reject(error);
  }

  #onFrame(frame) {
    this.#lastHeard = Date.now();
    switch (frame.kind) {
      case "ping":
        this.send({ kind: "pong", payload: frame.payload });
        return;
      case "pong":
        this.#pings.get(frame.payload)?.resolve();
        this.#pings.delete(frame.payload);
        return;
      case "error": {
        const error = new ConvergerError(frame.code, frame.message, { requestId: frame.requestId, close: frame.close });
        const pending = frame.requestId !== 0 ? this.#pending.get(frame.requestId) : undefined;
        if (frame.close) this.#closeError = error;
        if (pending) {
          this.#pending.delete(frame.requestId);
          pending.reject(error);
        } else if (!frame.close) {
          this.#hooks.onerror(error);
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
        this.#hooks.onframe(frame);
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
