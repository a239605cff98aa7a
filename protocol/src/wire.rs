//! Primitive readers and writers: little-endian fixed-width integers, raw
//! 16-byte ids and length-prefixed UTF-8.
//!
//! [`Reader`] never panics and never indexes: every read goes through
//! `slice::get`, and running out of bytes answers [`WireError::Truncated`] with
//! the field's name. The writers check a string against its length prefix
//! before writing it, so an over-long value is an error, never a silently cut
//! prefix.

use bytes::{BufMut, BytesMut};

use crate::WireError;

/// A 16-byte id (a UUID in its big-endian RFC 4122 byte order, as
/// `Uuid::as_bytes` gives it).
pub type Id = [u8; 16];

/// How many bytes a string's length prefix takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Len {
    U8,
    U16,
    U32,
}

impl Len {
    /// Size of the prefix itself.
    pub const fn size(self) -> usize {
        match self {
            Len::U8 => 1,
            Len::U16 => 2,
            Len::U32 => 4,
        }
    }

    /// The longest value the prefix can say.
    pub const fn max(self) -> usize {
        match self {
            Len::U8 => u8::MAX as usize,
            Len::U16 => u16::MAX as usize,
            Len::U32 => u32::MAX as usize,
        }
    }
}

/// Bytes a string takes with its prefix.
pub const fn str_size(s: &str, len: Len) -> usize {
    len.size() + s.len()
}

/// Bytes an optional string takes (nothing when absent: presence is a bit elsewhere).
pub fn opt_size(s: &Option<String>, len: Len) -> usize {
    s.as_deref().map_or(0, |s| str_size(s, len))
}

/// A cursor over one frame's body.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, pos: 0 }
    }

    /// Bytes read so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    pub fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], WireError> {
        let end = self.pos.checked_add(n).ok_or(WireError::Truncated { field })?;
        let bytes = self.buf.get(self.pos..end).ok_or(WireError::Truncated { field })?;
        self.pos = end;
        Ok(bytes)
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], WireError> {
        self.take(N, field)?.try_into().map_err(|_| WireError::Truncated { field })
    }

    pub fn u8(&mut self, field: &'static str) -> Result<u8, WireError> {
        Ok(self.array::<1>(field)?[0])
    }

    pub fn u16(&mut self, field: &'static str) -> Result<u16, WireError> {
        Ok(u16::from_le_bytes(self.array(field)?))
    }

    pub fn u32(&mut self, field: &'static str) -> Result<u32, WireError> {
        Ok(u32::from_le_bytes(self.array(field)?))
    }

    pub fn u64(&mut self, field: &'static str) -> Result<u64, WireError> {
        Ok(u64::from_le_bytes(self.array(field)?))
    }

    pub fn i64(&mut self, field: &'static str) -> Result<i64, WireError> {
        Ok(i64::from_le_bytes(self.array(field)?))
    }

    pub fn id(&mut self, field: &'static str) -> Result<Id, WireError> {
        self.array(field)
    }

    /// A `0 | 1` byte.
    pub fn bool(&mut self, field: &'static str) -> Result<bool, WireError> {
        match self.u8(field)? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(WireError::InvalidValue { field, reason: "a boolean is 0 or 1" }),
        }
    }

    /// A string with a `len` prefix.
    pub fn str(&mut self, len: Len, field: &'static str) -> Result<String, WireError> {
        let n = match len {
            Len::U8 => usize::from(self.u8(field)?),
            Len::U16 => usize::from(self.u16(field)?),
            Len::U32 => self.u32(field)? as usize,
        };
        let bytes = self.take(n, field)?;
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(s.to_owned()),
            Err(_) => Err(WireError::InvalidUtf8 { field }),
        }
    }

    /// A string read only when `present`.
    pub fn opt_str(&mut self, present: bool, len: Len, field: &'static str) -> Result<Option<String>, WireError> {
        if present {
            self.str(len, field).map(Some)
        } else {
            Ok(None)
        }
    }

    /// An id read only when `present`.
    pub fn opt_id(&mut self, present: bool, field: &'static str) -> Result<Option<Id>, WireError> {
        if present {
            self.id(field).map(Some)
        } else {
            Ok(None)
        }
    }

    /// A `u16` item count, checked like [`Reader::count`].
    pub fn count16(&mut self, min_item: usize, field: &'static str) -> Result<usize, WireError> {
        let n = usize::from(self.u16(field)?);
        if n.saturating_mul(min_item.max(1)) > self.remaining() {
            return Err(WireError::Truncated { field });
        }
        Ok(n)
    }

    /// A `u32` item count, checked against the bytes left (each item takes at
    /// least `min_item` bytes), so a hostile count cannot make a decoder
    /// allocate more than the frame holds.
    pub fn count(&mut self, min_item: usize, field: &'static str) -> Result<usize, WireError> {
        let n = self.u32(field)? as usize;
        if n.saturating_mul(min_item.max(1)) > self.remaining() {
            return Err(WireError::Truncated { field });
        }
        Ok(n)
    }
}

