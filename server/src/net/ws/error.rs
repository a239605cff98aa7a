//! Why a WebSocket connection is being closed, as a typed error that knows its
//! close code (RFC 6455 §7.4.1), so every refusal reaches the client as a
//! close frame with a code and a reason, never as a dropped socket.

/// Close codes this server sends.
pub mod code {
    pub const NORMAL: u16 = 1000;
    pub const GOING_AWAY: u16 = 1001;
    pub const PROTOCOL: u16 = 1002;
    pub const UNSUPPORTED: u16 = 1003;
    pub const INVALID_DATA: u16 = 1007;
    pub const POLICY: u16 = 1008;
    pub const TOO_BIG: u16 = 1009;
    pub const INTERNAL: u16 = 1011;
}

/// A client frame or message the codec refuses.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WsError {
    #[error("frame from the client is not masked")]
    Unmasked,
    #[error("reserved bits are set and no extension was negotiated")]
    Reserved,
    #[error("unknown opcode {0:#x}")]
    Opcode(u8),
    #[error("control frame longer than 125 bytes")]
    ControlTooLong,
    #[error("control frame is fragmented")]
    FragmentedControl,
    #[error("continuation frame without a message to continue")]
    StrayContinuation,
    #[error("new message started before the fragmented one ended")]
    Interleaved,
    #[error("64-bit frame length has its most significant bit set")]
    LengthOverflow,
    #[error("invalid close frame: {0}")]
    BadClose(&'static str),
    #[error("text is not valid UTF-8")]
    InvalidUtf8,
    #[error("a fragmented message has more than the allowed frames")]
    TooManyFragments,
    #[error("a fragmented message took longer than allowed to complete")]
    FragmentsTooSlow,
    #[error("message of {size} bytes exceeds the limit of {limit}")]
    TooBig { size: u64, limit: usize },
}

impl WsError {
    /// The close code the server sends for this error.
    pub fn close_code(&self) -> u16 {
        match self {
            WsError::InvalidUtf8 => code::INVALID_DATA,
            WsError::TooBig { .. } => code::TOO_BIG,
            WsError::TooManyFragments | WsError::FragmentsTooSlow => code::POLICY,
            _ => code::PROTOCOL,
        }
    }

    /// A short reason for the close frame (at most 123 bytes, as the frame
    /// allows), without numbers that would differ per connection.
    pub fn close_reason(&self) -> &'static str {
        match self {
            WsError::InvalidUtf8 => "invalid utf-8",
            WsError::TooBig { .. } => "message too big",
            WsError::TooManyFragments => "too many fragments",
            WsError::FragmentsTooSlow => "fragmented message too slow",
            _ => "protocol error",
        }
    }
}
