// The SDK's values, between the codec's wire records and what the client
// takes in or hands out (as types.rs does in the Rust SDK): drafts in;
// activities, write results and ephemeral events out. JSON fields travel as
// text: callers may give a value or its text, and get parsed values back.

export const json = (v) => (v === null || v === undefined ? null : typeof v === "string" ? v : JSON.stringify(v));

export function parseJson(text) {
  if (text === null) return null;
  try {
    return JSON.parse(text);
  } catch {
    return text; // the server validates JSON before storing it; kept raw just in case
  }
}

/** A wire activity record as the client hands it out (JSON values parsed). */
export function toActivity(a) {
  return { ...a, attachments: parseJson(a.attachments), metadata: parseJson(a.metadata) };
}

export function toWritten(x) {
  return { activityId: x.activityId, seq: x.seq, createdAt: x.createdAt, replayed: x.replayed };
}

export function toDraft(d) {
  if (!d || typeof d !== "object") throw new TypeError("a draft is an object");
  return {
    conversationId: d.conversationId,
    type: d.type ?? "message",
    sender: d.sender ?? "",
    text: d.text ?? null,
    attachments: json(d.attachments),
    metadata: json(d.metadata),
    idempotencyKey: d.idempotencyKey ?? null,
    targetId: d.targetId ?? null,
    parentId: d.parentId ?? null,
    traceparent: d.traceparent ?? null,
  };
}

/** An Ephemeral frame as the "ephemeral" event hands it out. */
export function toEphemeral(frame) {
  return { conversationId: frame.conversationId, type: frame.type, sender: frame.sender, data: parseJson(frame.data) };
}

/** The "typing" event of an ephemeral one of type typing: anything but an explicit `typing: false` means typing. */
export function toTyping(event) {
  return { conversationId: event.conversationId, sender: event.sender, typing: event.data?.typing !== false };
}

/** The "receipt" event: a member's watermarks after they moved (0n: nothing yet). */
export function toReceipt(event) {
  const seq = (v) => (Number.isSafeInteger(v) ? BigInt(v) : 0n);
  return {
    conversationId: event.conversationId, sender: event.sender,
    readSeq: seq(event.data?.read_seq), deliveredSeq: seq(event.data?.delivered_seq),
  };
}

/** The "presence" event of user_online / user_offline: `lastSeen` (RFC 3339) going offline. */
export function toPresence(event) {
  return {
    conversationId: event.conversationId, sender: event.sender,
    online: event.type === "user_online", lastSeen: event.data?.last_seen ?? null,
  };
}
