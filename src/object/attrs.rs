//! Compact attribute storage: one sorted slot table and one byte buffer per object, with
//! the common CK_BBOOL attributes as bits, so an object costs two allocations instead of a
//! tree node per attribute plus a `Vec` per value. With 100,000 keys on a token this is
//! most of the memory and load time.

use cryptoki_sys::*;

/// The largest attribute value kept (values come from templates; larger ones are refused
/// with CKR_ATTRIBUTE_VALUE_INVALID before they get here).
pub const MAX_VALUE_LEN: usize = u32::MAX as usize;

#[derive(Clone, Copy, Debug)]
struct Slot {
    ty: CK_ATTRIBUTE_TYPE,
    off: u32,
    len: u32,
}

/// The bit that stands for a boolean attribute kept packed (most of a key's attributes).
fn bool_bit(ty: CK_ATTRIBUTE_TYPE) -> Option<u32> {
    let i = match ty {
        CKA_TOKEN => 0,
        CKA_PRIVATE => 1,
        CKA_MODIFIABLE => 2,
        CKA_COPYABLE => 3,
        CKA_DESTROYABLE => 4,
        CKA_SENSITIVE => 5,
        CKA_ENCRYPT => 6,
        CKA_DECRYPT => 7,
        CKA_SIGN => 8,
        CKA_VERIFY => 9,
        CKA_SIGN_RECOVER => 10,
        CKA_VERIFY_RECOVER => 11,
        CKA_WRAP => 12,
        CKA_UNWRAP => 13,
        CKA_DERIVE => 14,
        CKA_EXTRACTABLE => 15,
        CKA_LOCAL => 16,
        CKA_NEVER_EXTRACTABLE => 17,
        CKA_ALWAYS_SENSITIVE => 18,
        CKA_WRAP_WITH_TRUSTED => 19,
        CKA_TRUSTED => 20,
        CKA_ALWAYS_AUTHENTICATE => 21,
        _ => return None,
    };
    Some(i)
}

/// The attribute type of each packed bit, in bit order.
const PACKED: [CK_ATTRIBUTE_TYPE; 22] = [
    CKA_TOKEN,
    CKA_PRIVATE,
    CKA_MODIFIABLE,
    CKA_COPYABLE,
    CKA_DESTROYABLE,
    CKA_SENSITIVE,
    CKA_ENCRYPT,
    CKA_DECRYPT,
    CKA_SIGN,
    CKA_VERIFY,
    CKA_SIGN_RECOVER,
    CKA_VERIFY_RECOVER,
    CKA_WRAP,
    CKA_UNWRAP,
    CKA_DERIVE,
    CKA_EXTRACTABLE,
    CKA_LOCAL,
    CKA_NEVER_EXTRACTABLE,
    CKA_ALWAYS_SENSITIVE,
    CKA_WRAP_WITH_TRUSTED,
    CKA_TRUSTED,
    CKA_ALWAYS_AUTHENTICATE,
];

const FALSE: &[u8] = &[CK_FALSE];
const TRUE: &[u8] = &[CK_TRUE];

/// Attribute type → value bytes.
#[derive(Clone, Default)]
pub struct AttrMap {
    /// Sorted by type.
    slots: Vec<Slot>,
    data: Vec<u8>,
    /// Bytes in `data` no slot points at any more (replaced values).
    garbage: u32,
    /// Packed booleans: which are present, and which of those are CK_TRUE. A boolean
    /// given as a byte other than 0 or 1 is kept in a slot as given.
    bools_present: u32,
    bools_true: u32,
}

impl AttrMap {
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty map with room for `slots` non-boolean values of `data` bytes in all.
    pub fn with_capacity(slots: usize, data: usize) -> Self {
        AttrMap {
            slots: Vec::with_capacity(slots),
            data: Vec::with_capacity(data),
            ..AttrMap::default()
        }
    }

    fn find(&self, ty: CK_ATTRIBUTE_TYPE) -> Result<usize, usize> {
        self.slots.binary_search_by_key(&ty, |s| s.ty)
    }

    fn bytes(&self, s: &Slot) -> &[u8] {
        &self.data[s.off as usize..s.off as usize + s.len as usize]
    }

