//! Constant-time comparison for secrets (admin token, channel secrets).
//!
//! The time taken depends only on the lengths, never on where the first
//! differing byte is, so an attacker cannot find a secret byte by byte by
//! timing refusals. Lengths are not secret: every secret of one kind has the
//! same length. API keys are not compared at all: they are hashed and looked
//! up by hash (see [`super::keys`]).

/// True when `a == b`, in time that depends only on the lengths.
pub fn eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    // black_box keeps the optimizer from turning the fold into an early exit.
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::eq;

    #[test]
    fn equal_only_for_identical_bytes() {
        assert!(eq(b"secret", b"secret"));
        assert!(eq(b"", b""));
        assert!(!eq(b"secret", b"secreT"));
        assert!(!eq(b"Secret", b"secret"));
        assert!(!eq(b"secret", b"secret-longer"));
    }
}
