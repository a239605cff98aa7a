// The client's event listeners ("typing", "disconnect", …): a minimal
// emitter rather than node:events, so the client also runs in browsers.
// Listeners are isolated from each other and from the connection: a throwing
// listener neither stops the others nor unwinds the frame being read (its
// error is rethrown on its own, as an uncaught exception).

export class Emitter {
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
