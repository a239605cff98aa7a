//! Routing: which shard owns a conversation, and the one way to send an
//! engine message to a shard — over its mesh ring, or handled at once when
//! the target is this shard. Every "owner, then local call or ring" goes
//! through [`Engine::send_to`].

use std::rc::Rc;

use converger_storage::Id;

use super::mesh::MeshMsg;
use super::Engine;

/// The owner shard of a conversation among `shards`: a fixed mix of all 128
/// bits (UUID v7 ids made in one millisecond differ only in a counter and a
/// few random bits, so no slice of them is spread enough on its own).
pub fn owner_of(conversation: Id, shards: usize) -> usize {
    let (hi, lo) = conversation.as_u64_pair();
    // splitmix64's finalizer.
    let mut x = hi ^ lo.rotate_left(32);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^= x >> 31;
    (x % shards.max(1) as u64) as usize
}

impl Engine {
    /// How many shards the mesh joins.
    pub fn shards(&self) -> usize {
        self.outbox.shards()
    }

    /// The owner shard of `conversation`.
    pub fn owner_of(&self, conversation: Id) -> usize {
        owner_of(conversation, self.outbox.shards())
    }

    /// Sends `message` to shard `to`: handled here, now, when `to` is this
    /// shard; else queued on the ring to `to`. A full ring gives the message
    /// back, and the caller gives the answer its queue documents (overload,
    /// a dropped typing signal, a gap the subscriber fills from storage).
    pub(crate) fn send_to(self: &Rc<Self>, to: usize, message: MeshMsg) -> Result<(), MeshMsg> {
        if to == self.outbox.shard() {
            self.handle(message);
            Ok(())
        } else {
            self.outbox.send(to, message)
        }
    }

    /// [`Engine::send_to`] the owner of `conversation`.
    pub(crate) fn to_owner(self: &Rc<Self>, conversation: Id, message: MeshMsg) -> Result<(), MeshMsg> {
        self.send_to(self.owner_of(conversation), message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use converger_storage::new_id;

    #[test]
    fn owners_spread_evenly_and_never_exceed_the_shard_count() {
        let mut counts = [0usize; 4];
        for _ in 0..40_000 {
            counts[owner_of(new_id(), 4)] += 1;
        }
        for c in counts {
            assert!((9_000..11_000).contains(&c), "{counts:?}");
        }
        assert_eq!(owner_of(new_id(), 1), 0);
    }

    /// The mapping is fixed: every shard (and, later, every node) must agree
    /// on a conversation's owner, across builds and restarts.
    #[test]
    fn owner_of_matches_fixed_vectors() {
        let vectors = [
            ("0190f0f0-0000-7000-8000-000000000000", [1, 1, 1, 5]),
            ("0190f0f0-0000-7000-8000-000000000002", [1, 1, 1, 1]),
            ("01a23d91-9de1-7180-9beb-d255686bb05b", [1, 2, 3, 3]),
            ("ffffffff-ffff-7fff-bfff-ffffffffffff", [0, 1, 2, 2]),
        ];
        for (id, owners) in vectors {
            let id = Id::parse_str(id).expect("uuid");
            let got = [2, 3, 4, 8].map(|n| owner_of(id, n));
            assert_eq!(got, owners, "{id}");
        }
        let spread: Vec<usize> =
            (0..16u128).map(|i| owner_of(Id::from_u128(0x0190f0f0_0000_7000_8000_000000000000 + i), 8)).collect();
        assert_eq!(spread, [5, 5, 1, 2, 6, 2, 5, 1, 3, 5, 3, 3, 0, 0, 1, 4], "neighbouring ids spread");
    }
}
