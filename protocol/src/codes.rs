//! [`ErrorCode`]: the one catalogue of error codes. The server maps its errors
//! to these, the SDKs read them, and `docs/protocol.md` lists them (a test
//! fails when the doc's table and this one disagree).
//!
//! Each code has a number (carried by binary error frames and per-item
//! results), a stable snake_case name (the REST `{"error":{"code"}}` string), the
//! HTTP status REST answers with (none for codes only the binary protocol
//! uses) and a sentence saying when it happens. Numbers are grouped by area:
//! 1xxx protocol, 2xxx authentication, 3xxx request, 4xxx state, 5xxx capacity
//! and server. They are not HTTP statuses. Number 0 is never a code: per-item
//! results use it for success. A number or name, once published, never changes
//! meaning; duplicates fail the build (the `const` check below).

macro_rules! catalogue {
    ($( $variant:ident = $code:literal, $name:literal, $status:expr, $when:literal; )*) => {
        /// An error code of the catalogue.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[repr(u16)]
        pub enum ErrorCode {
            $( #[doc = $when] $variant = $code, )*
        }

        impl ErrorCode {
            /// Every code, in catalogue order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant),*];

            /// The number carried on the wire.
            pub const fn code(self) -> u16 {
                self as u16
            }

            /// The stable snake_case name.
            pub const fn name(self) -> &'static str {
                match self { $(ErrorCode::$variant => $name,)* }
            }

            /// The HTTP status REST answers with; `None` for codes only the
            /// binary protocol uses.
            pub const fn http_status(self) -> Option<u16> {
                match self { $(ErrorCode::$variant => $status,)* }
            }

            /// When the code is used.
            pub const fn description(self) -> &'static str {
                match self { $(ErrorCode::$variant => $when,)* }
            }

            /// The code with this number; `None` for a number this version does
            /// not know (a newer peer's: treat it by its thousands group).
            pub const fn from_code(code: u16) -> Option<ErrorCode> {
                match code { $($code => Some(ErrorCode::$variant),)* _ => None }
            }

            /// The code with this name.
            pub fn from_name(name: &str) -> Option<ErrorCode> {
                match name { $($name => Some(ErrorCode::$variant),)* _ => None }
            }
        }
    };
}

