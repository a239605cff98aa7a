//! The message lifecycle and membership rules of `write_batch`, shared by both
//! backends: pure code over the rows a batch touches, loaded by the backend in
//! the batch's own transaction (PostgreSQL locks the target rows), so a rule is
//! judged against the state the write commits on top of.
//!
//! A batch with no lifecycle item ([`needs`] answers `None`) loads and checks
//! nothing: plain messages keep the hot path they had.
//!
//! The rules (docs/api.md "Message lifecycle"):
//! - `edit`, `delete`, `reaction_add`, `reaction_remove` name a `target_id`: a
//!   message of the same conversation, not deleted. An edit or delete marked
//!   `author_only` (a client's) must be of the sender's own message.
//! - a message with a `parent_id` replies to a message of the same conversation
//!   that is not deleted and not itself a reply (threads are one level deep).
//! - `reaction_add` of an emoji the sender already has on the target writes
//!   nothing and answers the activity that added it (a replay);
//!   `reaction_remove` of one it does not have is refused.
//! - `member_left` of a sender that is not a member is refused.
//!
//! Items of one batch see each other in order: a message written earlier in the
//! batch may be edited, replied to or reacted to by a later item.

use std::collections::HashMap;

use crate::{
    kinds, Activity, EventType, Id, Json, MemberChange, NewActivity, Refusal, StoreError, StoreResult, Written,
};

/// (message, sender, emoji).
pub(crate) type ReactionKey = (Id, String, String);
/// (conversation, sender).
pub(crate) type MemberKey = (Id, String);

/// The rows a batch's lifecycle items need loaded.
#[derive(Debug, Default)]
pub(crate) struct Needs {
    /// Targets and parents.
    pub targets: Vec<Id>,
    pub reactions: Vec<ReactionKey>,
    pub members: Vec<MemberKey>,
}

/// What the batch needs loaded, or `None` when it has no lifecycle item.
pub(crate) fn needs(batch: &[NewActivity]) -> Option<Needs> {
    let mut n = Needs::default();
    for item in batch {
        n.targets.extend(item.target_id);
        n.targets.extend(item.parent_id);
        if let (Some(target), kinds::REACTION_ADD | kinds::REACTION_REMOVE) = (item.target_id, item.kind.as_str()) {
            n.reactions.push((target, item.sender.clone(), item.text.clone().unwrap_or_default()));
        }
        if item.member.is_some() {
            n.members.push((item.conversation_id, item.sender.clone()));
        }
    }
    if n.targets.is_empty() && n.members.is_empty() {
        return None;
    }
    n.targets.sort_unstable();
    n.targets.dedup();
    n.reactions.sort_unstable();
    n.reactions.dedup();
    n.members.sort_unstable();
    n.members.dedup();
    Some(n)
}

/// A member as a batch leaves it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct MemberRow {
    pub tenant_id: Id,
    pub role: Option<String>,
    pub metadata: Json,
    pub joined_at: crate::Timestamp,
}

/// What an item may do, once the rules let it.
#[derive(Debug)]
pub(crate) enum Verdict {
    /// Write it.
    Write,
    /// Write nothing: the state it asks for is there, made by this activity.
    Replay(Box<Activity>),
}

/// The lifecycle state of the rows one batch touches, as its items change it.
pub(crate) struct Lifecycle {
    targets: HashMap<Id, Activity>,
    reactions: HashMap<ReactionKey, Option<Activity>>,
    reactions_before: HashMap<ReactionKey, Option<Id>>,
    members: HashMap<MemberKey, Option<MemberRow>>,
    members_before: HashMap<MemberKey, bool>,
    changed: Vec<Id>,
    deleted: Vec<Id>,
    /// Member changes' events, when their item says the tenant wants them.
    events: Vec<PendingEvent>,
}

