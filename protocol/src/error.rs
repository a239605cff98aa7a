//! [`WireError`]: every way bytes fail to be a frame (decode) or a frame fails
//! to fit its layout (encode). Typed and cheap: no allocation, so a fuzzer or a
//! hostile peer can provoke any of them without cost.
//!
//! A partial frame is *not* an error: [`crate::decode_frame`] answers
//! `Ok(None)` until the whole frame is buffered. `Truncated` means the frame was
//! complete but a field inside it ran past its end.

/// A frame that cannot be decoded or encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The length prefix announces a frame larger than the limit (checked from
    /// the first four bytes, before anything is buffered).
    #[error("frame of {size} bytes is over the limit of {max}")]
    FrameTooLarge { size: u64, max: u32 },
    /// The length prefix is smaller than the rest of the header.
    #[error("frame length {length} is shorter than the header")]
    BadLength { length: u32 },
    /// The header names a protocol version this codec does not speak.
    #[error("unsupported protocol version {0}")]
    UnsupportedVersion(u8),
    /// The header names no known frame kind.
    #[error("unknown frame kind 0x{0:02x}")]
    UnknownKind(u8),
    /// Flag bits that this kind does not define are set.
    #[error("unknown flags 0x{flags:04x} on frame kind 0x{kind:02x}")]
    UnknownFlags { kind: u8, flags: u16 },
    /// A field runs past the end of its frame.
    #[error("field `{field}` runs past the end of the frame")]
    Truncated { field: &'static str },
    /// The frame has bytes left over after its last field.
    #[error("{extra} bytes left over after the last field of frame kind 0x{kind:02x}")]
    TrailingBytes { kind: u8, extra: usize },
    /// A text field is not UTF-8.
    #[error("field `{field}` is not valid UTF-8")]
    InvalidUtf8 { field: &'static str },
    /// A field holds a value its layout does not allow (an unknown enum value,
    /// an unknown presence bit, a version range whose min is above its max…).
    #[error("field `{field}` is invalid: {reason}")]
    InvalidValue { field: &'static str, reason: &'static str },
    /// Encode only: a value is longer than its length prefix can say.
    #[error("field `{field}` is {len} bytes, over its limit of {max}")]
    TooLong { field: &'static str, len: usize, max: usize },
    /// Encode only: a frame kind or a field that the connection's protocol
    /// version does not have (a Receipt, or an activity's `target_id`, in
    /// version 1). Leave the field out for such a connection.
    #[error("`{field}` is not part of protocol version {version}")]
    NotInVersion { field: &'static str, version: u8 },
}

impl WireError {
    /// A stable snake_case name, used by the golden vectors of bad input
    /// (`testdata/invalid.json`) so every SDK can check it fails the same way.
    pub fn name(&self) -> &'static str {
        match self {
            WireError::FrameTooLarge { .. } => "frame_too_large",
            WireError::BadLength { .. } => "bad_length",
            WireError::UnsupportedVersion(_) => "unsupported_version",
            WireError::UnknownKind(_) => "unknown_kind",
            WireError::UnknownFlags { .. } => "unknown_flags",
            WireError::Truncated { .. } => "truncated",
            WireError::TrailingBytes { .. } => "trailing_bytes",
            WireError::InvalidUtf8 { .. } => "invalid_utf8",
            WireError::InvalidValue { .. } => "invalid_value",
            WireError::TooLong { .. } => "too_long",
            WireError::NotInVersion { .. } => "not_in_version",
        }
    }

    /// The catalogue code a peer answers this decode failure with before it
    /// closes the connection.
    pub fn code(&self) -> crate::ErrorCode {
        match self {
            WireError::FrameTooLarge { .. } => crate::ErrorCode::FrameTooLarge,
            WireError::UnsupportedVersion(_) => crate::ErrorCode::UnsupportedVersion,
            _ => crate::ErrorCode::BadFrame,
        }
    }
}
