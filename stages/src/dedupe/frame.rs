//! The on-disk frame of spilled records and assembled documents.
//!
//! A frame is a tag byte and length-prefixed byte strings. It is private to
//! one run (written and read by the same binary), so it needs no versioning,
//! only to be cheap and to fail cleanly on a torn tail.

use std::io::{self, BufRead, Write};

pub const ASSET: u8 = b'A';
pub const FINDING: u8 = b'F';
pub const ORPHAN: u8 = b'O';

/// One frame: a tag and up to three fields.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Frame {
    pub tag: u8,
    pub a: Vec<u8>,
    pub b: Vec<u8>,
    pub c: Vec<u8>,
}

pub fn write(w: &mut impl Write, tag: u8, a: &[u8], b: &[u8], c: &[u8]) -> io::Result<u64> {
    w.write_all(&[tag])?;
    for part in [a, b, c] {
        let len = u32::try_from(part.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "record over 4 GiB"))?;
        w.write_all(&len.to_le_bytes())?;
        w.write_all(part)?;
    }
    Ok(13 + (a.len() + b.len() + c.len()) as u64)
}

/// Bytes `f` takes in a file.
pub fn size(f: &Frame) -> u64 {
    13 + (f.a.len() + f.b.len() + f.c.len()) as u64
}

/// Read the next frame into `f`, reusing its buffers; `Ok(false)` at a clean end.
pub fn read(r: &mut impl BufRead, f: &mut Frame) -> io::Result<bool> {
    let mut tag = [0u8; 1];
    match r.read(&mut tag)? {
        0 => return Ok(false),
        _ => f.tag = tag[0],
    }
    for part in [&mut f.a, &mut f.b, &mut f.c] {
        let mut len = [0u8; 4];
        r.read_exact(&mut len)?;
        let len = u32::from_le_bytes(len) as usize;
        part.clear();
        part.resize(len, 0);
        r.read_exact(part)?;
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_torn_tail() {
        let mut buf = Vec::new();
        write(&mut buf, ASSET, b"a1", b"", b"{}").unwrap();
        write(&mut buf, FINDING, b"a1", b"v1", b"{\"x\":1}").unwrap();
        let mut r = io::BufReader::new(&buf[..]);
        let mut f = Frame::default();
        assert!(read(&mut r, &mut f).unwrap());
        assert_eq!((f.tag, &f.a[..], &f.c[..]), (ASSET, &b"a1"[..], &b"{}"[..]));
        assert!(read(&mut r, &mut f).unwrap());
        assert_eq!((f.tag, &f.b[..]), (FINDING, &b"v1"[..]));
        assert!(!read(&mut r, &mut f).unwrap());
        let torn = &buf[..buf.len() - 2];
        let mut r = io::BufReader::new(torn);
        assert!(read(&mut r, &mut f).unwrap());
        assert!(read(&mut r, &mut f).is_err());
    }
}
