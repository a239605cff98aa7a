// The records several frames share (docs/protocol.md, "Records shared by
// several frames"): the activity record (Deliver, HistoryPage) with a
// message's state, the draft record (Publish, PublishBatch), failure items
// and the written fields of acks. Layouts depend on the connection's protocol
// version: version 2 appends `targetId`, `parentId` and `state` to an
// activity and `targetId`, `parentId` to a draft, each behind a presence bit a
// version-1 decoder refuses and a version-1 encoder will not write; version 3
// appends `traceparent` (W3C trace context) to a draft the same way.

import { errorName } from "./errors.js";
import { invalid, present, WireError } from "./wire.js";

const HAS_TEXT = 0x01;
const HAS_ATTACHMENTS = 0x02;
const HAS_IDEMPOTENCY_KEY = 0x04;
// Activity record, version 2.
const HAS_TARGET = 0x08;
const HAS_PARENT = 0x10;
const HAS_STATE = 0x20;
// Draft record.
const HAS_METADATA = 0x08;
const DRAFT_HAS_TARGET = 0x10;
const DRAFT_HAS_PARENT = 0x20;
// Draft record, version 3.
const DRAFT_HAS_TRACEPARENT = 0x40;
// Message state.
const STATE_EDITED = 0x01;
const STATE_DELETED = 0x02;

export const MIN_ACTIVITY_SIZE = 16 + 16 + 8 + 8 + 1 + 1 + 2 + 4;
export const MIN_DRAFT_SIZE = 16 + 1 + 1 + 2;
const MIN_REACTION_SIZE = 1 + 4 + 1;

const ACTIVITY_BITS = { 1: HAS_TEXT | HAS_ATTACHMENTS | HAS_IDEMPOTENCY_KEY };
ACTIVITY_BITS[2] = ACTIVITY_BITS[1] | HAS_TARGET | HAS_PARENT | HAS_STATE;
const DRAFT_BITS = { 1: HAS_TEXT | HAS_ATTACHMENTS | HAS_IDEMPOTENCY_KEY | HAS_METADATA };
DRAFT_BITS[2] = DRAFT_BITS[1] | DRAFT_HAS_TARGET | DRAFT_HAS_PARENT;
// Version 3 changes only the draft.
ACTIVITY_BITS[3] = ACTIVITY_BITS[2];
DRAFT_BITS[3] = DRAFT_BITS[2] | DRAFT_HAS_TRACEPARENT;

/** A field version `version` does not have: the encoder refuses it (nothing is dropped silently). */
function notInVersion(field, version) {
  return new WireError("not_in_version", `\`${field}\` is not part of protocol version ${version}`, field);
}

/** The first of `fields` ([bit, name]) set in `bits` but not allowed in `version`. */
function checkVersion(bits, allowed, fields, version) {
  for (const [bit, name] of fields) {
    if (bits & bit & ~allowed) throw notInVersion(name, version);
  }
}

export function writeActivity(w, a, version) {
  const bits = (present(a.text) ? HAS_TEXT : 0) | (present(a.attachments) ? HAS_ATTACHMENTS : 0)
    | (present(a.idempotencyKey) ? HAS_IDEMPOTENCY_KEY : 0) | (present(a.targetId) ? HAS_TARGET : 0)
    | (present(a.parentId) ? HAS_PARENT : 0) | (present(a.state) ? HAS_STATE : 0);
  checkVersion(bits, ACTIVITY_BITS[version], [[HAS_TARGET, "target_id"], [HAS_PARENT, "parent_id"], [HAS_STATE, "state"]], version);
  w.id(a.id, "id");
  w.id(a.conversationId, "conversation_id");
  w.u64(a.seq, "seq");
  w.i64(a.createdAt, "created_at");
  w.u8(bits, "present");
  w.str(a.type, 1, "type");
  w.str(a.sender, 2, "sender");
  w.optStr(a.text, 4, "text");
  w.optStr(a.attachments, 4, "attachments");
  w.str(a.metadata, 4, "metadata");
  w.optStr(a.idempotencyKey, 1, "idempotency_key");
  if (present(a.targetId)) w.id(a.targetId, "target_id");
  if (present(a.parentId)) w.id(a.parentId, "parent_id");
  if (present(a.state)) writeState(w, a.state);
}

export function readActivity(r, version) {
  const id = r.id("id");
  const conversationId = r.id("conversation_id");
  const seq = r.u64("seq");
  const createdAt = r.i64("created_at");
  const bits = r.u8("present");
  if (bits & ~ACTIVITY_BITS[version]) throw invalid("present", "unknown presence bit");
  return {
    id, conversationId, seq, createdAt,
    type: r.str(1, "type"),
    sender: r.str(2, "sender"),
    text: r.optStr(bits & HAS_TEXT, 4, "text"),
    attachments: r.optStr(bits & HAS_ATTACHMENTS, 4, "attachments"),
    metadata: r.str(4, "metadata"),
    idempotencyKey: r.optStr(bits & HAS_IDEMPOTENCY_KEY, 1, "idempotency_key"),
    targetId: bits & HAS_TARGET ? r.id("target_id") : null,
    parentId: bits & HAS_PARENT ? r.id("parent_id") : null,
    state: bits & HAS_STATE ? readState(r) : null,
  };
}