catalogue! {
    // 1xxx: the binary protocol itself. Each of these closes the connection.
    BadFrame = 1001, "bad_frame", None,
        "A frame does not decode (unknown kind or flags, bad length, bad UTF-8, a field past the end). The connection closes.";
    FrameTooLarge = 1002, "frame_too_large", None,
        "A frame is larger than the limit the receiver announced. The connection closes.";
    UnsupportedVersion = 1003, "unsupported_version", None,
        "Hello offers no protocol version the server speaks, or a frame's header names another version than the one negotiated. The connection closes.";
    UnexpectedFrame = 1004, "unexpected_frame", None,
        "A frame that is not allowed now: anything before Hello, a second Hello, a kind only the server sends. The connection closes.";
    HandshakeTimeout = 1005, "handshake_timeout", None,
        "No Hello arrived in time after the connection opened. The connection closes.";
    IdleTimeout = 1006, "idle_timeout", None,
        "Nothing arrived from the client for the idle timeout announced in Welcome. The connection closes.";
    SlowConsumer = 1007, "slow_consumer", None,
        "The connection's send queue overflowed: the client does not read fast enough. Queued frames are dropped, this error takes their place and the connection closes; reconnect and resume from the last seq seen.";
    TlsRequired = 1008, "tls_required", Some(400),
        "A plain (non-TLS) connection to a port that speaks TLS: the binary port answers this error and closes; plain HTTP on the HTTPS port gets it as a 400 (or a 308 to https:// with --tls-redirect).";

    // 2xxx: who is asking.
    Unauthorized = 2001, "unauthorized", Some(401),
        "Missing, unknown or malformed credentials; a bad or expired token.";
    TokenExpired = 2002, "token_expired", None,
        "The connection's client token expired and was not renewed with Reauth. The connection closes.";
    Forbidden = 2003, "forbidden", Some(403),
        "A valid credential that does not allow this: another conversation than the token's, another sender than the token's, a credential of the wrong kind.";
    TenantInactive = 2004, "tenant_inactive", Some(403),
        "The tenant is disabled.";
    ChannelInactive = 2005, "channel_inactive", Some(403),
        "The channel is disabled (REST answers 409 when a conversation is created on it, 403 to its secret).";
    AdminDisabled = 2006, "admin_disabled", Some(404),
        "Admin routes when no admin token is configured.";
    OriginNotAllowed = 2007, "origin_not_allowed", Some(403),
        "A browser Origin not in the server's --cors-origins: a CORS preflight, or a WebSocket upgrade.";
    NotAuthor = 2008, "not_author", Some(403),
        "A client token edits or deletes a message of another sender (the tenant's API key may act on any).";
    NotAMember = 2009, "not_a_member", Some(403),
        "The sender is not a member of the conversation: a receipt, or a token for a members-only conversation.";

    // 3xxx: the request is malformed or breaks a rule.
    BadRequest = 3001, "bad_request", Some(400),
        "A malformed HTTP request or query string.";
    InvalidJson = 3002, "invalid_json", Some(400),
        "A body or a JSON field that is not strict JSON (docs/api.md \"Strict JSON\").";
    InvalidParameter = 3003, "invalid_parameter", Some(400),
        "A query parameter does not parse.";
    ValidationFailed = 3004, "validation_failed", Some(422),
        "A field breaks a rule; the message names the field.";
    PayloadTooLarge = 3005, "payload_too_large", Some(413),
        "A body or an activity over the size limit.";
    UnsupportedMediaType = 3006, "unsupported_media_type", Some(415),
        "A non-empty body without a JSON Content-Type.";
    MethodNotAllowed = 3007, "method_not_allowed", Some(405),
        "The HTTP method is not allowed on this path.";

    // 4xxx: the request is well formed but the state refuses it.
    NotFound = 4001, "not_found", Some(404),
        "Unknown route, or an id that does not exist or belongs to another tenant.";
    Conflict = 4002, "conflict", Some(409),
        "A unique value already taken, or an operation that the object's state refuses.";
    ConversationClosed = 4003, "conversation_closed", Some(409),
        "Writing to, or subscribing to, a closed conversation.";
    InvalidReference = 4004, "invalid_reference", Some(422),
        "A reference to an object that cannot be used here.";
    AlreadySubscribed = 4005, "already_subscribed", None,
        "Subscribe names a conversation this connection is already subscribed to (unsubscribe first to move the resume point).";
    TooManySubscriptions = 4006, "too_many_subscriptions", None,
        "The connection already follows as many conversations as the server allows (--max-subscriptions-per-connection); unsubscribe first.";
    TargetNotFound = 4007, "target_not_found", Some(404),
        "`target_id` (or `parent_id`, named in the message) names no activity of this conversation.";
    InvalidTarget = 4008, "invalid_target", Some(422),
        "`target_id` names an activity that is not a message, or `parent_id` names a reply (threads are one level deep).";
    TargetDeleted = 4009, "target_deleted", Some(409),
        "`target_id` or `parent_id` names a deleted message.";
    ReactionNotFound = 4010, "reaction_not_found", Some(404),
        "A reaction_remove for a reaction the sender has not made.";
    Disconnected = 4011, "disconnected", None,
        "The integration ended this client's following of a conversation (POST /api/v1/conversations/{id}/disconnect); the message is its reason. Not a ban: the client may follow it again.";
    RejectedByHook = 4012, "rejected_by_hook", Some(422),
        "The channel's pre-publish hook refused the activity (its reason is the message), or could not be asked and the hook fails closed.";

    // 5xxx: capacity and the server.
    Overloaded = 5001, "overloaded", Some(503),
        "The write path's queues are full; retry shortly.";
    RateLimited = 5002, "rate_limited", Some(429),
        "Too many requests from this tenant or address; retry later.";
    ShuttingDown = 5003, "shutting_down", Some(503),
        "The server is stopping; on a binary connection this error closes it.";
    StorageUnavailable = 5004, "storage_unavailable", Some(503),
        "The database cannot be reached.";
    Internal = 5005, "internal", Some(500),
        "A bug; details go to the server log, never to the client.";
    TooManyConnections = 5006, "too_many_connections", Some(503),
        "The node, or the client's address, holds as many connections as allowed (--max-connections, --max-connections-per-ip); the connection is closed. Retry later.";
    StorageFull = 5007, "storage_full", Some(503),
        "The server's storage is full; the write was not stored. Retry after space is freed.";
}

/// True when no two entries share a number or a name.
const fn all_unique(all: &[ErrorCode]) -> bool {
    let mut i = 0;
    while i < all.len() {
        let mut j = i + 1;
        while j < all.len() {
            if all[i].code() == all[j].code() || str_eq(all[i].name(), all[j].name()) {
                return false;
            }
            j += 1;
        }
        i += 1;
    }
    true
}

const fn str_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

const _: () = assert!(all_unique(ErrorCode::ALL), "duplicate error code number or name in the catalogue");

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_names_look_each_other_up() {
        for &c in ErrorCode::ALL {
            assert_eq!(ErrorCode::from_code(c.code()), Some(c));
            assert_eq!(ErrorCode::from_name(c.name()), Some(c));
            assert_ne!(c.code(), 0, "0 means success in per-item results");
        }
        assert_eq!(ErrorCode::from_code(0), None);
        assert_eq!(ErrorCode::NotFound.to_string(), "not_found");
    }
}