    fn packed(&self, bit: u32) -> Option<&'static [u8]> {
        let mask = 1u32 << bit;
        (self.bools_present & mask != 0).then_some(if self.bools_true & mask != 0 {
            TRUE
        } else {
            FALSE
        })
    }

    pub fn get(&self, ty: &CK_ATTRIBUTE_TYPE) -> Option<&[u8]> {
        if let Some(v) = bool_bit(*ty).and_then(|bit| self.packed(bit)) {
            return Some(v);
        }
        self.find(*ty).ok().map(|i| self.bytes(&self.slots[i]))
    }

    pub fn contains_key(&self, ty: &CK_ATTRIBUTE_TYPE) -> bool {
        self.get(ty).is_some()
    }

    pub fn len(&self) -> usize {
        self.slots.len() + self.bools_present.count_ones() as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sets a value, replacing any previous one.
    pub fn insert(&mut self, ty: CK_ATTRIBUTE_TYPE, value: impl AsRef<[u8]>) {
        let value = value.as_ref();
        debug_assert!(value.len() <= MAX_VALUE_LEN);
        if let Some(bit) = bool_bit(ty) {
            let mask = 1u32 << bit;
            if let [b @ (CK_FALSE | CK_TRUE)] = value {
                self.remove_slot(ty);
                self.bools_present |= mask;
                if *b == CK_TRUE {
                    self.bools_true |= mask;
                } else {
                    self.bools_true &= !mask;
                }
                return;
            }
            self.bools_present &= !mask;
        }
        let len = value.len() as u32;
        match self.find(ty) {
            Ok(i) => {
                let slot = self.slots[i];
                if slot.len == len {
                    let at = slot.off as usize;
                    self.data[at..at + value.len()].copy_from_slice(value);
                    return;
                }
                self.garbage += slot.len;
                let off = self.append(value);
                self.slots[i] = Slot { ty, off, len };
                self.compact_if_wasteful();
            }
            Err(i) => {
                let off = self.append(value);
                self.slots.insert(i, Slot { ty, off, len });
            }
        }
    }

    /// Inserts only when absent (BTreeMap's `entry().or_insert_with()`).
    pub fn insert_if_absent(&mut self, ty: CK_ATTRIBUTE_TYPE, value: impl FnOnce() -> Vec<u8>) {
        if !self.contains_key(&ty) {
            self.insert(ty, value());
        }
    }

    pub fn remove(&mut self, ty: &CK_ATTRIBUTE_TYPE) -> bool {
        if let Some(bit) = bool_bit(*ty) {
            let mask = 1u32 << bit;
            if self.bools_present & mask != 0 {
                self.bools_present &= !mask;
                return true;
            }
        }
        self.remove_slot(*ty)
    }

    fn remove_slot(&mut self, ty: CK_ATTRIBUTE_TYPE) -> bool {
        match self.find(ty) {
            Ok(i) => {
                self.garbage += self.slots[i].len;
                self.slots.remove(i);
                self.compact_if_wasteful();
                true
            }
            Err(_) => false,
        }
    }

    /// Every pair: the slots in ascending type order, then the packed booleans.
    pub fn iter(&self) -> impl Iterator<Item = (CK_ATTRIBUTE_TYPE, &[u8])> + '_ {
        let bools = PACKED
            .iter()
            .enumerate()
            .filter_map(|(bit, ty)| self.packed(bit as u32).map(|v| (*ty, v)));
        self.slots
            .iter()
            .map(move |s| (s.ty, self.bytes(s)))
            .chain(bools)
    }

    pub fn keys(&self) -> impl Iterator<Item = CK_ATTRIBUTE_TYPE> + '_ {
        self.iter().map(|(ty, _)| ty)
    }

    /// Decodes a stored record into a map sized exactly (one pass to count, one to fill:
    /// no regrowth while loading a large token).
    pub fn from_record(record: &[u8]) -> crate::error::Result<AttrMap> {
        let (mut slots, mut data) = (0usize, 0usize);
        crate::store::record::decode_each(record, |ty, v| {
            let packed = bool_bit(ty).is_some() && matches!(v, [CK_FALSE | CK_TRUE]);
            if !packed {
                slots += 1;
                data += v.len();
            }
        })?;
        let mut m = AttrMap::with_capacity(slots, data);
        crate::store::record::decode_each(record, |ty, v| m.insert(ty, v))?;
        Ok(m)
    }

    /// Drops spare capacity and replaced values: call once an object is complete.
    pub fn shrink_to_fit(&mut self) {
        if self.garbage > 0 {
            self.compact();
        }
        self.slots.shrink_to_fit();
        self.data.shrink_to_fit();
    }

    fn append(&mut self, value: &[u8]) -> u32 {
        let off = self.data.len() as u32;
        self.data.extend_from_slice(value);
        off
    }

    fn compact_if_wasteful(&mut self) {
        if self.garbage as usize > 64 && self.garbage as usize * 2 > self.data.len() {
            self.compact();
        }
    }

    fn compact(&mut self) {
        let mut data = Vec::with_capacity(self.data.len() - self.garbage as usize);
        for s in &mut self.slots {
            let at = s.off as usize;
            s.off = data.len() as u32;
            data.extend_from_slice(&self.data[at..at + s.len as usize]);
        }
        self.data = data;
        self.garbage = 0;
    }
}