function writeState(w, s) {
  const reactions = s.reactions ?? [];
  if (!Array.isArray(reactions)) throw invalid("reactions", "not an array");
  w.u8((present(s.editedAt) ? STATE_EDITED : 0) | (present(s.deletedAt) ? STATE_DELETED : 0), "state");
  if (present(s.editedAt)) w.i64(s.editedAt, "edited_at");
  if (present(s.deletedAt)) w.i64(s.deletedAt, "deleted_at");
  w.u32(s.replyCount ?? 0, "reply_count");
  w.u16(reactions.length, "reactions");
  for (const reaction of reactions) {
    w.str(reaction.emoji, 1, "emoji");
    w.u32(reaction.count, "count");
    w.bool(reaction.me ?? false, "me");
  }
}

function readState(r) {
  const bits = r.u8("state");
  if (bits & ~(STATE_EDITED | STATE_DELETED)) throw invalid("state", "unknown state bit");
  const editedAt = bits & STATE_EDITED ? r.i64("edited_at") : null;
  const deletedAt = bits & STATE_DELETED ? r.i64("deleted_at") : null;
  const replyCount = r.u32("reply_count");
  const n = r.u16("reactions");
  if (n * MIN_REACTION_SIZE > r.remaining) throw new WireError("truncated", "field `reactions` runs past the end of the frame", "reactions");
  const reactions = new Array(n);
  for (let i = 0; i < n; i++) reactions[i] = { emoji: r.str(1, "emoji"), count: r.u32("count"), me: r.bool("me") };
  return { editedAt, deletedAt, replyCount, reactions };
}

export function readActivities(r, version) {
  const n = r.count(MIN_ACTIVITY_SIZE, "count");
  const out = new Array(n);
  for (let i = 0; i < n; i++) out[i] = readActivity(r, version);
  return out;
}

export function writeActivities(w, list, version) {
  w.count(list, "count");
  for (const a of list) writeActivity(w, a, version);
}

export function writeDraft(w, d, version) {
  const bits = (present(d.text) ? HAS_TEXT : 0) | (present(d.attachments) ? HAS_ATTACHMENTS : 0)
    | (present(d.idempotencyKey) ? HAS_IDEMPOTENCY_KEY : 0) | (present(d.metadata) ? HAS_METADATA : 0)
    | (present(d.targetId) ? DRAFT_HAS_TARGET : 0) | (present(d.parentId) ? DRAFT_HAS_PARENT : 0)
    | (present(d.traceparent) ? DRAFT_HAS_TRACEPARENT : 0);
  const later = [[DRAFT_HAS_TARGET, "target_id"], [DRAFT_HAS_PARENT, "parent_id"], [DRAFT_HAS_TRACEPARENT, "traceparent"]];
  checkVersion(bits, DRAFT_BITS[version], later, version);
  w.id(d.conversationId, "conversation_id");
  w.u8(bits, "present");
  w.str(d.type, 1, "type");
  w.str(d.sender ?? "", 2, "sender");
  w.optStr(d.text, 4, "text");
  w.optStr(d.attachments, 4, "attachments");
  w.optStr(d.metadata, 4, "metadata");
  w.optStr(d.idempotencyKey, 1, "idempotency_key");
  if (present(d.targetId)) w.id(d.targetId, "target_id");
  if (present(d.parentId)) w.id(d.parentId, "parent_id");
  w.optStr(d.traceparent, 1, "traceparent");
}

export function readDraft(r, version) {
  const conversationId = r.id("conversation_id");
  const bits = r.u8("present");
  if (bits & ~DRAFT_BITS[version]) throw invalid("present", "unknown presence bit");
  const draft = {
    conversationId,
    type: r.str(1, "type"),
    sender: r.str(2, "sender"),
    text: r.optStr(bits & HAS_TEXT, 4, "text"),
    attachments: r.optStr(bits & HAS_ATTACHMENTS, 4, "attachments"),
    metadata: r.optStr(bits & HAS_METADATA, 4, "metadata"),
    idempotencyKey: r.optStr(bits & HAS_IDEMPOTENCY_KEY, 1, "idempotency_key"),
    targetId: bits & DRAFT_HAS_TARGET ? r.id("target_id") : null,
    parentId: bits & DRAFT_HAS_PARENT ? r.id("parent_id") : null,
  };
  // Only when sent: a draft without it reads as it did before version 3.
  if (bits & DRAFT_HAS_TRACEPARENT) draft.traceparent = r.str(1, "traceparent");
  return draft;
}

/** A failure item's code and message (the code was read already and is not 0). */
export function readFailure(code, r) {
  return { code, message: r.str(2, "message"), name: errorName(code) };
}

export function writeFailure(w, f) {
  if (f.code === 0) throw invalid("code", "0 is not an error code");
  w.u16(f.code, "code");
  w.str(f.message, 2, "message");
}

export function writeWritten(w, x) {
  w.id(x.activityId, "activity_id");
  w.u64(x.seq, "seq");
  w.i64(x.createdAt, "created_at");
  w.bool(x.replayed, "replayed");
}

export function readWritten(r) {
  return { activityId: r.id("activity_id"), seq: r.u64("seq"), createdAt: r.i64("created_at"), replayed: r.bool("replayed") };
}