/// A lifecycle event to fan out to the tenant's endpoints that take it, in
/// the batch's transaction.
#[derive(Clone, Debug)]
pub(crate) struct PendingEvent {
    pub tenant_id: Id,
    pub kind: EventType,
    pub data: serde_json::Value,
    pub at: crate::Timestamp,
}

/// Every row the batch changes besides inserting its activities, applied
/// after the inserts in the same transaction.
#[derive(Debug, Default)]
pub(crate) struct Effects {
    /// Messages whose content or state changed: write their text,
    /// attachments, metadata, edited_at, deleted_at and reply_count.
    pub updated: Vec<Activity>,
    /// Messages deleted: erase the content of their edits too, drop their
    /// reactions, cancel the pending deliveries of both.
    pub deleted: Vec<Id>,
    /// Reactions now there: (key, the `reaction_add` activity, its conversation).
    pub reactions_set: Vec<(ReactionKey, Id, Id)>,
    pub reactions_removed: Vec<ReactionKey>,
    /// Members now there (added, or their role and metadata changed).
    pub members_set: Vec<(MemberKey, MemberRow)>,
    pub members_removed: Vec<MemberKey>,
    /// `member.joined` / `member.left` events, in batch order.
    pub events: Vec<PendingEvent>,
}

impl Effects {
    pub fn is_empty(&self) -> bool {
        self.updated.is_empty()
            && self.deleted.is_empty()
            && self.reactions_set.is_empty()
            && self.reactions_removed.is_empty()
            && self.members_set.is_empty()
            && self.members_removed.is_empty()
            && self.events.is_empty()
    }
}

impl Lifecycle {
    /// The state as stored: the targets found (a missing one is simply not
    /// there), the reactions found with the activity that added each, the
    /// members found. Every key of `needs` not found is absent.
    pub fn new(
        needs: &Needs,
        targets: Vec<Activity>,
        reactions: Vec<(ReactionKey, Activity)>,
        members: Vec<MemberKey>,
    ) -> Lifecycle {
        let mut reaction_map: HashMap<ReactionKey, Option<Activity>> =
            needs.reactions.iter().map(|k| (k.clone(), None)).collect();
        for (k, a) in reactions {
            reaction_map.insert(k, Some(a));
        }
        let mut member_map: HashMap<MemberKey, Option<MemberRow>> =
            needs.members.iter().map(|k| (k.clone(), None)).collect();
        for k in members {
            // Only presence matters to the rules; a kept row is not rewritten.
            member_map.insert(k, Some(MemberRow::placeholder()));
        }
        Lifecycle {
            targets: targets.into_iter().map(|a| (a.id, a)).collect(),
            reactions_before: reaction_map.iter().map(|(k, v)| (k.clone(), v.as_ref().map(|a| a.id))).collect(),
            reactions: reaction_map,
            members_before: member_map.iter().map(|(k, v)| (k.clone(), v.is_some())).collect(),
            members: member_map,
            changed: Vec::new(),
            deleted: Vec::new(),
            events: Vec::new(),
        }
    }

    /// Whether `item` may be written, judged on the state so far.
    pub fn admit(&self, item: &NewActivity) -> StoreResult<Verdict> {
        let refuse = |r| Err(StoreError::Refused(r));
        if kinds::has_target(&item.kind) {
            let target_id =
                item.target_id.ok_or_else(|| StoreError::Invalid(format!("a {} needs a target_id", item.kind)))?;
            let target = self.message(item, target_id, "target_id")?;
            match item.kind.as_str() {
                kinds::EDIT | kinds::DELETE if item.author_only && target.sender != item.sender => {
                    return refuse(Refusal::NotAuthor)
                }
                kinds::REACTION_ADD => {
                    if let Some(Some(existing)) = self.reactions.get(&reaction_key(item, target_id)) {
                        return Ok(Verdict::Replay(Box::new(existing.clone())));
                    }
                }
                kinds::REACTION_REMOVE
                    if !matches!(self.reactions.get(&reaction_key(item, target_id)), Some(Some(_))) =>
                {
                    return refuse(Refusal::ReactionNotFound)
                }
                _ => {}
            }
        }
        if let Some(parent_id) = item.parent_id {
            let parent = self.message(item, parent_id, "parent_id")?;
            if parent.parent_id.is_some() {
                return refuse(Refusal::TargetNotMessage { field: "parent_id" });
            }
        }
        if item.member == Some(MemberChange::Leave)
            && !matches!(self.members.get(&(item.conversation_id, item.sender.clone())), Some(Some(_)))
        {
            return refuse(Refusal::NotMember);
        }
        Ok(Verdict::Write)
    }

