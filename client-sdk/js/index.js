// @converger/client: the JavaScript SDK of Converger's binary protocol.
// The client (connect, publish, subscribe with resume, history, typing, …),
// the pure codec, and the error catalogue. Types: index.d.ts.
export { Client, CLIENT_NAME, connect } from "./src/client.js";
export { Subscription } from "./src/subscription.js";
export {
  decodeFrame, encodeFrame, FLAG_CLOSE, FrameDecoder, HEADER_SIZE, Kind, LIVE_ONLY, MAX_FRAME_SIZE, MAX_VERSION,
  MIN_VERSION, peekHeader, uuidFromBytes, uuidToBytes, WireError,
} from "./src/codec.js";
export {
  ConnectionError, ConvergerError, ERROR_CATALOGUE, ErrorCode, errorGroup, errorName,
} from "./src/errors.js";
