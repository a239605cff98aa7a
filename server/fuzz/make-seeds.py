#!/usr/bin/env python3
"""Writes the fuzz targets' seed inputs (server/fuzz/seeds/, protocol/fuzz/seeds/).

Seeds start each run from well-formed inputs, so the fuzzer spends its time
near the accepting paths instead of rediscovering the request line or a
signature header. They are generated (run this again after changing a
target's input layout) from the protocol's golden vectors, INTEROP.md's
provider payloads and requests as clients send them; scripts/fuzz copies them
into a throwaway corpus, so a run never writes here.
"""

import base64
import hashlib
import hmac
import json
import os
import shutil
import struct
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SERVER = ROOT / "server" / "fuzz" / "seeds"
PROTOCOL = ROOT / "protocol" / "fuzz" / "seeds"


def write(base, target, items):
    d = base / target
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    for i, data in enumerate(items):
        (d / f"seed-{i:02}").write_bytes(data if isinstance(data, bytes) else data.encode())


def split_byte(b):
    """The first byte of the split-at targets: 0x80 splits in the middle."""
    return bytes([b])


# --- HTTP requests -----------------------------------------------------------
requests = [
    b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    b"GET /api/v1/conversations/0190f0f0-0000-7000-8000-000000000001/activities?after_seq=3&limit=50 HTTP/1.1\r\n"
    b"Host: x\r\nAuthorization: Bearer cvk_test\r\nAccept: application/json\r\n\r\n",
    b'POST /api/v1/conversations/c/activities HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n'
    b'Idempotency-Key: k-1\r\nContent-Length: 31\r\n\r\n{"type":"message","text":"hi!"}',
    b"POST /api/v1/channels HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    b'5;ext=1\r\n{"a":\r\n3\r\n"b"\r\n1\r\n}\r\n0\r\nTrailer: t\r\n\r\n',
    b"GET /socket/websocket?vsn=2.0.0 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /a HTTP/1.1\r\nHost: x\r\n\r\n",
    b"POST /x HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n{}",
]
write(SERVER, "http_parse", [split_byte(b) + r for b, r in zip([0x80, 0x10, 0xF0, 0x40, 0x80, 0xC0, 0x20], requests)])


# --- WebSocket frames (client frames are masked) ---------------------------------
def ws_frame(opcode, payload, fin=True, mask=b"\x01\x02\x03\x04"):
    head = bytes([(0x80 if fin else 0) | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack(">H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack(">Q", n)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + masked


phx_join = b'["1","1","conversation:0190f0f0-0000-7000-8000-000000000001","phx_join",{"last_seq":0}]'
write(SERVER, "ws_frame", [
    split_byte(0x80) + ws_frame(1, phx_join),
    split_byte(0x40) + ws_frame(2, b"\x00\x01binary"),
    split_byte(0x80) + ws_frame(9, b"ping") + ws_frame(10, b"pong"),
    split_byte(0x20) + ws_frame(1, b"hel", fin=False) + ws_frame(9, b"") + ws_frame(0, b"lo"),
    split_byte(0x80) + ws_frame(1, b"x" * 300),
    split_byte(0xF0) + ws_frame(8, struct.pack(">H", 1000) + b"bye"),
])

# --- Phoenix V2 messages ---------------------------------------------------------
write(SERVER, "phoenix_decode", [
    phx_join,
    b'[null,"2","phoenix","heartbeat",{}]',
    b'["1","3","conversation:c","activity:create",{"type":"message","text":"hello","idempotency_key":"k1"}]',
    b'["1","4","conversation:c","typing",{"state":"start"}]',
    b'["1","5","conversation:c","phx_leave",{}]',
    b'["1","6","conversation:c","reaction:add",{"target_seq":3,"key":"\\u2764"}]',
    # Binary V2 push: kind 0 push, join_ref/ref/topic/event lengths, then the payload.
    bytes([0, 1, 1, 14, 4]) + b"1" + b"7" + b"conversation:c" + b"blob" + b"\x00\x01\x02",
])


# --- JWTs --------------------------------------------------------------------------
def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def jwt(claims, key=b"fuzz-secret-fuzz-secret-fuzz-secret!", alg="HS256"):
    signing = b64(json.dumps({"alg": alg, "typ": "JWT"}).encode()) + b"." + b64(json.dumps(claims).encode())
    return signing + b"." + b64(hmac.new(key, signing, hashlib.sha256).digest())


claims = {"sub": "user-1", "tid": "0190f0f0-0000-7000-8000-000000000001", "exp": 1_900_000_000, "iat": 1_799_990_000}
write(SERVER, "jwt", [
    jwt(claims),
    jwt(dict(claims, exp=1_700_000_000)),
    jwt(claims, key=b"another key"),
    jwt(claims, alg="none"),
    json.dumps(claims).encode(),
])

# --- Inbound adapters: mode byte, a line, then the body ---------------------------------
webhook_body = json.dumps({"type": "message", "text": "hello", "from": {"id": "u1", "name": "Ann"},
                           "conversation": {"id": "ext-1"}, "id": "m-1"}).encode()
write(SERVER, "inbound_webhook", [bytes([m]) + b"msg_2a\n" + webhook_body for m in range(4)]
      + [b"\x03v1,AAAA\n" + webhook_body])

meta_body = json.dumps({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
    "messaging_product": "whatsapp",
    "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
    "contacts": [{"profile": {"name": "Sheena Nelson"}, "wa_id": "16505551234"}],
    "messages": [{"from": "16505551234", "id": "wamid.HBgL1", "timestamp": "1749416383", "type": "text",
                  "text": {"body": "Does it come in another color?"}}],
    "statuses": [{"id": "wamid.HBgL0", "status": "delivered", "timestamp": "1749416390", "recipient_id": "16505551234"}],
}}]}]}).encode()
meta_sig = b"sha256=" + hmac.new(b"It's a Secret to Everybody", meta_body, hashlib.sha256).hexdigest().encode()
write(SERVER, "inbound_meta", [
    b"\x00hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=let-me-in\n",
    b"\x01" + meta_sig + b"\n" + meta_body,
    b"\x02\n" + meta_body,
    b"\x03cvs_fuzz-channel-secret\n" + meta_body,
])