    /// What the batch answers for `item` instead of writing it (a refusal,
    /// or the replay of a reaction already there); `None`: write it.
    pub fn answer_instead(&self, item: &NewActivity) -> Option<StoreResult<Written>> {
        match self.admit(item) {
            Ok(Verdict::Write) => None,
            Ok(Verdict::Replay(original)) => Some(Ok(Written::Replay(*original))),
            Err(e) => Some(Err(e)),
        }
    }

    fn message(&self, item: &NewActivity, id: Id, field: &'static str) -> StoreResult<&Activity> {
        let refuse = |r| Err(StoreError::Refused(r));
        match self.targets.get(&id) {
            Some(t) if t.conversation_id == item.conversation_id && t.tenant_id == item.tenant_id => {
                if !t.is_message() {
                    refuse(Refusal::TargetNotMessage { field })
                } else if t.is_deleted() {
                    refuse(Refusal::TargetDeleted { field })
                } else {
                    Ok(t)
                }
            }
            _ => refuse(Refusal::TargetNotFound { field }),
        }
    }

    /// Applies a written item (admitted, with its seq) to the state.
    pub fn record(&mut self, item: &NewActivity, a: &Activity) {
        // Later items of the batch may name it (and must be told what it is).
        self.targets.insert(a.id, a.clone());
        match a.kind.as_str() {
            kinds::MESSAGE => {
                if let Some(parent) = a.parent_id.and_then(|p| self.targets.get_mut(&p)) {
                    if let Some(state) = parent.state.as_mut() {
                        state.reply_count += 1;
                    }
                    mark(&mut self.changed, parent.id);
                }
            }
            kinds::EDIT => {
                if let Some(t) = a.target_id.and_then(|t| self.targets.get_mut(&t)) {
                    if a.text.is_some() {
                        t.text.clone_from(&a.text);
                    }
                    if a.attachments.is_some() {
                        t.attachments.clone_from(&a.attachments);
                    }
                    if !is_empty_object(&a.metadata) {
                        t.metadata = a.metadata.clone();
                    }
                    t.state.get_or_insert_with(Default::default).edited_at = Some(a.created_at);
                    mark(&mut self.changed, t.id);
                }
            }
            kinds::DELETE => {
                if let Some(t) = a.target_id.and_then(|t| self.targets.get_mut(&t)) {
                    t.text = None;
                    t.attachments = None;
                    t.metadata = Json::empty_object();
                    let state = t.state.get_or_insert_with(Default::default);
                    state.deleted_at = Some(a.created_at);
                    state.reactions.clear();
                    mark(&mut self.changed, t.id);
                    mark(&mut self.deleted, t.id);
                    for (key, value) in self.reactions.iter_mut() {
                        if key.0 == t.id {
                            *value = None;
                        }
                    }
                }
            }
            kinds::REACTION_ADD | kinds::REACTION_REMOVE => {
                if let Some(target) = a.target_id {
                    let present = (a.kind == kinds::REACTION_ADD).then(|| a.clone());
                    self.reactions.insert(reaction_key(item, target), present);
                }
            }
            _ => {}
        }
        if let Some(change) = &item.member {
            if let Some(kind) = EventType::of_member_kind(&a.kind).filter(|_| item.announce) {
                let role = match change {
                    MemberChange::Join { role, .. } => role.as_deref(),
                    MemberChange::Leave => None,
                };
                let data = crate::events::member_data(a, role);
                self.events.push(PendingEvent { tenant_id: a.tenant_id, kind, data, at: a.created_at });
            }
            let row = match change {
                MemberChange::Join { role, metadata } => Some(MemberRow {
                    tenant_id: a.tenant_id,
                    role: role.clone(),
                    metadata: metadata.clone(),
                    joined_at: a.created_at,
                }),
                MemberChange::Leave => None,
            };
            self.members.insert((a.conversation_id, a.sender.clone()), row);
        }
    }

