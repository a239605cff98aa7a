//! The frames the golden vectors were made from: every kind, with optional
//! fields both present and absent, non-ASCII text, and failure items; each
//! under the protocol version it is read and written in (version 1 for every
//! kind, version 2 for the layouts version 2 adds or changes).

use converger_protocol::*;

pub const TENANT: Id = *b"\x01\x90\xb6\xa4\x1c\x2d\x7e\x3f\x8a\x4b\x5c\x6d\x7e\x8f\x9a\x0b";
pub const CONV: Id = *b"\x01\x90\xb6\xa4\x1c\x2e\x71\x00\x80\x00\x00\x00\x00\x00\x00\x01";
pub const CONV2: Id = *b"\x01\x90\xb6\xa4\x1c\x2e\x71\x00\x80\x00\x00\x00\x00\x00\x00\x02";
pub const ACT1: Id = *b"\x01\x90\xb6\xa4\x20\x00\x70\x00\x90\x00\x00\x00\x00\x00\x00\x01";
pub const ACT2: Id = *b"\x01\x90\xb6\xa4\x20\x00\x70\x00\x90\x00\x00\x00\x00\x00\x00\x02";
pub const ACT3: Id = *b"\x01\x90\xb6\xa4\x20\x00\x70\x00\x90\x00\x00\x00\x00\x00\x00\x03";
pub const ACT4: Id = *b"\x01\x90\xb6\xa4\x20\x00\x70\x00\x90\x00\x00\x00\x00\x00\x00\x04";
pub const ACT5: Id = *b"\x01\x90\xb6\xa4\x20\x00\x70\x00\x90\x00\x00\x00\x00\x00\x00\x05";
pub const ACT6: Id = *b"\x01\x90\xb6\xa4\x20\x00\x70\x00\x90\x00\x00\x00\x00\x00\x00\x06";
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
        target_id: None,
        parent_id: None,
        state: None,
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
        target_id: None,
        parent_id: None,
        state: None,
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
        target_id: None,
        parent_id: None,
        traceparent: None,
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
        target_id: None,
        parent_id: None,
        traceparent: None,
    }
}

/// Version 2: the message of `full_activity`, edited, reacted to and replied to since.
pub fn edited_message() -> Activity {
    Activity {
        text: Some("héllo 👋, edited".into()),
        state: Some(MessageState {
            edited_at: Some(T0 + 3),
            deleted_at: None,
            reply_count: 1,
            reactions: vec![
                Reaction { emoji: "👍".into(), count: 2, me: true },
                Reaction { emoji: "🎉".into(), count: 1, me: false },
            ],
        }),
        ..full_activity()
    }
}

/// Version 2: a reply in the thread of `edited_message`, fresh.
pub fn reply_activity() -> Activity {
    Activity {
        id: ACT3,
        conversation_id: CONV,
        seq: 43,
        created_at: T0 + 2,
        kind: "message".into(),
        sender: "user-2".into(),
        text: Some("me too".into()),
        metadata: "{}".into(),
        parent_id: Some(ACT1),
        state: Some(MessageState::default()),
        ..Activity::default()
    }
}

/// Version 2: the edit of `full_activity`.
pub fn edit_activity() -> Activity {
    Activity {
        id: ACT4,
        conversation_id: CONV,
        seq: 44,
        created_at: T0 + 3,
        kind: "edit".into(),
        sender: "user-1".into(),
        text: Some("héllo 👋, edited".into()),
        metadata: "{}".into(),
        target_id: Some(ACT1),
        ..Activity::default()
    }
}

/// Version 2: a reaction to `full_activity` (the emoji is the text).
pub fn reaction_activity() -> Activity {
    Activity {
        id: ACT5,
        conversation_id: CONV,
        seq: 45,
        created_at: T0 + 4,
        kind: "reaction_add".into(),
        sender: "user-2".into(),
        text: Some("👍".into()),
        metadata: "{}".into(),
        target_id: Some(ACT1),
        ..Activity::default()
    }
}

/// Version 2: a deleted message: a tombstone without content.
pub fn deleted_message() -> Activity {
    Activity {
        id: ACT6,
        conversation_id: CONV,
        seq: 46,
        created_at: T0 + 5,
        kind: "message".into(),
        sender: "user-2".into(),
        metadata: "{}".into(),
        state: Some(MessageState { deleted_at: Some(T0 + 6), ..MessageState::default() }),
        ..Activity::default()
    }
}

