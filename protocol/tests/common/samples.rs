//! The frames the golden vectors were made from: every kind, with optional
//! fields both present and absent, non-ASCII text, and failure items.

use converger_protocol::*;

pub const TENANT: Id = *b"\x01\x90\xb6\xa4\x1c\x2d\x7e\x3f\x8a\x4b\x5c\x6d\x7e\x8f\x9a\x0b";
pub const CONV: Id = *b"\x01\x90\xb6\xa4\x1c\x2e\x71\x00\x80\x00\x00\x00\x00\x00\x00\x01";
pub const CONV2: Id = *b"\x01\x90\xb6\xa4\x1c\x2e\x71\x00\x80\x00\x00\x00\x00\x00\x00\x02";
pub const ACT1: Id = *b"\x01\x90\xb6\xa4\x20\x00\x70\x00\x90\x00\x00\x00\x00\x00\x00\x01";
pub const ACT2: Id = *b"\x01\x90\xb6\xa4\x20\x00\x70\x00\x90\x00\x00\x00\x00\x00\x00\x02";
/// 2024-07-01T12:00:00.123456Z in unix microseconds.
pub const T0: i64 = 1_719_835_200_123_456;

pub fn full_activity() -> Activity {
    Activity {
        id: ACT1,
        conversation_id: CONV,
        seq: 41,
        created_at: T0,
        kind: "message".into(),
        sender: "user-1".into(),
        text: Some("héllo 👋".into()),
        attachments: Some(r#"[{"contentType":"image/png","contentUrl":"https://example.com/a.png"}]"#.into()),
        metadata: r#"{"lang":"fr"}"#.into(),
        idempotency_key: Some("k-41".into()),
    }
}

pub fn bare_activity() -> Activity {
    Activity {
        id: ACT2,
        conversation_id: CONV,
        seq: 42,
        created_at: T0 + 1,
        kind: "event".into(),
        sender: "bot".into(),
        text: None,
        attachments: None,
        metadata: "{}".into(),
        idempotency_key: None,
    }
}

pub fn full_draft() -> Draft {
    Draft {
        conversation_id: CONV,
        kind: "message".into(),
        sender: "".into(),
        text: Some("hi".into()),
        attachments: Some(r#"[{"name":"a.txt"}]"#.into()),
        metadata: Some(r#"{"k":1}"#.into()),
        idempotency_key: Some("req-7".into()),
    }
}

pub fn bare_draft() -> Draft {
    Draft {
        conversation_id: CONV2,
        kind: "event".into(),
        sender: "billing-service".into(),
        text: None,
        attachments: None,
        metadata: None,
        idempotency_key: None,
    }
}

/// `(file, vector name, frame)` for every golden vector.
pub fn samples() -> Vec<(&'static str, &'static str, Frame)> {
    let written = Written { activity_id: ACT1, seq: 41, created_at: T0, replayed: false };
    vec![
        (
            "hello",
            "token",
            Hello {
                min_version: 1,
                max_version: 1,
                auth: Auth::Token("eyJ.eyJ.sig".into()),
                client: "converger-rust/0.1.0".into(),
            }
            .into(),
        ),
        (
            "hello",
            "api_key_version_range",
            Hello { min_version: 1, max_version: 3, auth: Auth::ApiKey("cvg_abc".into()), client: "".into() }.into(),
        ),
        (
            "welcome",
            "token_client",
            Welcome {
                version: 1,
                idle_timeout_secs: 60,
                max_frame: MAX_FRAME_SIZE,
                send_queue_bytes: 4 * 1024 * 1024,
                tenant_id: TENANT,
                conversation_id: Some(CONV),
                expires_at: T0 + 3_600_000_000,
                sender: "user-1".into(),
                server: "converger/0.1.0".into(),
            }
            .into(),
        ),
        (
            "welcome",
            "api_key_client",
            Welcome {
                version: 1,
                idle_timeout_secs: 60,
                max_frame: 1024 * 1024,
                send_queue_bytes: 8 * 1024 * 1024,
                tenant_id: TENANT,
                conversation_id: None,
                expires_at: 0,
                sender: "".into(),
                server: "converger/0.1.0".into(),
            }
            .into(),
        ),
        ("ping", "ping", Ping { payload: 0x0102_0304_0506_0708 }.into()),
        ("pong", "pong", Pong { payload: 0x0102_0304_0506_0708 }.into()),
        ("error", "request_failed", ErrorFrame::new(7, ErrorCode::NotFound, "conversation not found").into()),
        (
            "error",
            "slow_consumer_closes",
            ErrorFrame::new(0, ErrorCode::SlowConsumer, "send queue over 4194304 bytes").closing().into(),
        ),
        (
            "error",
            "unknown_code_kept",
            ErrorFrame { request_id: 9, code: 9999, message: "from a newer server".into(), close: false }.into(),
        ),
        ("ack", "ack", Ack { request_id: 3 }.into()),
        ("reauth", "reauth", Reauth { request_id: 4, token: "eyJ.new.sig".into() }.into()),
        (
            "subscribe",
            "resume_two_and_live_one",
            Subscribe {
                request_id: 1,
                items: vec![
                    SubscribeItem { conversation_id: CONV, after_seq: 40 },
                    SubscribeItem { conversation_id: CONV2, after_seq: 0 },
                    SubscribeItem { conversation_id: TENANT, after_seq: LIVE_ONLY },
                ],
            }
            .into(),
        ),
        (
            "subscribed",
            "one_ok_one_failed",
            Subscribed {
                request_id: 1,
                items: vec![
                    SubscribedItem { conversation_id: CONV, result: Ok(42) },
                    SubscribedItem {
                        conversation_id: CONV2,
                        result: Err(Failure::new(ErrorCode::Forbidden, "token is for another conversation")),
                    },
                ],
            }
            .into(),
        ),
        ("unsubscribe", "two", Unsubscribe { request_id: 2, conversation_ids: vec![CONV, CONV2] }.into()),
        ("publish", "all_fields", Publish { request_id: 5, activity: full_draft() }.into()),
        ("publish", "no_optional_fields", Publish { request_id: 6, activity: bare_draft() }.into()),
        ("publish_ack", "new", PublishAck { request_id: 5, written }.into()),
        (
            "publish_ack",
            "replayed",
            PublishAck { request_id: 8, written: Written { replayed: true, ..written } }.into(),
        ),
        ("publish_batch", "two", PublishBatch { request_id: 10, activities: vec![full_draft(), bare_draft()] }.into()),
        (
            "publish_batch_ack",
            "one_written_one_failed",
            PublishBatchAck {
                request_id: 10,
                items: vec![Ok(written), Err(Failure::new(ErrorCode::ConversationClosed, "conversation is closed"))],
            }
            .into(),
        ),
        ("deliver", "two_activities", Deliver { activities: vec![full_activity(), bare_activity()] }.into()),
        ("deliver", "empty", Deliver { activities: vec![] }.into()),
        (
            "ephemeral",
            "typing",
            Ephemeral {
                request_id: 0,
                conversation_id: CONV,
                kind: "typing".into(),
                sender: "user-1".into(),
                data: r#"{"typing":true}"#.into(),
            }
            .into(),
        ),
        (
            "history",
            "bounded",
            History { request_id: 11, conversation_id: CONV, after_seq: 40, until_seq: Some(42), limit: 100 }.into(),
        ),
        (
            "history",
            "open_ended",
            History { request_id: 12, conversation_id: CONV, after_seq: 0, until_seq: None, limit: 1000 }.into(),
        ),
        (
            "history_page",
            "two",
            HistoryPage {
                request_id: 11,
                conversation_id: CONV,
                last_seq: 42,
                activities: vec![full_activity(), bare_activity()],
            }
            .into(),
        ),
    ]
}

/// `(name, hex, error name)`: bytes that must fail to decode, and how.
pub fn invalid() -> Vec<(&'static str, String, &'static str)> {
    let ping = |version: u8, kind: u8, flags: u16| {
        let mut b = vec![12, 0, 0, 0, version, kind, 0, 0];
        b[6..8].copy_from_slice(&flags.to_le_bytes());
        b.extend_from_slice(&[0; 8]);
        super::hex(&b)
    };
    vec![
        ("unknown_kind", ping(1, 0x7f, 0), "unknown_kind"),
        ("unsupported_version", ping(2, 0x03, 0), "unsupported_version"),
        ("version_zero", ping(0, 0x03, 0), "unsupported_version"),
        ("unknown_flag_on_ping", ping(1, 0x03, 1), "unknown_flags"),
        ("unknown_flag_on_error", "0c0000000105020007000000010000".to_owned() + "00", "unknown_flags"),
        // 16 MiB + 1: refused from the length alone.
        ("oversize_length", "fdffff00".into(), "frame_too_large"),
        ("length_below_header", "03000000010300".into(), "bad_length"),
        // Ping body of 9 bytes: one byte left over.
        ("trailing_byte", "0d00000001030000010203040506070800".into(), "trailing_bytes"),
        // Ack body of 2 bytes: request_id runs past the frame.
        ("field_past_frame_end", "06000000010600000100".into(), "truncated"),
        // Reauth token of 2 bytes 0xff 0xfe.
        ("bad_utf8", "0c0000000107000004000000".to_owned() + "0200fffe", "invalid_utf8"),
        // Hello with min_version 2 > max_version 1.
        ("hello_min_above_max", "0a00000001010000".to_owned() + "020101000000", "invalid_value"),
        // Hello with auth kind 3.
        ("hello_unknown_auth", "0a00000001010000".to_owned() + "010103000000", "invalid_value"),
        // Unsubscribe claiming 0xffffffff ids in a 0-byte remainder.
        ("count_past_frame_end", "0c00000001120000".to_owned() + "01000000ffffffff", "truncated"),
        // Error frame with code 0.
        ("error_code_zero", "0c000000010500000100000000000000".into(), "invalid_value"),
    ]
}