    /// Everything to write besides the inserts.
    pub fn finish(mut self) -> Effects {
        let mut e = Effects {
            updated: self.changed.iter().filter_map(|id| self.targets.remove(id)).collect(),
            deleted: self.deleted,
            events: self.events,
            ..Effects::default()
        };
        let mut reactions: Vec<_> = self.reactions.into_iter().collect();
        reactions.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        for (key, now) in reactions {
            let before = self.reactions_before.get(&key).copied().flatten();
            match now {
                Some(a) if before != Some(a.id) => e.reactions_set.push((key, a.id, a.conversation_id)),
                None if before.is_some() => e.reactions_removed.push(key),
                _ => {}
            }
        }
        let mut members: Vec<_> = self.members.into_iter().collect();
        members.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        for (key, now) in members {
            let before = self.members_before.get(&key).copied().unwrap_or(false);
            match now {
                Some(row) if !row.is_placeholder() => e.members_set.push((key, row)),
                None if before => e.members_removed.push(key),
                _ => {}
            }
        }
        e
    }
}

impl MemberRow {
    fn placeholder() -> MemberRow {
        MemberRow {
            tenant_id: Id::nil(),
            role: None,
            metadata: Json::empty_object(),
            joined_at: crate::Timestamp::from_micros(i64::MIN),
        }
    }

    fn is_placeholder(&self) -> bool {
        self.tenant_id.is_nil() && self.joined_at.as_micros() == i64::MIN
    }
}

fn reaction_key(item: &NewActivity, target: Id) -> ReactionKey {
    (target, item.sender.clone(), item.text.clone().unwrap_or_default())
}

fn mark(ids: &mut Vec<Id>, id: Id) {
    if !ids.contains(&id) {
        ids.push(id);
    }
}

