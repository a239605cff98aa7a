//! [`Version`]: the protocol versions this codec speaks, and the choice of one
//! for a connection (docs/protocol.md, "The connection").
//!
//! A connection's frames all use the layouts of one version, negotiated by
//! Hello and Welcome; the header of every frame carries it. The version is
//! not a property of a frame value but of the connection it travels on, so
//! every encode and decode takes it as an argument. Hello and Welcome are the
//! exception: their layouts are version 1's in every version and they always
//! carry header version 1 (see [`crate::Kind::header_version`]).
//!
//! | version | adds |
//! | --- | --- |
//! | 1 | the protocol |
//! | 2 | activity records: `target_id`, `parent_id`, message `state`; drafts: `target_id`, `parent_id`; the Receipt frame (0x32) |
//! | 3 | drafts: `traceparent` (W3C trace context of the publish) |

use std::fmt;
use std::ops::RangeInclusive;

/// A protocol version this codec speaks (1 to 3). Construct it with the
/// constants or [`Version::from_u8`]; any value of this type is spoken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version(u8);

impl Version {
    pub const V1: Version = Version(1);
    pub const V2: Version = Version(2);
    pub const V3: Version = Version(3);
    /// The oldest version this codec speaks.
    pub const MIN: Version = Version::V1;
    /// The newest version this codec speaks.
    pub const MAX: Version = Version::V3;
    /// Every version this codec speaks, oldest first.
    pub const ALL: [Version; 3] = [Version::V1, Version::V2, Version::V3];

    /// The version numbered `n`, if this codec speaks it.
    pub const fn from_u8(n: u8) -> Option<Version> {
        if n >= Version::MIN.0 && n <= Version::MAX.0 {
            Some(Version(n))
        } else {
            None
        }
    }

    /// The number on the wire.
    pub const fn get(self) -> u8 {
        self.0
    }

    /// The highest version both sides speak: the client offers
    /// `min..=max` (its Hello), the peer speaks `speaks`. `None` when the two
    /// ranges do not meet.
    pub fn negotiate(min: u8, max: u8, speaks: RangeInclusive<Version>) -> Option<Version> {
        let high = max.min(speaks.end().0);
        let low = min.max(speaks.start().0);
        (low <= high).then_some(Version(high))
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_spoken_versions_exist() {
        assert_eq!(Version::from_u8(0), None);
        assert_eq!(Version::from_u8(1), Some(Version::V1));
        assert_eq!(Version::from_u8(2), Some(Version::V2));
        assert_eq!(Version::from_u8(3), Some(Version::V3));
        assert_eq!(Version::from_u8(4), None);
        assert_eq!(Version::ALL.iter().map(|v| v.get()).collect::<Vec<_>>(), [1, 2, 3]);
    }

    #[test]
    fn negotiation_picks_the_highest_common_version() {
        let all = Version::MIN..=Version::MAX;
        assert_eq!(Version::negotiate(1, 1, all.clone()), Some(Version::V1));
        assert_eq!(Version::negotiate(1, 2, all.clone()), Some(Version::V2));
        assert_eq!(Version::negotiate(1, 9, all.clone()), Some(Version::V3));
        assert_eq!(Version::negotiate(2, 9, Version::V1..=Version::V1), None);
        assert_eq!(Version::negotiate(4, 9, all.clone()), None);
        assert_eq!(Version::negotiate(0, 0, all), None);
        assert_eq!(Version::negotiate(1, 2, Version::V1..=Version::V1), Some(Version::V1));
    }
}
