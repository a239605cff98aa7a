//! The handshake: [`Hello`] (client: versions offered and credentials),
//! [`Welcome`] (server: version chosen, limits, who the connection is), and
//! [`Reauth`] (client: a fresh token on a live connection).
//!
//! Hello and Welcome keep these layouts in every protocol version and always
//! travel with header version 1, so any server can read any client's first
//! frame and answer it.

use bytes::{BufMut, BytesMut};

use crate::frame::{Body, Kind};
use crate::wire::{put_str, str_size, Id, Len, Reader};
use crate::{Version, WireError};

/// How a connection authenticates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Auth {
    /// A client token (JWT) from `POST /api/v1/tokens`: one conversation, one sender.
    Token(String),
    /// A tenant API key (server-to-server): any conversation of the tenant, any sender.
    ApiKey(String),
}

impl Auth {
    pub const TOKEN: u8 = 1;
    pub const API_KEY: u8 = 2;

    fn tag(&self) -> u8 {
        match self {
            Auth::Token(_) => Auth::TOKEN,
            Auth::ApiKey(_) => Auth::API_KEY,
        }
    }

    pub fn credential(&self) -> &str {
        match self {
            Auth::Token(s) | Auth::ApiKey(s) => s,
        }
    }
}

/// Client → server, the first frame of every connection.
///
/// | size | field | notes |
/// | --- | --- | --- |
/// | 1 | `min_version` u8 | lowest version the client speaks |
/// | 1 | `max_version` u8 | highest; must be ≥ `min_version` |
/// | 1 | `auth` u8 | 1 = client token (JWT), 2 = tenant API key |
/// | 2 + n | `credential` | u16 length + UTF-8 |
/// | 1 + n | `client` | u8 length + UTF-8: name/version for logs, may be empty |
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hello {
    pub min_version: u8,
    pub max_version: u8,
    pub auth: Auth,
    pub client: String,
}

impl Body for Hello {
    const KIND: Kind = Kind::Hello;

    fn encoded_size(&self, _: Version) -> usize {
        3 + str_size(self.auth.credential(), Len::U16) + str_size(&self.client, Len::U8)
    }

    fn encode(&self, _: Version, buf: &mut BytesMut) -> Result<(), WireError> {
        buf.put_u8(self.min_version);
        buf.put_u8(self.max_version);
        buf.put_u8(self.auth.tag());
        put_str(buf, self.auth.credential(), Len::U16, "credential")?;
        put_str(buf, &self.client, Len::U8, "client")
    }

    fn decode(body: &[u8], _: Version) -> Result<(Hello, usize), WireError> {
        let mut r = Reader::new(body);
        let min_version = r.u8("min_version")?;
        let max_version = r.u8("max_version")?;
        if min_version > max_version {
            return Err(WireError::InvalidValue { field: "max_version", reason: "below min_version" });
        }
        let tag = r.u8("auth")?;
        let credential = r.str(Len::U16, "credential")?;
        let auth = match tag {
            Auth::TOKEN => Auth::Token(credential),
            Auth::API_KEY => Auth::ApiKey(credential),
            _ => return Err(WireError::InvalidValue { field: "auth", reason: "unknown auth kind" }),
        };
        let client = r.str(Len::U8, "client")?;
        Ok((Hello { min_version, max_version, auth, client }, r.position()))
    }
}

/// Server → client: the handshake succeeded.
///
/// | size | field | notes |
/// | --- | --- | --- |
/// | 1 | `version` u8 | the version chosen: the highest both speak |
/// | 2 | `idle_timeout_secs` u16 | the server closes a connection silent this long; ping at a third of it |
/// | 4 | `max_frame` u32 | largest frame (header included) the server accepts |
/// | 4 | `send_queue_bytes` u32 | the server's send-queue bound for this connection (flow control) |
/// | 16 | `tenant_id` | UUID bytes |
/// | 16 | `conversation_id` | the token's conversation; 16 zero bytes = every conversation of the tenant (API key) |
/// | 8 | `expires_at` i64 | unix microseconds when the credential expires; 0 = never (API key) |
/// | 2 + n | `sender` | u16 length + UTF-8: the token's sender; empty for an API key |
/// | 1 + n | `server` | u8 length + UTF-8: name/version |
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Welcome {
    pub version: u8,
    pub idle_timeout_secs: u16,
    pub max_frame: u32,
    pub send_queue_bytes: u32,
    pub tenant_id: Id,
    /// `None` on the wire is 16 zero bytes.
    pub conversation_id: Option<Id>,
    pub expires_at: i64,
    pub sender: String,
    pub server: String,
}

impl Body for Welcome {
    const KIND: Kind = Kind::Welcome;

    fn encoded_size(&self, _: Version) -> usize {
        1 + 2 + 4 + 4 + 16 + 16 + 8 + str_size(&self.sender, Len::U16) + str_size(&self.server, Len::U8)
    }

    fn encode(&self, _: Version, buf: &mut BytesMut) -> Result<(), WireError> {
        buf.put_u8(self.version);
        buf.put_u16_le(self.idle_timeout_secs);
        buf.put_u32_le(self.max_frame);
        buf.put_u32_le(self.send_queue_bytes);
        buf.put_slice(&self.tenant_id);
        buf.put_slice(&self.conversation_id.unwrap_or([0; 16]));
        buf.put_i64_le(self.expires_at);
        put_str(buf, &self.sender, Len::U16, "sender")?;
        put_str(buf, &self.server, Len::U8, "server")
    }

    fn decode(body: &[u8], _: Version) -> Result<(Welcome, usize), WireError> {
        let mut r = Reader::new(body);
        let w = Welcome {
            version: r.u8("version")?,
            idle_timeout_secs: r.u16("idle_timeout_secs")?,
            max_frame: r.u32("max_frame")?,
            send_queue_bytes: r.u32("send_queue_bytes")?,
            tenant_id: r.id("tenant_id")?,
            conversation_id: Some(r.id("conversation_id")?).filter(|id| *id != [0; 16]),
            expires_at: r.i64("expires_at")?,
            sender: r.str(Len::U16, "sender")?,
            server: r.str(Len::U8, "server")?,
        };
        if w.version == 0 {
            return Err(WireError::InvalidValue { field: "version", reason: "version 0 does not exist" });
        }
        Ok((w, r.position()))
    }
}

/// Client → server: replaces the connection's client token before it expires.
/// The new token must name the same tenant, conversation and sender; the
/// server answers Ack (the new `exp` applies) or Error `unauthorized` /
/// `forbidden` (the old token stays in force).
///
/// | size | field | notes |
/// | --- | --- | --- |
/// | 4 | `request_id` u32 | echoed by the answer |
/// | 2 + n | `token` | u16 length + UTF-8 |
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reauth {
    pub request_id: u32,
    pub token: String,
}

impl Body for Reauth {
    const KIND: Kind = Kind::Reauth;

    fn encoded_size(&self, _: Version) -> usize {
        4 + str_size(&self.token, Len::U16)
    }

    fn encode(&self, _: Version, buf: &mut BytesMut) -> Result<(), WireError> {
        buf.put_u32_le(self.request_id);
        put_str(buf, &self.token, Len::U16, "token")
    }

    fn decode(body: &[u8], _: Version) -> Result<(Reauth, usize), WireError> {
        let mut r = Reader::new(body);
        let request_id = r.u32("request_id")?;
        let token = r.str(Len::U16, "token")?;
        Ok((Reauth { request_id, token }, r.position()))
    }
}
