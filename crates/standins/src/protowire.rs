//! Protocol-buffers wire format, by hand: the stand-ins need only a few
//! messages (Kubernetes request bodies, etcd's KV service), not codegen.

/// The input was not valid protobuf.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("truncated or malformed protobuf")]
pub struct WireError;

/// One decoded field value.
pub enum Wire<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    /// Fixed 32/64-bit values: none of our messages use them.
    Skip,
}

/// Reads fields one after another.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    fn varint(&mut self) -> Result<u64, WireError> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = *self.buf.get(self.pos).ok_or(WireError)?;
            self.pos += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(WireError)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        let end = self.pos.checked_add(n).ok_or(WireError)?;
        let s = self.buf.get(self.pos..end).ok_or(WireError)?;
        self.pos = end;
        Ok(s)
    }

    /// Whether all input was read.
    pub fn done(&self) -> bool {
        self.pos >= self.buf.len()
    }

    /// The next field number and value.
    pub fn field(&mut self) -> Result<(u64, Wire<'a>), WireError> {
        let key = self.varint()?;
        let wire = match key & 7 {
            0 => Wire::Varint(self.varint()?),
            1 => {
                self.take(8)?;
                Wire::Skip
            }
            2 => {
                let n = usize::try_from(self.varint()?).map_err(|_| WireError)?;
                Wire::Bytes(self.take(n)?)
            }
            5 => {
                self.take(4)?;
                Wire::Skip
            }
            _ => return Err(WireError),
        };
        Ok((key >> 3, wire))
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Appends a length-delimited field (bytes, string or sub-message).
pub fn put_bytes(out: &mut Vec<u8>, field: u64, data: &[u8]) {
    put_varint(out, (field << 3) | 2);
    put_varint(out, data.len() as u64);
    out.extend_from_slice(data);
}

/// Appends a varint field (int64, enum, bool), even when zero.
pub fn put_int(out: &mut Vec<u8>, field: u64, v: i64) {
    put_varint(out, field << 3);
    put_varint(out, v as u64);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut b = Vec::new();
        put_int(&mut b, 1, 300);
        put_bytes(&mut b, 2, b"hi");
        put_int(&mut b, 3, -1);
        let mut r = Reader::new(&b);
        assert!(matches!(r.field().unwrap(), (1, Wire::Varint(300))));
        assert!(matches!(r.field().unwrap(), (2, Wire::Bytes(b"hi"))));
        assert!(matches!(r.field().unwrap(), (3, Wire::Varint(v)) if v as i64 == -1));
        assert!(r.done());
        assert!(Reader::new(&[0x0a, 0x05, 0x01]).field().is_err());
    }
}
