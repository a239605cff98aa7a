//! [`SharedBatch`]: committed activities as one shard sees them, with their
//! encodings cached per wire format, so a broadcast is encoded once per format
//! and shard, however many subscribers receive it.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use bytes::Bytes;
use converger_storage::Activity;

/// One encoded frame per activity of a batch.
pub type Frames = Rc<[Bytes]>;

pub struct SharedBatch {
    activities: Arc<[Activity]>,
    /// Per wire format, its frames.
    encoded: RefCell<Vec<(&'static str, Frames)>>,
}

impl SharedBatch {
    pub fn new(activities: Arc<[Activity]>) -> SharedBatch {
        SharedBatch { activities, encoded: RefCell::new(Vec::new()) }
    }

    pub fn activities(&self) -> &[Activity] {
        &self.activities
    }

    /// The batch's activities encoded for `format`, one frame each, by
    /// `encode` on first use and from the cache after.
    pub fn encoded(&self, format: &'static str, encode: impl FnOnce(&[Activity]) -> Vec<Bytes>) -> Frames {
        if let Some((_, frames)) = self.encoded.borrow().iter().find(|(f, _)| *f == format) {
            return frames.clone();
        }
        let frames: Frames = encode(&self.activities).into();
        self.encoded.borrow_mut().push((format, frames.clone()));
        frames
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    #[test]
    fn each_format_is_encoded_once() {
        let batch = SharedBatch::new(Arc::from(Vec::<Activity>::new()));
        let calls = Cell::new(0);
        for _ in 0..3 {
            batch.encoded("phoenix", |_| {
                calls.set(calls.get() + 1);
                vec![Bytes::from_static(b"x")]
            });
        }
        batch.encoded("binary", |_| {
            calls.set(calls.get() + 1);
            Vec::new()
        });
        assert_eq!(calls.get(), 2);
    }
}