infobip_body = json.dumps({"results": [{"from": "385919998888", "to": "1234", "integrationType": "WHATSAPP",
                                        "receivedAt": "2019-07-19T11:23:26.998+0000", "messageId": "ABEGOFl3",
                                        "message": {"type": "TEXT", "text": "Support hello"},
                                        "contact": {"name": "Frank"}}],
                           "messageCount": 1, "pendingMessageCount": 0}).encode()
infobip_report = json.dumps({"results": [{"messageId": "m1", "to": "385919998888", "sentAt": "2019-07-19T11:23:27.000+0000",
                                          "doneAt": "2019-07-19T11:23:28.000+0000",
                                          "status": {"groupName": "DELIVERED", "name": "DELIVERED_TO_HANDSET"},
                                          "error": {"groupName": "OK", "permanent": False}}]}).encode()
write(SERVER, "inbound_infobip", [bytes([m]) + b"cvs_fuzz-channel-secret\n" + infobip_body for m in range(4)]
      + [b"\x00\n" + infobip_report])

write(SERVER, "config_toml", [
    'http_addr = "127.0.0.1:4000"\ndata_dir = "/var/lib/converger"\nshards = 2\nlog = "info"\n',
    'binary_addr = "[::1]:4001"\nadmin_allow = ["127.0.0.1/32", "::1"]\ncors_origins = ["https://a.example"]\n'
    'ws_send_queue_bytes = 1048576\ndelivery_allow_private = true\nio_driver = "legacy"\nlog_format = "json"\n',
    'database_url = "postgres://u@127.0.0.1/db"\nnats_url = "nats://127.0.0.1:4222"\nnode_id = "n1"\n'
    'max_connections = 10000\ntenant_requests_per_second = 100\n',
    'shards = "two"\n',
    'unknown_key = 1\n',
])

# --- Binary protocol: every golden vector's frame, whole and as split seeds ----------------------
frames = []
for path in sorted((ROOT / "protocol" / "testdata").glob("*.json")):
    for vector in json.loads(path.read_text()).get("vectors", []):
        if "hex" in vector:
            frames.append(bytes.fromhex(vector["hex"]))
write(PROTOCOL, "decode_frame", frames)
write(PROTOCOL, "roundtrip", frames)
write(PROTOCOL, "stream_split", [bytes([0x80]) + a + b for a, b in zip(frames, frames[1:] + frames[:1])])
# Records: the bytes after each frame's 8-byte header (a publish's draft, a deliver's activity).
write(PROTOCOL, "records", [f[8:] for f in frames if len(f) > 8])

print(f"seeds written: {sum(1 for _ in SERVER.rglob('seed-*'))} server, {sum(1 for _ in PROTOCOL.rglob('seed-*'))} protocol")
