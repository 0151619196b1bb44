//! Pointer and length rules, written once: a zero length is an empty slice whatever the
//! pointer; NULL with a non-zero length is CKR_ARGUMENTS_BAD; CK_ULONG converts to usize
//! through `try_from`; a NULL output buffer is a length query, never an error.

use crate::error::{Error, Result};
use crate::object::Template;
use cryptoki_sys::*;

pub fn to_usize(v: CK_ULONG) -> Result<usize> {
    let n = usize::try_from(v).map_err(|_| Error::ArgumentsBad("length does not fit in memory"))?;
    if n > isize::MAX as usize {
        return Err(Error::ArgumentsBad("length larger than isize::MAX"));
    }
    Ok(n)
}

pub fn to_ulong(v: usize) -> CK_ULONG {
    CK_ULONG::try_from(v).unwrap_or(CK_ULONG::MAX)
}

/// An input buffer.
///
/// # Safety
/// When `len` is non-zero and `ptr` non-NULL, `ptr` must be valid for `len` bytes for 'a.
pub unsafe fn in_bytes<'a>(ptr: *const u8, len: CK_ULONG) -> Result<&'a [u8]> {
    let len = to_usize(len)?;
    if len == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(Error::ArgumentsBad("NULL buffer with a non-zero length"));
    }
    // SAFETY: non-NULL, and the caller guarantees `len` readable bytes.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// A required output pointer to one value.
///
/// # Safety
/// `ptr` must be NULL or valid for writes of one `T`.
pub unsafe fn out_ref<'a, T>(ptr: *mut T) -> Result<&'a mut T> {
    // SAFETY: the caller guarantees a non-NULL ptr is valid for writes; NULL is rejected.
    unsafe { ptr.as_mut() }.ok_or(Error::ArgumentsBad("NULL output pointer"))
}

/// How much room the caller gave for an output: None for a NULL buffer (a length query).
///
/// # Safety
/// `len_ptr` must be NULL or point to a readable CK_ULONG.
pub unsafe fn out_capacity(buf: *mut u8, len_ptr: *mut CK_ULONG) -> Result<Option<usize>> {
    // SAFETY: forwarded caller guarantee.
    let len = unsafe { out_ref(len_ptr) }?;
    if buf.is_null() {
        return Ok(None);
    }
    Ok(Some(usize::try_from(*len).unwrap_or(usize::MAX)))
}

/// An input (borrowed, or copied when it overlapped the output) and the output buffer.
pub type InAndOut<'a> = (std::borrow::Cow<'a, [u8]>, Option<&'a mut [u8]>);

/// The input and the caller's output buffer of a call that writes straight into it
/// (`None` for a NULL output: a length query). An output overlapping the input (in-place
/// encryption) gets the input copied first: a shared and a mutable slice may not cover
/// the same bytes.
///
/// # Safety
/// `p_in` valid for `ul_in` reads; `pul_out` NULL or a valid CK_ULONG; `p_out` NULL or
/// valid for `*pul_out` bytes of writes.
pub unsafe fn in_and_out<'a>(
    p_in: *const u8,
    ul_in: CK_ULONG,
    p_out: *mut u8,
    pul_out: *mut CK_ULONG,
) -> Result<InAndOut<'a>> {
    // SAFETY: forwarded caller guarantee.
    let cap = unsafe { out_capacity(p_out, pul_out) }?;
    let out_len = match cap {
        Some(n) if n > isize::MAX as usize => {
            return Err(Error::ArgumentsBad("output length larger than isize::MAX"))
        }
        other => other,
    };
    // SAFETY: forwarded caller guarantee.
    let input = unsafe { in_bytes(p_in, ul_in) }?;
    let (in_start, in_end) = (
        input.as_ptr() as usize,
        input.as_ptr() as usize + input.len(),
    );
    let overlaps = out_len.is_some_and(|n| {
        let out_start = p_out as usize;
        n > 0 && !input.is_empty() && out_start < in_end && in_start < out_start + n
    });
    let input = if overlaps {
        std::borrow::Cow::Owned(input.to_vec())
    } else {
        std::borrow::Cow::Borrowed(input)
    };
    let out: Option<&mut [u8]> = match out_len {
        None => None,
        Some(0) => Some(&mut []),
        // SAFETY: non-NULL (out_capacity maps NULL to None) and valid for `n` bytes of
        // writes (caller guarantee); no live slice of the input covers it (copied above
        // when it overlapped).
        Some(n) => Some(unsafe { std::slice::from_raw_parts_mut(p_out, n) }),
    };
    Ok((input, out))
}

