//! The stored record format for attribute sets: a version byte, then
//! (type u64 LE, length u32 LE, bytes) entries. The decoder never panics on hostile input.

use crate::error::{Error, Result};
use cryptoki_sys::CK_ATTRIBUTE_TYPE;

const RECORD_VERSION: u8 = 1;
/// No single attribute in a sane object is larger than this.
const MAX_VALUE_LEN: usize = 16 * 1024 * 1024;

pub fn encode<'a, I>(entries: I) -> Vec<u8>
where
    I: IntoIterator<Item = (CK_ATTRIBUTE_TYPE, &'a [u8])>,
{
    // Sized once: the record may hold secret values, and a growing Vec would leave copies
    // of them behind in freed memory.
    let entries: Vec<(CK_ATTRIBUTE_TYPE, &[u8])> = entries.into_iter().collect();
    let total = 1 + entries.iter().map(|(_, v)| 12 + v.len()).sum::<usize>();
    let mut out = Vec::with_capacity(total);
    out.push(RECORD_VERSION);
    for (ty, value) in entries {
        out.extend_from_slice(&ty.to_le_bytes());
        out.extend_from_slice(&(value.len() as u32).to_le_bytes());
        out.extend_from_slice(value);
    }
    out
}

pub fn decode(bytes: &[u8]) -> Result<Vec<(CK_ATTRIBUTE_TYPE, Vec<u8>)>> {
    let mut out = Vec::new();
    decode_each(bytes, |ty, value| out.push((ty, value.to_vec())))?;
    Ok(out)
}

/// Visits each (type, value) of a record without copying the values (loading a large
/// token copies each value once, into its object).
pub fn decode_each(bytes: &[u8], mut visit: impl FnMut(CK_ATTRIBUTE_TYPE, &[u8])) -> Result<()> {
    let bad = |why: &str| Error::DeviceError(format!("stored record is corrupt: {why}"));
    let (version, mut rest) = bytes.split_first().ok_or_else(|| bad("empty"))?;
    if *version != RECORD_VERSION {
        return Err(bad("unknown record version"));
    }
    while !rest.is_empty() {
        if rest.len() < 12 {
            return Err(bad("truncated header"));
        }
        let (ty_bytes, tail) = rest.split_at(8);
        let (len_bytes, tail) = tail.split_at(4);
        let ty = u64::from_le_bytes(ty_bytes.try_into().map_err(|_| bad("type"))?);
        let len = u32::from_le_bytes(len_bytes.try_into().map_err(|_| bad("length"))?) as usize;
        if len > MAX_VALUE_LEN || len > tail.len() {
            return Err(bad("length out of range"));
        }
        let (value, tail) = tail.split_at(len);
        let ty = CK_ATTRIBUTE_TYPE::try_from(ty).map_err(|_| bad("type out of range"))?;
        visit(ty, value);
        rest = tail;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let e = encode([(1, &b"abc"[..]), (0x11, &[][..])]);
        assert_eq!(
            decode(&e).unwrap(),
            vec![(1, b"abc".to_vec()), (0x11, vec![])]
        );
    }

    #[test]
    fn hostile_inputs_are_errors_not_panics() {
        let good = encode([(3, &b"hello"[..])]);
        for cut in 0..good.len() {
            let r = decode(&good[..cut]);
            assert!(r.is_err() || cut == 1, "cut {cut}");
        }
        let mut huge = vec![1u8];
        huge.extend_from_slice(&1u64.to_le_bytes());
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode(&huge).is_err());
        assert!(decode(&[9]).is_err());
    }
}