impl FromIterator<(CK_ATTRIBUTE_TYPE, Vec<u8>)> for AttrMap {
    fn from_iter<I: IntoIterator<Item = (CK_ATTRIBUTE_TYPE, Vec<u8>)>>(iter: I) -> Self {
        let mut m = AttrMap::new();
        for (ty, v) in iter {
            m.insert(ty, v);
        }
        m.shrink_to_fit();
        m
    }
}

impl PartialEq for AttrMap {
    fn eq(&self, other: &Self) -> bool {
        self.bools_present == other.bools_present
            && self.bools_true == other.bools_true
            && self.slots.len() == other.slots.len()
            && self.iter().eq(other.iter())
    }
}

impl std::fmt::Debug for AttrMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.keys()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn behaves_like_an_ordered_map() {
        let mut m = AttrMap::new();
        let mut model = BTreeMap::new();
        // A fixed pseudo-random sequence of inserts, replacements of every length and
        // removals, checked against BTreeMap after each step.
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for step in 0..5000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let ty = 0x1000 + x % 40; // none of them packed booleans
            if x % 7 == 0 {
                assert_eq!(m.remove(&ty), model.remove(&ty).is_some());
            } else {
                let v = vec![step as u8; (x >> 20) as usize % 90];
                m.insert(ty, &v);
                model.insert(ty, v);
            }
            assert_eq!(m.len(), model.len());
            for (k, v) in &model {
                assert_eq!(m.get(k), Some(v.as_slice()), "step {step} type {k}");
            }
            assert_eq!(
                m.data.len() - m.garbage as usize,
                model.values().map(Vec::len).sum::<usize>()
            );
        }
        let keys: Vec<_> = m.keys().collect();
        let want: Vec<_> = model.keys().copied().collect();
        assert_eq!(keys, want);
        m.shrink_to_fit();
        assert_eq!(m.garbage, 0);
        assert_eq!(m.data.len(), model.values().map(Vec::len).sum::<usize>());
        for (k, v) in &model {
            assert_eq!(m.get(k), Some(v.as_slice()));
        }
    }

    #[test]
    fn booleans_pack_unless_unusual() {
        let mut m = AttrMap::new();
        m.insert(CKA_SIGN, [CK_TRUE]);
        m.insert(CKA_ENCRYPT, [CK_FALSE]);
        assert_eq!(m.slots.len(), 0);
        assert_eq!(m.get(&CKA_SIGN), Some(TRUE));
        assert_eq!(m.get(&CKA_ENCRYPT), Some(FALSE));
        assert_eq!(m.get(&CKA_DECRYPT), None);
        // A byte other than 0/1 is kept as given, and replacing it packs again.
        m.insert(CKA_SIGN, [2]);
        assert_eq!(m.get(&CKA_SIGN), Some(&[2u8][..]));
        assert_eq!(m.len(), 2);
        m.insert(CKA_SIGN, [CK_FALSE]);
        assert_eq!(m.get(&CKA_SIGN), Some(FALSE));
        assert_eq!(m.slots.len(), 0);
        assert!(m.remove(&CKA_SIGN));
        assert!(!m.contains_key(&CKA_SIGN));
        let pairs: Vec<_> = m.iter().collect();
        assert_eq!(pairs, vec![(CKA_ENCRYPT, FALSE)]);
    }

    #[test]
    fn from_record_is_exact() {
        let mut m = AttrMap::new();
        m.insert(CKA_LABEL, b"abc");
        m.insert(CKA_TOKEN, [CK_TRUE]);
        m.insert(CKA_SIGN, [7]);
        m.insert(CKA_ID, []);
        let rec = crate::store::record::encode(m.iter());
        let back = AttrMap::from_record(&rec).unwrap();
        assert!(back == m);
        assert_eq!(back.slots.capacity(), back.slots.len());
        assert_eq!(back.data.capacity(), back.data.len());
        assert!(AttrMap::from_record(&rec[..rec.len() - 1]).is_err());
    }

    #[test]
    fn absent_and_empty_differ() {
        let mut m = AttrMap::new();
        m.insert(3, []);
        assert_eq!(m.get(&3), Some(&[][..]));
        assert_eq!(m.get(&4), None);
        m.insert_if_absent(3, || vec![1]);
        assert_eq!(m.get(&3), Some(&[][..]));
        m.insert_if_absent(4, || vec![1]);
        assert_eq!(m.get(&4), Some(&[1u8][..]));
    }
}