fn is_empty_object(j: &Json) -> bool {
    j.to_value().as_object().is_some_and(|m| m.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{new_id, Timestamp};

    fn item(conv: Id, kind: &str, sender: &str) -> NewActivity {
        NewActivity {
            id: new_id(),
            tenant_id: Id::nil(),
            conversation_id: conv,
            kind: kind.into(),
            text: Some("t".into()),
            attachments: None,
            sender: sender.into(),
            metadata: Json::empty_object(),
            idempotency_key: None,
            created_at: Timestamp::from_micros(5),
            deliver_to: vec![],
            target_id: None,
            parent_id: None,
            author_only: false,
            member: None,
            announce: false,
            traceparent: None,
        }
    }

    fn on(mut i: NewActivity, target: Id) -> NewActivity {
        i.target_id = Some(target);
        i
    }

    fn write(l: &mut Lifecycle, i: NewActivity, seq: i64) -> StoreResult<Activity> {
        match l.admit(&i)? {
            Verdict::Write => {
                let a = i.clone().into_stored(seq);
                l.record(&i, &a);
                Ok(a)
            }
            Verdict::Replay(a) => Ok(*a),
        }
    }

    fn refusal(r: StoreResult<Activity>) -> Refusal {
        match r {
            Err(StoreError::Refused(r)) => r,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_batch_without_lifecycle_items_needs_nothing() {
        let c = new_id();
        assert!(needs(&[item(c, "message", "a"), item(c, "event", "a")]).is_none());
        assert!(needs(&[on(item(c, "edit", "a"), new_id())]).is_some());
    }

    #[test]
    fn edits_deletes_and_reactions_follow_the_rules_within_one_batch() {
        let c = new_id();
        let mut l = Lifecycle::new(&Needs::default(), vec![], vec![], vec![]);
        let m = write(&mut l, item(c, "message", "alice"), 1).unwrap();
        let mut edit = on(item(c, "edit", "bob"), m.id);
        edit.author_only = true;
        assert_eq!(refusal(write(&mut l, edit.clone(), 2)), Refusal::NotAuthor);
        edit.sender = "alice".into();
        edit.text = Some("new".into());
        write(&mut l, edit, 2).unwrap();
        let add = on(item(c, "reaction_add", "bob"), m.id);
        let first = write(&mut l, add.clone(), 3).unwrap();
        let again = write(&mut l, add, 4).unwrap();
        assert_eq!(first.id, again.id, "a second add replays the first");
        let mut other_conv = on(item(new_id(), "edit", "alice"), m.id);
        assert_eq!(refusal(write(&mut l, other_conv.clone(), 4)), Refusal::TargetNotFound { field: "target_id" });
        other_conv.conversation_id = c;
        other_conv.target_id = Some(first.id);
        assert_eq!(refusal(write(&mut l, other_conv, 4)), Refusal::TargetNotMessage { field: "target_id" });
        write(&mut l, on(item(c, "delete", "alice"), m.id), 4).unwrap();
        assert_eq!(
            refusal(write(&mut l, on(item(c, "edit", "alice"), m.id), 5)),
            Refusal::TargetDeleted { field: "target_id" }
        );
        let e = l.finish();
        assert_eq!(e.deleted, vec![m.id]);
        let updated = &e.updated[0];
        assert!(updated.text.is_none() && updated.is_deleted());
        assert!(e.reactions_set.is_empty(), "the delete took the reaction added in the batch");
    }

    #[test]
    fn replies_are_one_level_and_count_on_the_parent() {
        let c = new_id();
        let mut l = Lifecycle::new(&Needs::default(), vec![], vec![], vec![]);
        let root = write(&mut l, item(c, "message", "a"), 1).unwrap();
        let mut reply = item(c, "message", "b");
        reply.parent_id = Some(root.id);
        let r = write(&mut l, reply, 2).unwrap();
        let mut nested = item(c, "message", "c");
        nested.parent_id = Some(r.id);
        assert_eq!(refusal(write(&mut l, nested, 3)), Refusal::TargetNotMessage { field: "parent_id" });
        let e = l.finish();
        assert_eq!(e.updated.len(), 1);
        assert_eq!(e.updated[0].state.as_ref().unwrap().reply_count, 1);
    }

    #[test]
    fn reactions_and_members_are_written_as_their_final_state() {
        let (c, target) = (new_id(), new_id());
        let mut stored = item(c, "message", "a").into_stored(1);
        stored.id = target;
        let mut add = on(item(c, "reaction_add", "b"), target);
        add.text = Some("👍".into());
        let mut remove = add.clone();
        remove.kind = "reaction_remove".into();
        let mut leave = item(c, "member_left", "b");
        leave.member = Some(MemberChange::Leave);
        let needs = needs(&[add.clone(), leave.clone()]).unwrap();
        let mut l = Lifecycle::new(&needs, vec![stored], vec![], vec![]);
        assert_eq!(refusal(write(&mut l, remove.clone(), 2)), Refusal::ReactionNotFound);
        assert_eq!(refusal(write(&mut l, leave.clone(), 2)), Refusal::NotMember);
        write(&mut l, add, 2).unwrap();
        write(&mut l, remove, 3).unwrap();
        let mut join = item(c, "member_joined", "b");
        join.member = Some(MemberChange::Join { role: Some("agent".into()), metadata: Json::empty_object() });
        write(&mut l, join, 4).unwrap();
        write(&mut l, leave.clone(), 5).unwrap();
        let e = l.finish();
        assert!(e.is_empty(), "added and taken back in one batch: nothing to write, {e:?}");
    }
}
