//! The `Date` header (RFC 9110 §6.6.1): every response carries the time it
//! was made, as an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`). Formatted
//! at most once a second per shard thread and reused.

use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};

use converger_storage::Timestamp;

thread_local! {
    static CACHE: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
}

/// Now, as an IMF-fixdate.
pub fn now() -> String {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if c.0 != secs {
            *c = (secs, imf_fixdate(secs));
        }
        c.1.clone()
    })
}

/// `secs` since the Unix epoch as an IMF-fixdate.
pub fn imf_fixdate(secs: u64) -> String {
    const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let micros = i64::try_from(secs).unwrap_or(i64::MAX / 1_000_000).saturating_mul(1_000_000);
    let ((year, month, day), rem, weekday) = Timestamp::from_micros(micros).civil();
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        DAYS[weekday as usize],
        day,
        MONTHS[(month - 1) as usize],
        year,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(imf_fixdate(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(imf_fixdate(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(imf_fixdate(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(imf_fixdate(1_798_761_599), "Thu, 31 Dec 2026 23:59:59 GMT");
        assert!(now().ends_with(" GMT"));
    }
}
