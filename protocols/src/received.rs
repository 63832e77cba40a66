//! A connection's received, unanswered bytes, in a buffer a protocol may keep
//! a part of: a big value stays where it arrived (as redis keeps a big
//! argument in the query buffer it was read into) instead of being copied
//! into the store. A buffer is written again only while nothing shares it;
//! otherwise its unanswered rest moves to a new one.

use alloc::collections::TryReserveError;
use alloc::rc::Rc;
use alloc::vec::Vec;
use core::ops::Deref;

use crate::Progress;

/// Received bytes not answered yet (see the module docs).
#[derive(Debug, Default)]
pub struct Received {
    /// `None` until bytes arrive: an idle connection holds no buffer.
    buf: Option<Rc<Vec<u8>>>,
    /// The request in the buffer is big and at least this long
    /// ([`Progress::big_request`]): the buffer has room toward it, and is
    /// filled no further ([`Received::read_limit`]).
    big_request: Option<usize>,
}

impl Received {
    /// The bytes.
    pub fn bytes(&self) -> &[u8] {
        self.buf.as_deref().map_or(&[], Vec::as_slice)
    }

    /// How many bytes there are.
    pub fn len(&self) -> usize {
        self.bytes().len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.bytes().is_empty()
    }

    /// Bytes the buffer holds without growing.
    pub fn capacity(&self) -> usize {
        self.buf.as_deref().map_or(0, Vec::capacity)
    }

    /// The buffer, unshared: a new one (with room for `additional` bytes
    /// more than there are) if there was none or a part of it is kept
    /// elsewhere. Fails only if the heap has no room; nothing changed then.
    fn unshared(&mut self, additional: usize) -> Result<&mut Vec<u8>, TryReserveError> {
        if self.buf.as_mut().is_none_or(|rc| Rc::get_mut(rc).is_none()) {
            let mut fresh = Vec::new();
            fresh.try_reserve(self.len().saturating_add(additional))?;
            fresh.extend_from_slice(self.bytes());
            // The Rc's own small box is allocated infallibly (stable Rust has no
            // `Rc::try_new`), like a map node: covered by the heap's reserve.
            self.buf = Some(Rc::new(fresh));
        }
        // Present and unique by now: this neither inserts nor clones.
        Ok(Rc::make_mut(self.buf.get_or_insert_default()))
    }

    /// Appends `bytes`; on `Err` (no room on the heap) nothing changed.
    pub fn try_extend(&mut self, bytes: &[u8]) -> Result<(), TryReserveError> {
        let buf = self.unshared(bytes.len())?;
        buf.try_reserve(bytes.len())?;
        buf.extend_from_slice(bytes);
        Ok(())
    }

    /// Makes room for a big request of `total` bytes of which `have` have
    /// arrived (or are being added): exactly `total` once that is at most
    /// twice `have`, else twice `have`. A request that keeps arriving ends in
    /// a buffer of exactly its size (a kept part of it holds no slack), with
    /// few regrowths on the way; a bare header that announces a big value
    /// pins no memory (redis's CVE-2021-32675).
    fn try_reserve_request(&mut self, total: usize, have: usize) -> Result<(), TryReserveError> {
        let goal = total.min(have.saturating_mul(2));
        let additional = goal.saturating_sub(self.len());
        self.unshared(additional)?.try_reserve_exact(additional)
    }

    /// At most how many bytes to add next: those up to the end of a big
    /// request in progress, so that it ends in a buffer of its size which the
    /// protocol may keep a part of (`None`: no limit).
    pub fn read_limit(&self) -> Option<usize> {
        self.big_request.map(|len| len.saturating_sub(self.len())).filter(|&n| n > 0)
    }

    /// Keeps what [`crate::Protocol::handle`] left unanswered of `received`
    /// (bytes it read in place, with this buffer empty), with room toward a
    /// big request. On `Err` (no room on the heap) the connection cannot go on.
    pub fn keep_unanswered(&mut self, received: &[u8], progress: &Progress) -> Result<(), TryReserveError> {
        let rest = received.get(progress.consumed..).unwrap_or_default();
        self.big_request = progress.big_request;
        if let Some(len) = progress.big_request {
            self.try_reserve_request(len, rest.len())?;
        }
        self.try_extend(rest)
    }

