// The two transports of the binary protocol, behind one small interface the
// client drives:
//
//   send(bytes)        write one encoded frame
//   buffered           bytes written but not yet taken by the OS / socket
//   drained()          a promise that settles when `buffered` has gone down (or the transport closed)
//   close()            end the connection
//   onframe(frame)     set by the client: each decoded frame, in order
//   onclose(error)     set by the client: called once, with why (null for a plain close)
//
// TCP (`node:net`, or `node:tls` with `tls`) cuts the byte stream with the
// incremental FrameDecoder. WebSocket (`/socket/binary`) carries exactly one
// frame per binary message; a message whose size differs from its frame's,
// or a text message, is a protocol error. `node:net` is imported only when a
// TCP target is used, so the WebSocket path runs in browsers.

import { decodeFrame, FrameDecoder, WireError } from "./codec.js";
import { ConnectionError } from "./errors.js";

class Transport {
  onframe = () => {};
  onclose = () => {};
  #closed = false;

  /** Calls onclose once. */
  finish(error) {
    if (this.#closed) return;
    this.#closed = true;
    this.onclose(error ?? null);
  }

  get closed() {
    return this.#closed;
  }
}

class TcpTransport extends Transport {
  constructor(socket, maxFrame) {
    super();
    this.socket = socket;
    this.decoder = new FrameDecoder({ maxSize: maxFrame });
    let failure = null;
    socket.on("data", (chunk) => {
      if (this.closed) return;
      try {
        this.decoder.push(chunk);
        for (let f = this.decoder.next(); f !== null && !this.closed; f = this.decoder.next()) this.onframe(f);
      } catch (e) {
        failure = e;
        socket.destroy();
      }
    });
    socket.on("error", (e) => { failure ??= e; });
    socket.on("close", () => this.finish(failure && wrap(failure)));
  }

  /** The protocol version frames are read in (1 until the Welcome chose one). */
  get version() {
    return this.decoder.version;
  }

  set version(v) {
    this.decoder.version = v;
  }

  send(bytes) {
    this.socket.write(bytes);
  }

  get buffered() {
    return this.socket.writableLength;
  }

  drained() {
    return new Promise((resolve) => {
      const done = () => {
        this.socket.off("drain", done);
        this.socket.off("close", done);
        resolve();
      };
      this.socket.once("drain", done);
      this.socket.once("close", done);
    });
  }

  close() {
    this.socket.destroy();
  }
}

class WebSocketTransport extends Transport {
  /** The protocol version frames are read in (1 until the Welcome chose one). */
  version = 1;

  constructor(ws, maxFrame) {
    super();
    this.ws = ws;
    let failure = null;
    ws.onmessage = (event) => {
      if (this.closed) return;
      try {
        const bytes = messageBytes(event.data);
        const decoded = decodeFrame(bytes, { version: this.version, maxSize: maxFrame });
        if (!decoded || decoded.size !== bytes.length) {
          throw new WireError("bad_length", `a WebSocket message of ${bytes.length} bytes is not exactly one frame`);
        }
        this.onframe(decoded.frame);
      } catch (e) {
        failure = e;
        ws.close(1002, "protocol error");
        this.finish(wrap(e));
      }
    };
    ws.onerror = (event) => { failure ??= event?.error ?? new Error("WebSocket error"); };
    ws.onclose = (event) => {
      this.finish(failure ? wrap(failure) : event && event.code !== 1000 && event.code !== 1005
        ? new ConnectionError(`WebSocket closed (${event.code}${event.reason ? ` ${event.reason}` : ""})`)
        : null);
    };
  }

  send(bytes) {
    this.ws.send(bytes);
  }

  get buffered() {
    return this.ws.bufferedAmount ?? 0;
  }

  drained() {
    // The WebSocket API has no drain event: look again shortly.
    return new Promise((resolve) => setTimeout(resolve, 5));
  }

  close() {
    try {
      this.ws.close(1000);
    } catch {
      // Closing a socket that never opened throws in some implementations.
    }
    this.finish(null);
  }
}

function messageBytes(data) {
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  throw new WireError("bad_length", "a text message is not part of the binary protocol");
}

function wrap(e) {
  return e instanceof WireError || e instanceof ConnectionError ? e : new ConnectionError(e?.message ?? String(e), { cause: e });
}

/** Opens a TCP (or TLS) connection: `{ host, port, tls? }`. */
export async function openTcp({ host = "127.0.0.1", port, tls = false }, { maxFrame, timeoutMs }) {
  const net = tls ? await import("node:tls") : await import("node:net");
  const options = tls ? { host, port, servername: host, ...(typeof tls === "object" ? tls : {}) } : { host, port };
  const socket = net.connect(options);
  socket.setNoDelay?.(true);
  await opened(socket, tls ? "secureConnect" : "connect", timeoutMs, () => socket.destroy());
  return new TcpTransport(socket, maxFrame);
}

/** Opens a WebSocket to `url` (…/socket/binary) with the given WebSocket class (browser global by default). */
export async function openWebSocket(url, { WebSocket: Impl = globalThis.WebSocket, maxFrame, timeoutMs }) {
  if (typeof Impl !== "function") {
    throw new TypeError("no WebSocket implementation: pass one as `WebSocket` (e.g. the `ws` package in Node)");
  }
  const ws = new Impl(url);
  ws.binaryType = "arraybuffer";
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => { fail(new ConnectionError(`no WebSocket connection within ${timeoutMs} ms`)); ws.close(); }, timeoutMs);
    const fail = (e) => { clearTimeout(timer); reject(e); };
    ws.onopen = () => { clearTimeout(timer); resolve(); };
    ws.onerror = (event) => fail(new ConnectionError(`WebSocket to ${url} failed: ${event?.message ?? event?.error?.message ?? "error"}`, { cause: event?.error }));
    ws.onclose = (event) => fail(new ConnectionError(`WebSocket to ${url} closed before it opened (${event?.code})`));
  });
  return new WebSocketTransport(ws, maxFrame);
}

function opened(emitter, event, timeoutMs, abort) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { abort(); reject(new ConnectionError(`no connection within ${timeoutMs} ms`)); }, timeoutMs);
    emitter.once(event, () => { clearTimeout(timer); emitter.off("error", onError); resolve(); });
    const onError = (e) => { clearTimeout(timer); reject(new ConnectionError(e.message, { cause: e })); };
    emitter.once("error", onError);
  });
}