/// Version 2 drafts: an edit, a reply and a reaction.
pub fn edit_draft() -> Draft {
    Draft {
        conversation_id: CONV,
        kind: "edit".into(),
        text: Some("héllo 👋, edited".into()),
        target_id: Some(ACT1),
        ..Draft::default()
    }
}

pub fn reply_draft() -> Draft {
    Draft {
        conversation_id: CONV,
        kind: "message".into(),
        sender: "user-2".into(),
        text: Some("me too".into()),
        idempotency_key: Some("req-8".into()),
        parent_id: Some(ACT1),
        ..Draft::default()
    }
}

pub fn reaction_draft() -> Draft {
    Draft {
        conversation_id: CONV,
        kind: "reaction_add".into(),
        text: Some("👍".into()),
        target_id: Some(ACT1),
        ..Draft::default()
    }
}

/// `(file, vector name, version, frame)` for every golden vector.
pub fn samples() -> Vec<(&'static str, &'static str, Version, Frame)> {
    let mut all: Vec<_> =
        v1_samples().into_iter().map(|(file, name, frame)| (file, name, Version::V1, frame)).collect();
    all.extend(v2_samples().into_iter().map(|(file, name, frame)| (file, name, Version::V2, frame)));
    all.extend(v3_samples().into_iter().map(|(file, name, frame)| (file, name, Version::V3, frame)));
    all
}

/// The W3C `traceparent` of the version-3 samples.
pub const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// What version 3 adds: a draft's `traceparent`.
fn v3_samples() -> Vec<(&'static str, &'static str, Frame)> {
    let traced = |d: Draft| Draft { traceparent: Some(TRACEPARENT.into()), ..d };
    vec![
        ("publish", "v3_traced", Publish { request_id: 30, activity: traced(reply_draft()) }.into()),
        (
            "publish_batch",
            "v3_traced_and_plain",
            PublishBatch { request_id: 31, activities: vec![traced(bare_draft()), edit_draft()] }.into(),
        ),
    ]
}