/// Writes `data` to an output buffer with the length convention of §5.2.
///
/// # Safety
/// `len_ptr` must be NULL or a valid CK_ULONG; `buf` NULL or valid for `*len_ptr` bytes.
pub unsafe fn write_output(buf: *mut u8, len_ptr: *mut CK_ULONG, data: &[u8]) -> Result<()> {
    // SAFETY: forwarded caller guarantee.
    let len = unsafe { out_ref(len_ptr) }?;
    let needed = to_ulong(data.len());
    if buf.is_null() {
        *len = needed;
        return Ok(());
    }
    if *len < needed {
        *len = needed;
        return Err(Error::BufferTooSmall);
    }
    // SAFETY: buf is valid for *len >= data.len() bytes and does not overlap our data.
    unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), buf, data.len()) };
    *len = needed;
    Ok(())
}

/// Reads a template. Nested attribute arrays (CKA_WRAP_TEMPLATE, CKA_UNWRAP_TEMPLATE,
/// CKA_DERIVE_TEMPLATE) are stored in the record encoding.
///
/// # Safety
/// `ptr` must be NULL or valid for `count` CK_ATTRIBUTEs, each valid as the spec says.
pub unsafe fn read_template(ptr: *const CK_ATTRIBUTE, count: CK_ULONG) -> Result<Template> {
    let count = to_usize(count)?;
    if count == 0 {
        return Ok(Vec::new());
    }
    if ptr.is_null() {
        return Err(Error::ArgumentsBad("NULL template with a non-zero count"));
    }
    // SAFETY: non-NULL and the caller guarantees `count` attributes.
    let attrs = unsafe { std::slice::from_raw_parts(ptr, count) };
    let mut out = Vec::with_capacity(count);
    for a in attrs {
        if a.ulValueLen == CK_UNAVAILABLE_INFORMATION {
            return Err(Error::AttributeValueInvalid(a.type_));
        }
        let value = if matches!(
            a.type_,
            CKA_WRAP_TEMPLATE | CKA_UNWRAP_TEMPLATE | CKA_DERIVE_TEMPLATE
        ) {
            let n = to_usize(a.ulValueLen)? / std::mem::size_of::<CK_ATTRIBUTE>();
            // SAFETY: the nested array is valid as the outer one (caller guarantee).
            let nested = unsafe { read_template(a.pValue as *const CK_ATTRIBUTE, to_ulong(n)) }?;
            crate::store::record::encode(nested.iter().map(|(t, v)| (*t, v.as_slice())))
        } else {
            // SAFETY: pValue valid for ulValueLen bytes (caller guarantee).
            unsafe { in_bytes(a.pValue as *const u8, a.ulValueLen) }?.to_vec()
        };
        out.push((a.type_, value));
    }
    Ok(out)
}

/// Reads a template holding secrets (C_CreateObject key values) into zeroizing storage.
/// The returned Template is consumed quickly by the object layer.
pub fn wipe_template(t: &mut Template) {
    for (_, v) in t.iter_mut() {
        zeroize::Zeroize::zeroize(v);
    }
}

/// Fills a fixed-width, space-padded PKCS#11 string field.
pub fn pad_into(dst: &mut [u8], s: &str) {
    dst.fill(b' ');
    let b = s.as_bytes();
    let n = b.len().min(dst.len());
    dst[..n].copy_from_slice(&b[..n]);
}

/// Writes an array output (slot list, mechanism list, interface list) with the length
/// convention: NULL array → count only; short array → count and CKR_BUFFER_TOO_SMALL.
///
/// # Safety
/// `count_ptr` must be NULL or a valid CK_ULONG; `out` NULL or valid for `*count_ptr` items.
pub unsafe fn write_array<T: Copy>(
    items: &[T],
    out: *mut T,
    count_ptr: *mut CK_ULONG,
) -> Result<()> {
    // SAFETY: forwarded caller guarantee.
    let count = unsafe { out_ref(count_ptr) }?;
    let needed = to_ulong(items.len());
    if out.is_null() {
        *count = needed;
        return Ok(());
    }
    if *count < needed {
        *count = needed;
        return Err(Error::BufferTooSmall);
    }
    // SAFETY: the caller's array holds *count >= items.len() entries.
    unsafe { std::ptr::copy_nonoverlapping(items.as_ptr(), out, items.len()) };
    *count = needed;
    Ok(())
}
