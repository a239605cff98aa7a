// What survives reconnects: the client's subscriptions, each with its resume
// point (the last seq it accepted) and its bounded buffer (subscription.js),
// and the bookkeeping that starts them again on every new connection.
//
// Invariants:
// - At most one subscription per conversation, keyed by the lower-cased id
//   (the form the codec decodes from Deliver frames); a subscription leaves
//   the map when it ends, and a later answer about it no longer touches it.
// - Every (re)subscription resumes after the subscription's last seq, so
//   across reconnects and resyncs nothing is lost or handed out twice.
// - A subscription starts (learns where its backlog ends) the moment its
//   Subscribed item is read, before the Deliver frames behind it.
//
// It sends through `request(build, onAnswer)` (the client's request path:
// waits for a connection, bounded by the request timeout) and asks
// `isOpen()` before work that only makes sense on a live connection.

import { ConvergerError, ErrorCode } from "./errors.js";
import { Subscription } from "./subscription.js";

export class Subscriptions {
  #subs = new Map();
  #request;
  #isOpen;

  /**
   * @param {{request(build: (requestId: number) => object, onAnswer?: (frame: any) => void): Promise<any>, isOpen(): boolean}} io
   */
  constructor({ request, isOpen }) {
    this.#request = request;
    this.#isOpen = isOpen;
  }

  /** The live subscription of a conversation (lower-cased id), if any. */
  get(conversationId) {
    return this.#subs.get(conversationId);
  }

  /** Subscribes after `afterSeq`; resolves once the server accepted, rejects (ending the subscription) when refused. */
  async subscribe(conversationId, afterSeq, maxBuffered) {
    const id = conversationId.toLowerCase();
    if (this.#subs.has(id)) throw new ConvergerError(ErrorCode.already_subscribed, "already subscribed on this client");
    const sub = new Subscription(this, id, BigInt(afterSeq), maxBuffered);
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

  /** After a reconnect: every subscription in one Subscribe frame, each after its last seq. */
  resubscribeAll() {
    // A subscription still waiting for its first answer is not included: its
    // subscribe() call fails with the connection and the caller decides.
    const subs = [...this.#subs.values()].filter((s) => s.lastSeqAtSubscribe !== null);
    if (subs.length > 0) this.#start(subs);
  }

  /** The connection dropped: resyncs in flight are moot, since the reconnect resubscribes. */
  disconnected() {
    for (const sub of this.#subs.values()) sub._disconnected();
  }

  /** The client closed: every subscription ends (with `error`, unless a plain close). */
  endAll(error) {
    for (const sub of this.#subs.values()) sub._end(error);
    this.#subs.clear();
  }

  /**
   * The server ended a subscription (docs/protocol.md "Disconnected by the
   * server"): it ends with the code and the reason, and is not resumed — the
   * caller may subscribe again.
   */
  endedByServer({ conversationId, data }) {
    const id = conversationId.toLowerCase();
    const sub = this.#subs.get(id);
    if (!sub) return;
    this.#subs.delete(id);
    const code = ErrorCode[data?.code] ?? ErrorCode.disconnected;
    sub._end(new ConvergerError(code, typeof data?.reason === "string" ? data.reason : ""));
  }

  // ------------------------------------------------------------ a Subscription's control

  /** The subscription overflowed or saw a gap: start it again after its last seq. */
  resync(sub) {
    if (!this.#isOpen()) return; // the reconnect resubscribes it
    const unsubscribed = this.#request((requestId) => ({ kind: "unsubscribe", requestId, conversationIds: [sub.conversationId] }));
    unsubscribed.catch(() => {});
    this.#start([sub]);
  }

  async unsubscribe(sub) {
    if (this.#subs.get(sub.conversationId) !== sub) return;
    this.#subs.delete(sub.conversationId);
    if (!this.#isOpen()) return;
    try {
      await this.#request((requestId) => ({ kind: "unsubscribe", requestId, conversationIds: [sub.conversationId] }));
    } catch {
      // Closed meanwhile: nothing is subscribed on a closed connection.
    }
  }

  // ------------------------------------------------------------ internals

  #start(subs) {
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
}
