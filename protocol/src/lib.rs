//! The Converger binary protocol: a pure codec (no I/O, no async, no runtime)
//! shared by the server and the SDKs, and the error-code catalogue every
//! transport and SDK uses. The byte layouts are written down in
//! `docs/protocol.md` and pinned by the golden vectors in `testdata/`.
//!
//! - Versions: a connection speaks one [`Version`] (negotiated by Hello and
//!   Welcome); every encode and decode takes it, and a version-1 codec sees
//!   exactly the version-1 protocol.
//! - Encode: [`Frame::encode`] (or [`Body::encode_frame`] on one body type)
//!   appends a whole frame to a `BytesMut`; [`Frame::encoded_size`] says how
//!   many bytes it takes.
//! - Decode: [`decode_frame`] reads the frame at the start of a buffer and
//!   answers `Ok(None)` while the frame is incomplete, so a reader appends
//!   what the socket gave and calls again; the frame's size is checked against
//!   the limit from its first four bytes.
//! - Malformed input answers a typed [`WireError`], never a panic.
//!
//! ```
//! use bytes::BytesMut;
//! use converger_protocol::{decode_frame, Body, Frame, Ping, Version};
//!
//! // Encode two frames into one buffer…
//! let mut out = BytesMut::new();
//! Ping { payload: 1 }.encode_frame(Version::V2, &mut out).unwrap();
//! Ping { payload: 2 }.encode_frame(Version::V2, &mut out).unwrap();
//!
//! // …and read them back as a socket might deliver them: in pieces.
//! let (mut buf, mut frames) = (Vec::new(), Vec::new());
//! for piece in out.chunks(5) {
//!     buf.extend_from_slice(piece);
//!     while let Some((frame, used)) = decode_frame(&buf, Version::V2).expect("a valid stream") {
//!         frames.push(frame);
//!         buf.drain(..used);
//!     }
//! }
//! assert_eq!(frames, [Frame::Ping(Ping { payload: 1 }), Frame::Ping(Ping { payload: 2 })]);
//! ```

#![forbid(unsafe_code)]

pub mod activity;
pub mod codes;
pub mod control;
pub mod deliver;
pub mod draft;
pub mod ephemeral;
pub mod error;
pub mod frame;
pub mod hello;
pub mod history;
pub mod publish;
pub mod receipt;
pub mod subscribe;
pub mod version;
pub mod wire;

pub use activity::{Activity, MessageState, Reaction};
pub use codes::ErrorCode;
pub use control::{Ack, ErrorFrame, Failure, Ping, Pong};
pub use deliver::{put_deliver_prefix, Deliver, DELIVER_PREFIX_SIZE};
pub use draft::Draft;
pub use ephemeral::Ephemeral;
pub use error::WireError;
pub use frame::{
    decode_frame, decode_frame_with_limit, Body, Frame, Header, Kind, FLAG_CLOSE, HEADER_SIZE, MAX_FRAME_SIZE,
};
pub use hello::{Auth, Hello, Reauth, Welcome};
pub use history::{History, HistoryPage};
pub use publish::{Publish, PublishAck, PublishBatch, PublishBatchAck, Written};
pub use receipt::Receipt;
pub use subscribe::{Subscribe, SubscribeItem, Subscribed, SubscribedItem, Unsubscribe, LIVE_ONLY};
pub use version::Version;
pub use wire::Id;
