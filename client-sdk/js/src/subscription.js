// One conversation's stream of activities, as an async iterator.
//
// Invariants: activities come out in seq order with no gap and no duplicate,
// across reconnects and resubscriptions. `lastSeq` is the last seq accepted
// (buffered or handed out): every resubscription resumes after it, and
// anything at or below it is dropped as a duplicate.
//
// Bounded buffering: at most `maxBuffered` activities wait for the consumer.
// When a new one would go past that, the subscription stops accepting (it
// drops that activity and the ones after it, without moving `lastSeq`); once
// the consumer has taken the buffer down to half, the client unsubscribes and
// subscribes again after `lastSeq`, and the server's backlog fills the hole.
// A slow consumer thus costs bounded memory, never loses an activity and never
// stalls the connection's other subscriptions or answers. A gap in the seqs
// (which the server never sends) is healed the same way.

import { LIVE_ONLY } from "./codec.js";

export class Subscription {
  #control;
  #buffer = [];
  #head = 0;
  #waiters = [];
  #ended = false;
  #error = null;
  #overflowed = false;
  #resyncing = false;

  /**
   * @param {{resync(sub: Subscription): void, unsubscribe(sub: Subscription): Promise<void>}} control
   * @param {string} conversationId
   * @param {bigint} afterSeq the resume point asked for (LIVE_ONLY: live only)
   * @param {number} maxBuffered
   */
  constructor(control, conversationId, afterSeq, maxBuffered) {
    this.#control = control;
    this.conversationId = conversationId;
    /** The last seq accepted; null until known for a live-only subscription. */
    this.lastSeq = afterSeq === LIVE_ONLY ? null : afterSeq;
    /** The conversation's last seq when the subscription began (its backlog ends there). */
    this.lastSeqAtSubscribe = null;
    this.maxBuffered = Math.max(1, maxBuffered);
    /** Counters: activities dropped as duplicates, resubscriptions after an overflow or a gap. */
    this.stats = { duplicates: 0, resyncs: 0 };
  }

  /** Activities waiting for the consumer. */
  get buffered() {
    return this.#buffer.length - this.#head;
  }

  get ended() {
    return this.#ended;
  }

  /** Where a (re)subscription resumes: the last seq accepted, or LIVE_ONLY. */
  get resumeSeq() {
    return this.lastSeq ?? LIVE_ONLY;
  }

  // ------------------------------------------------------------ fed by the client

  /** A Subscribed item that started this subscription (first time, after a reconnect, or a resync). */
  _subscribed(lastSeq) {
    this.lastSeqAtSubscribe ??= lastSeq;
    if (this.lastSeq === null) this.lastSeq = lastSeq;
    this.#overflowed = false;
    this.#resyncing = false;
  }

  /** The connection dropped: any resync in flight is moot (the reconnect resubscribes). */
  _disconnected() {
    this.#resyncing = false;
  }

  /** One delivered activity of this conversation. */
  _deliver(activity) {
    if (this.#ended) return;
    if (this.lastSeq !== null && activity.seq <= this.lastSeq) {
      this.stats.duplicates++;
      return;
    }
    if (this.#overflowed) return;
    if (this.lastSeq !== null && activity.seq !== this.lastSeq + 1n) {
      // A gap: never sent by a correct server; resume after what we have.
      this.#overflow();
      return;
    }
    if (this.buffered >= this.maxBuffered) {
      this.#overflow();
      return;
    }
    this.lastSeq = activity.seq;
    const waiter = this.#waiters.shift();
    if (waiter) waiter.resolve({ value: activity, done: false });
    else this.#buffer.push(activity);
  }

  /** Ends the stream: after the buffered activities, `next()` answers done (or throws `error`). */
  _end(error = null) {
    if (this.#ended) return;
    this.#ended = true;
    this.#error = error;
    for (const w of this.#waiters.splice(0)) this.#settleEnd(w);
  }

  #overflow() {
    this.#overflowed = true;
    this.#maybeResync();
  }

  #maybeResync() {
    if (this.#overflowed && !this.#resyncing && !this.#ended && this.buffered <= this.maxBuffered / 2) {
      this.#resyncing = true;
      this.stats.resyncs++;
      this.#control.resync(this);
    }
  }

  #settleEnd(w) {
    if (this.#error) {
      const error = this.#error;
      this.#error = null; // thrown once; later calls answer done
      w.reject(error);
    } else {
      w.resolve({ value: undefined, done: true });
    }
  }

  // ------------------------------------------------------------ the consumer's side

  /** The next activity (waits for one), or done once the subscription ended. */
  next() {
    if (this.#head < this.#buffer.length) {
      const value = this.#buffer[this.#head];
      this.#buffer[this.#head++] = undefined;
      if (this.#head > 1024 && this.#head * 2 > this.#buffer.length) {
        this.#buffer = this.#buffer.slice(this.#head);
        this.#head = 0;
      }
      this.#maybeResync();
      return Promise.resolve({ value, done: false });
    }
    return new Promise((resolve, reject) => {
      const w = { resolve, reject };
      if (this.#ended) this.#settleEnd(w);
      else this.#waiters.push(w);
    });
  }

  /** Leaving a `for await` loop unsubscribes. */
  async return() {
    await this.unsubscribe();
    return { value: undefined, done: true };
  }

  [Symbol.asyncIterator]() {
    return this;
  }

  /** Stops the subscription (Unsubscribe, answered by Ack when connected); buffered activities are dropped. */
  async unsubscribe() {
    if (this.#ended) return;
    this.#buffer = [];
    this.#head = 0;
    this._end(null);
    await this.#control.unsubscribe(this);
  }
}