/// Writes `s` with a `len` prefix, or refuses it when it does not fit.
pub fn put_str(buf: &mut BytesMut, s: &str, len: Len, field: &'static str) -> Result<(), WireError> {
    if s.len() > len.max() {
        return Err(WireError::TooLong { field, len: s.len(), max: len.max() });
    }
    match len {
        Len::U8 => buf.put_u8(s.len() as u8),
        Len::U16 => buf.put_u16_le(s.len() as u16),
        Len::U32 => buf.put_u32_le(s.len() as u32),
    }
    buf.put_slice(s.as_bytes());
    Ok(())
}

/// Writes `s` when present (its presence is a bit elsewhere).
pub fn put_opt_str(buf: &mut BytesMut, s: &Option<String>, len: Len, field: &'static str) -> Result<(), WireError> {
    match s {
        Some(s) => put_str(buf, s, len, field),
        None => Ok(()),
    }
}

/// Writes an id when present (its presence is a bit elsewhere).
pub fn put_opt_id(buf: &mut BytesMut, id: &Option<Id>) {
    if let Some(id) = id {
        buf.put_slice(id);
    }
}

/// The name of the first field in `fields` (`(presence bit, name)`) whose bit
/// is set in `present` but is not one of the `known` bits: what a version
/// cannot carry.
pub fn not_in(present: u8, known: u8, fields: &[(u8, &'static str)]) -> Option<&'static str> {
    fields.iter().find(|(bit, _)| present & bit & !known != 0).map(|(_, name)| *name)
}

/// Writes an item count.
pub fn put_count(buf: &mut BytesMut, n: usize, field: &'static str) -> Result<(), WireError> {
    let n = u32::try_from(n).map_err(|_| WireError::TooLong { field, len: n, max: u32::MAX as usize })?;
    buf.put_u32_le(n);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_little_endian_and_names_the_field_that_runs_short() {
        let mut r = Reader::new(&[1, 0, 2, 0, 0, 0, 9]);
        assert_eq!(r.u16("a"), Ok(1));
        assert_eq!(r.u32("b"), Ok(2));
        assert_eq!(r.u16("c"), Err(WireError::Truncated { field: "c" }));
        // A failed read consumes nothing.
        assert_eq!(r.u8("d"), Ok(9));
    }

    #[test]
    fn strings_check_utf8_and_length() {
        let mut r = Reader::new(&[2, 0xff, 0xfe]);
        assert_eq!(r.str(Len::U8, "s"), Err(WireError::InvalidUtf8 { field: "s" }));
        let mut r = Reader::new(&[5, b'a']);
        assert_eq!(r.str(Len::U8, "s"), Err(WireError::Truncated { field: "s" }));
        let mut buf = BytesMut::new();
        let long = "x".repeat(256);
        assert_eq!(put_str(&mut buf, &long, Len::U8, "s"), Err(WireError::TooLong { field: "s", len: 256, max: 255 }));
        assert!(buf.is_empty());
    }

    #[test]
    fn a_count_larger_than_the_bytes_left_is_refused_before_allocating() {
        let mut r = Reader::new(&[0xff, 0xff, 0xff, 0xff, 0, 0]);
        assert_eq!(r.count(1, "n"), Err(WireError::Truncated { field: "n" }));
        let mut r = Reader::new(&[2, 0, 0, 0, 0, 0]);
        assert_eq!(r.count(1, "n"), Ok(2));
    }
}