    /// Drops what [`crate::Protocol::handle_received`] answered of this
    /// buffer and makes room toward a big request. On `Err` (no room on the
    /// heap) the connection cannot go on.
    pub fn answered(&mut self, progress: &Progress) -> Result<(), TryReserveError> {
        self.consume(progress.consumed)?;
        self.big_request = progress.big_request;
        match progress.big_request {
            Some(len) => self.try_reserve_request(len, self.len()),
            None => Ok(()),
        }
    }

    /// Drops the first `n` bytes (answered). If a part of the buffer is kept
    /// elsewhere, the rest moves to a new buffer instead; on `Err` (no room
    /// for it) nothing changed.
    fn consume(&mut self, n: usize) -> Result<(), TryReserveError> {
        let Some(rc) = self.buf.as_mut() else { return Ok(()) };
        let n = n.min(rc.len());
        if let Some(buf) = Rc::get_mut(rc) {
            buf.drain(..n);
            return Ok(());
        }
        if n == rc.len() {
            self.buf = None;
        } else {
            let mut rest = Vec::new();
            rest.try_reserve(rc.len() - n)?;
            rest.extend_from_slice(&rc[n..]);
            self.buf = Some(Rc::new(rest));
        }
        Ok(())
    }

    /// Gives the memory back once empty, if the buffer has grown past `keep`
    /// bytes (a big request is over).
    pub fn shrink_if_empty(&mut self, keep: usize) {
        if self.is_empty() && self.capacity() > keep {
            *self = Received::default();
        }
    }

    /// All of the buffer as a [`Shared`], from which a protocol cuts what it
    /// keeps (`None` while there is no buffer).
    pub fn share(&self) -> Option<Shared> {
        let buf = Rc::clone(self.buf.as_ref()?);
        Some(Shared { start: 0, len: buf.len(), buf })
    }
}

/// A part of a [`Received`] buffer kept past its request; the whole buffer
/// stays allocated while any part of it is kept.
#[derive(Debug, Clone)]
pub struct Shared {
    buf: Rc<Vec<u8>>,
    start: usize,
    len: usize,
}

impl Shared {
    /// The part of this one that `part` is, if `part` lies in it (by address:
    /// a slice of these very bytes, not equal ones elsewhere).
    pub fn cut(&self, part: &[u8]) -> Option<Shared> {
        let base = self.as_ptr() as usize;
        let at = (part.as_ptr() as usize).checked_sub(base)?;
        (at.checked_add(part.len())? <= self.len).then(|| Shared {
            buf: Rc::clone(&self.buf),
            start: self.start + at,
            len: part.len(),
        })
    }

    /// Bytes the whole underlying buffer holds (what keeping this part costs).
    pub fn buffer_capacity(&self) -> usize {
        self.buf.capacity()
    }
}

impl Deref for Shared {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.buf[self.start..self.start + self.len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_part_survives_and_the_rest_moves() {
        let mut r = Received::default();
        r.try_extend(b"*3\r\n$3\r\nSET\r\n").unwrap();
        // Twice what is there at most, then exactly the request.
        r.try_reserve_request(1000, 13).unwrap();
        assert_eq!(r.capacity(), 26);
        r.try_reserve_request(40, 26).unwrap();
        assert_eq!(r.capacity(), 40);
        r.try_extend(b"value\r\nnext").unwrap();
        let whole = r.share().unwrap();
        let kept = whole.cut(&r.bytes()[13..18]).unwrap();
        assert_eq!(&*kept, b"value");
        assert_eq!(kept.buffer_capacity(), 40);
        // Equal bytes elsewhere are not a part of it.
        assert!(whole.cut(b"value").is_none());
        assert!(whole.cut(&r.bytes()[20..]).is_some_and(|s| *s == *b"next"));
        assert!(whole.cut(&r.bytes()[24..]).is_some_and(|s| s.is_empty()));
        assert!(whole.cut(&[0u8; 64]).is_none());
        drop(whole);
        let before = r.bytes().as_ptr();
        r.consume(20).unwrap();
        assert_eq!(r.bytes(), b"next");
        assert_ne!(r.bytes().as_ptr(), before, "the kept buffer is not written again");
        r.try_extend(b" more").unwrap();
        assert_eq!(r.bytes(), b"next more");
        assert_eq!(&*kept, b"value");
        // Unshared, consuming drains in place.
        let before = r.bytes().as_ptr();
        r.consume(5).unwrap();
        assert_eq!((r.bytes(), r.bytes().as_ptr()), (&b"more"[..], before));
        r.consume(4).unwrap();
        r.shrink_if_empty(0);
        assert_eq!(r.capacity(), 0);
    }
}