/// What version 2 adds or changes, and one unchanged layout under its header.
fn v2_samples() -> Vec<(&'static str, &'static str, Frame)> {
    let ephemeral = |kind: &str, data: &str| {
        Frame::from(Ephemeral {
            request_id: 0,
            conversation_id: CONV,
            kind: kind.into(),
            sender: "user-1".into(),
            data: data.into(),
        })
    };
    vec![
        ("ack", "v2_header", Ack { request_id: 3 }.into()),
        (
            "deliver",
            "v2_lifecycle",
            Deliver { activities: vec![edited_message(), reply_activity(), edit_activity(), reaction_activity()] }
                .into(),
        ),
        ("deliver", "v2_deleted_and_plain", Deliver { activities: vec![deleted_message(), bare_activity()] }.into()),
        ("ephemeral", "v2_receipt", ephemeral("receipt", r#"{"sender":"user-1","read_seq":41,"delivered_seq":43}"#)),
        ("ephemeral", "v2_user_online", ephemeral("user_online", r#"{"sender":"user-1"}"#)),
        (
            "ephemeral",
            "v2_user_offline",
            ephemeral("user_offline", r#"{"sender":"user-1","last_seen":"2024-07-01T12:00:00.123456Z"}"#),
        ),
        (
            "history_page",
            "v2_states",
            HistoryPage {
                request_id: 11,
                conversation_id: CONV,
                last_seq: 46,
                activities: vec![edited_message(), deleted_message()],
            }
            .into(),
        ),
        ("publish", "v2_edit", Publish { request_id: 20, activity: edit_draft() }.into()),
        ("publish", "v2_reply", Publish { request_id: 21, activity: reply_draft() }.into()),
        (
            "publish_batch",
            "v2_reaction_reply_plain",
            PublishBatch { request_id: 22, activities: vec![reaction_draft(), reply_draft(), bare_draft()] }.into(),
        ),
        (
            "receipt",
            "read_and_delivered",
            Receipt {
                request_id: 23,
                conversation_id: CONV,
                read_seq: Some(41),
                delivered_seq: Some(43),
                sender: "".into(),
            }
            .into(),
        ),
        (
            "receipt",
            "delivered_only_api_key",
            Receipt {
                request_id: 24,
                conversation_id: CONV2,
                read_seq: None,
                delivered_seq: Some(7),
                sender: "user-1".into(),
            }
            .into(),
        ),
    ]
}

/// Every kind of version 1.
fn v1_samples() -> Vec<(&'static str, &'static str, Frame)> {
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

/// `(name, version, hex, error name)`: bytes that must fail to decode on a
/// connection speaking `version`, and how.
pub fn invalid() -> Vec<(&'static str, Version, String, &'static str)> {
    let ping = |version: u8, kind: u8, flags: u16| {
        let mut b = vec![12, 0, 0, 0, version, kind, 0, 0];
        b[6..8].copy_from_slice(&flags.to_le_bytes());
        b.extend_from_slice(&[0; 8]);
        super::hex(&b)
    };
    let v1: Vec<(&'static str, String, &'static str)> = vec![
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
        // A Receipt (a version 2 kind) on a version 1 connection.
        ("receipt_in_version_1", receipt_v2_bytes(1), "unknown_kind"),
        // A version 2 Deliver read as version 1 (header patched to 1): the target_id bit is unknown there.
        ("activity_target_bit_in_version_1", v1_header(deliver_v2_bytes(edit_activity())), "invalid_value"),
        // A version 2 Publish of a reply read as version 1: the parent_id bit is unknown there.
        ("draft_parent_bit_in_version_1", v1_header(publish_v2_bytes(reply_draft())), "invalid_value"),
    ];
    let v2: Vec<(&'static str, String, &'static str)> = vec![
        // A version 1 header on a version 2 connection.
        ("version_1_frame_in_version_2", ping(1, 0x03, 0), "unsupported_version"),
        // Hello and Welcome always carry header version 1.
        ("hello_with_header_version_2", "0a00000002010000".to_owned() + "010103000000", "unsupported_version"),
        // Activity presence bit 0x40 is not defined.
        (
            "activity_unknown_bit_in_version_2",
            patch(deliver_v2_bytes(reply_activity()), 8 + 4 + 48, 0x40 | 0x01 | 0x10 | 0x20),
            "invalid_value",
        ),
        // A deleted message whose state byte has bit 0x04 set.
        (
            "state_unknown_bit",
            patch_from_end(deliver_v2_bytes(deleted_message()), 1 + 8 + 4 + 2, 0x06),
            "invalid_value",
        ),
        // A reaction whose `me` is 2.
        ("reaction_me_not_a_bool", patch_from_end(deliver_v2_bytes(edited_message()), 1, 2), "invalid_value"),
        // Draft presence bit 0x40 is not defined.
        (
            "draft_unknown_bit_in_version_2",
            patch(publish_v2_bytes(edit_draft()), 8 + 4 + 16, 0x01 | 0x10 | 0x40),
            "invalid_value",
        ),
    ];
    let tag = |version| move |(name, hex, error)| (name, version, hex, error);
    v1.into_iter().map(tag(Version::V1)).chain(v2.into_iter().map(tag(Version::V2))).collect()
}

fn encode_v2(frame: Frame) -> Vec<u8> {
    let mut buf = bytes::BytesMut::new();
    frame.encode(Version::V2, &mut buf).expect("a version 2 frame");
    buf.to_vec()
}

fn deliver_v2_bytes(a: Activity) -> Vec<u8> {
    encode_v2(Deliver { activities: vec![a] }.into())
}

fn publish_v2_bytes(d: Draft) -> Vec<u8> {
    encode_v2(Publish { request_id: 1, activity: d }.into())
}

fn receipt_v2_bytes(header_version: u8) -> String {
    let mut b =
        encode_v2(Receipt { request_id: 1, conversation_id: CONV, read_seq: Some(1), ..Receipt::default() }.into());
    b[4] = header_version;
    super::hex(&b)
}

fn v1_header(mut b: Vec<u8>) -> String {
    b[4] = 1;
    super::hex(&b)
}

fn patch(mut b: Vec<u8>, at: usize, value: u8) -> String {
    b[at] = value;
    super::hex(&b)
}

fn patch_from_end(mut b: Vec<u8>, back: usize, value: u8) -> String {
    let at = b.len() - back;
    b[at] = value;
    super::hex(&b)
}
