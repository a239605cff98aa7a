//! A doorbell between threads: rung where work is made, waited on where it is
//! done, so the worker starts at once instead of at its next poll. A ring
//! while nobody waits is kept (one, however many rings): the next wait
//! returns at once, so no ring between two waits is lost.

use std::sync::Arc;

use tokio::sync::Notify;

#[derive(Clone, Default)]
pub struct Doorbell(Arc<Notify>);

impl Doorbell {
    pub fn ring(&self) {
        self.0.notify_one();
    }

    /// Returns at the next ring, or at once when a ring came since the last wait.
    pub async fn rung(&self) {
        self.0.notified().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ring_while_nobody_waits_is_kept_for_the_next_wait() {
        let bell = Doorbell::default();
        bell.ring();
        bell.ring();
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().expect("runtime");
        rt.block_on(async {
            bell.rung().await;
            let again = tokio::time::timeout(std::time::Duration::from_millis(20), bell.rung()).await;
            assert!(again.is_err(), "two rings before a wait wake it once");
        });
    }
}
