//! Raw PKCS#11 through `C_GetFunctionList` (libloading + cryptoki-sys), for what the
//! cryptoki crate hides: the length convention, NULL arguments, calls before
//! C_Initialize, and mechanisms cryptoki has no variant for. Loading the same path as
//! cryptoki gives the same module instance, so both can be used in one process.

use cryptoki_sys::*;
use std::ptr::{null_mut, NonNull};

pub struct Raw {
    _lib: libloading::Library,
    list: NonNull<CK_FUNCTION_LIST>,
}

/// Calls a function of the 2.40 list: `ck!(raw, C_Foo(args...))` → CK_RV.
/// The arguments are evaluated inside the unsafe block on purpose: every call site is a
/// raw FFI call whose pointer arguments are the point of the test.
#[macro_export]
macro_rules! ck {
    ($raw:expr, $f:ident ( $($a:expr),* $(,)? )) => {{
        let f = $raw.list().$f.expect(concat!(stringify!($f), " is NULL"));
        // SAFETY: the module implements the PKCS#11 ABI; callers pass valid pointers or
        // NULL on purpose.
        unsafe { f($($a),*) }
    }};
}

impl Raw {
    pub fn load() -> Raw {
        let path = super::module_path();
        // SAFETY: loading the module under test runs no initializer with preconditions.
        let lib = unsafe { libloading::Library::new(&path) }.expect("dlopen the module");
        let mut list: *mut CK_FUNCTION_LIST = null_mut();
        {
            // SAFETY: the symbol has the C_GetFunctionList signature.
            let get: libloading::Symbol<unsafe extern "C" fn(*mut *mut CK_FUNCTION_LIST) -> CK_RV> =
                unsafe { lib.get(b"C_GetFunctionList\0") }.expect("C_GetFunctionList symbol");
            // SAFETY: valid out pointer.
            let rv = unsafe { get(&mut list) };
            assert_eq!(rv, CKR_OK, "C_GetFunctionList");
        }
        Raw {
            list: NonNull::new(list).expect("C_GetFunctionList gave NULL"),
            _lib: lib,
        }
    }

    pub fn list(&self) -> &CK_FUNCTION_LIST {
        // SAFETY: the module's static table lives as long as the library stays loaded.
        unsafe { self.list.as_ref() }
    }

    pub fn library(&self) -> &libloading::Library {
        &self._lib
    }

    /// C_Initialize with NULL arguments.
    pub fn initialize(&self) -> CK_RV {
        ck!(self, C_Initialize(null_mut()))
    }
}

pub fn rv(r: CK_RV) -> Result<(), CK_RV> {
    if r == CKR_OK {
        Ok(())
    } else {
        Err(r)
    }
}

/// An attribute template with owned, aligned values.
#[derive(Default, Clone)]
pub struct Tmpl {
    vals: Vec<(CK_ATTRIBUTE_TYPE, Vec<u8>)>,
}

impl Tmpl {
    pub fn new() -> Tmpl {
        Tmpl::default()
    }
    pub fn bool(mut self, ty: CK_ATTRIBUTE_TYPE, b: bool) -> Tmpl {
        self.vals.push((ty, vec![b as u8]));
        self
    }
    pub fn ulong(mut self, ty: CK_ATTRIBUTE_TYPE, v: CK_ULONG) -> Tmpl {
        self.vals.push((ty, v.to_ne_bytes().to_vec()));
        self
    }
    pub fn bytes(mut self, ty: CK_ATTRIBUTE_TYPE, v: &[u8]) -> Tmpl {
        self.vals.push((ty, v.to_vec()));
        self
    }
    /// The CK_ATTRIBUTE array (points into self).
    pub fn ck(&mut self) -> Vec<CK_ATTRIBUTE> {
        self.vals
            .iter_mut()
            .map(|(ty, v)| CK_ATTRIBUTE {
                type_: *ty,
                pValue: if v.is_empty() {
                    null_mut()
                } else {
                    v.as_mut_ptr().cast()
                },
                ulValueLen: v.len() as CK_ULONG,
            })
            .collect()
    }
}

/// A mechanism with its parameter copied into 8-byte aligned storage. Pointers inside the
/// parameter (GCM IV/AAD, OAEP source) must outlive the call: the caller keeps them.
pub struct Mech {
    ty: CK_MECHANISM_TYPE,
    param: Vec<u64>,
    len: usize,
}

impl Mech {
    pub fn new(ty: CK_MECHANISM_TYPE) -> Mech {
        Mech {
            ty,
            param: Vec::new(),
            len: 0,
        }
    }
    pub fn with<T: Copy>(ty: CK_MECHANISM_TYPE, p: &T) -> Mech {
        let len = std::mem::size_of::<T>();
        let mut param = vec![0u64; len.div_ceil(8)];
        // SAFETY: copies the plain-data struct's bytes into storage at least as large.
        unsafe {
            std::ptr::copy_nonoverlapping(
                (p as *const T).cast::<u8>(),
                param.as_mut_ptr().cast(),
                len,
            )
        };
        Mech { ty, param, len }
    }
    pub fn bytes(ty: CK_MECHANISM_TYPE, b: &[u8]) -> Mech {
        let mut param = vec![0u64; b.len().div_ceil(8)];
        // SAFETY: storage holds at least b.len() bytes.
        unsafe { std::ptr::copy_nonoverlapping(b.as_ptr(), param.as_mut_ptr().cast(), b.len()) };
        Mech {
            ty,
            param,
            len: b.len(),
        }
    }
    pub fn ty(&self) -> CK_MECHANISM_TYPE {
        self.ty
    }
    pub fn ck(&mut self) -> CK_MECHANISM {
        CK_MECHANISM {
            mechanism: self.ty,
            pParameter: if self.len == 0 {
                null_mut()
            } else {
                self.param.as_mut_ptr().cast()
            },
            ulParameterLen: self.len as CK_ULONG,
        }
    }
}

/// The length convention: ask the size with a NULL buffer, then fetch.
fn two_call(mut f: impl FnMut(*mut u8, &mut CK_ULONG) -> CK_RV) -> Result<Vec<u8>, CK_RV> {
    let mut len: CK_ULONG = 0;
    rv(f(null_mut(), &mut len))?;
    let mut buf = vec![0u8; len as usize];
    rv(f(buf.as_mut_ptr(), &mut len))?;
    buf.truncate(len as usize);
    Ok(buf)
}

pub type H = CK_OBJECT_HANDLE;
pub type S = CK_SESSION_HANDLE;

impl Raw {
    pub fn generate_key(&self, s: S, m: &mut Mech, t: &mut Tmpl) -> Result<H, CK_RV> {
        let mut ck = m.ck();
        let mut a = t.ck();
        let mut h = 0;
        rv(ck!(
            self,
            C_GenerateKey(s, &mut ck, a.as_mut_ptr(), a.len() as CK_ULONG, &mut h)
        ))?;
        Ok(h)
    }

    pub fn generate_key_pair(
        &self,
        s: S,
        m: &mut Mech,
        public: &mut Tmpl,
        private: &mut Tmpl,
    ) -> Result<(H, H), CK_RV> {
        let mut ck = m.ck();
        let mut pa = public.ck();
        let mut ka = private.ck();
        let (mut ph, mut kh) = (0, 0);
        rv(ck!(
            self,
            C_GenerateKeyPair(
                s,
                &mut ck,
                pa.as_mut_ptr(),
                pa.len() as CK_ULONG,
                ka.as_mut_ptr(),
                ka.len() as CK_ULONG,
                &mut ph,
                &mut kh
            )
        ))?;
        Ok((ph, kh))
    }

    pub fn derive(&self, s: S, m: &mut Mech, base: H, t: &mut Tmpl) -> Result<H, CK_RV> {
        let mut ck = m.ck();
        let mut a = t.ck();
        let mut h = 0;
        rv(ck!(
            self,
            C_DeriveKey(
                s,
                &mut ck,
                base,
                a.as_mut_ptr(),
                a.len() as CK_ULONG,
                &mut h
            )
        ))?;
        Ok(h)
    }

    pub fn set_attrs(&self, s: S, o: H, t: &mut Tmpl) -> Result<(), CK_RV> {
        let mut a = t.ck();
        rv(ck!(
            self,
            C_SetAttributeValue(s, o, a.as_mut_ptr(), a.len() as CK_ULONG)
        ))
    }

    pub fn copy_object(&self, s: S, o: H, t: &mut Tmpl) -> Result<H, CK_RV> {
        let mut a = t.ck();
        let mut h = 0;
        rv(ck!(
            self,
            C_CopyObject(s, o, a.as_mut_ptr(), a.len() as CK_ULONG, &mut h)
        ))?;
        Ok(h)
    }

    /// C_FindObjectsInit / C_FindObjects / C_FindObjectsFinal: every handle matching `t`.
    pub fn find(&self, s: S, t: &mut Tmpl) -> Result<Vec<H>, CK_RV> {
        let mut a = t.ck();
        rv(ck!(
            self,
            C_FindObjectsInit(s, a.as_mut_ptr(), a.len() as CK_ULONG)
        ))?;
        let mut out = Vec::new();
        loop {
            let mut h = [0 as CK_OBJECT_HANDLE; 16];
            let mut n: CK_ULONG = 0;
            rv(ck!(self, C_FindObjects(s, h.as_mut_ptr(), 16, &mut n)))?;
            out.extend_from_slice(&h[..n as usize]);
            if n == 0 {
                break;
            }
        }
        rv(ck!(self, C_FindObjectsFinal(s)))?;
        Ok(out)
    }

    pub fn create_object(&self, s: S, t: &mut Tmpl) -> Result<H, CK_RV> {
        let mut a = t.ck();
        let mut h = 0;
        rv(ck!(
            self,
            C_CreateObject(s, a.as_mut_ptr(), a.len() as CK_ULONG, &mut h)
        ))?;
        Ok(h)
    }

    pub fn get_attr(&self, s: S, o: H, ty: CK_ATTRIBUTE_TYPE) -> Result<Vec<u8>, CK_RV> {
        let mut a = [CK_ATTRIBUTE {
            type_: ty,
            pValue: null_mut(),
            ulValueLen: 0,
        }];
        rv(ck!(self, C_GetAttributeValue(s, o, a.as_mut_ptr(), 1)))?;
        let mut buf = vec![0u8; a[0].ulValueLen as usize];
        a[0].pValue = buf.as_mut_ptr().cast();
        rv(ck!(self, C_GetAttributeValue(s, o, a.as_mut_ptr(), 1)))?;
        buf.truncate(a[0].ulValueLen as usize);
        Ok(buf)
    }

    pub fn get_ulong(&self, s: S, o: H, ty: CK_ATTRIBUTE_TYPE) -> Result<CK_ULONG, CK_RV> {
        let v = self.get_attr(s, o, ty)?;
        Ok(CK_ULONG::from_ne_bytes(
            v.try_into().expect("CK_ULONG size"),
        ))
    }

    pub fn encrypt(&self, s: S, m: &mut Mech, key: H, data: &[u8]) -> Result<Vec<u8>, CK_RV> {
        let mut ck = m.ck();
        rv(ck!(self, C_EncryptInit(s, &mut ck, key)))?;
        let mut d = data.to_vec();
        two_call(|out, len| {
            ck!(
                self,
                C_Encrypt(s, d.as_mut_ptr(), d.len() as CK_ULONG, out, len)
            )
        })
    }

    pub fn decrypt(&self, s: S, m: &mut Mech, key: H, data: &[u8]) -> Result<Vec<u8>, CK_RV> {
        let mut ck = m.ck();
        rv(ck!(self, C_DecryptInit(s, &mut ck, key)))?;
        let mut d = data.to_vec();
        two_call(|out, len| {
            ck!(
                self,
                C_Decrypt(s, d.as_mut_ptr(), d.len() as CK_ULONG, out, len)
            )
        })
    }

    /// Multi-part encryption: C_EncryptUpdate per part, then C_EncryptFinal.
    pub fn encrypt_parts(
        &self,
        s: S,
        m: &mut Mech,
        key: H,
        parts: &[&[u8]],
    ) -> Result<Vec<u8>, CK_RV> {
        let mut ck = m.ck();
        rv(ck!(self, C_EncryptInit(s, &mut ck, key)))?;
        let mut all = Vec::new();
        for p in parts {
            let mut d = p.to_vec();
            all.extend(two_call(|out, len| {
                ck!(
                    self,
                    C_EncryptUpdate(s, d.as_mut_ptr(), d.len() as CK_ULONG, out, len)
                )
            })?);
        }
        all.extend(two_call(|out, len| ck!(self, C_EncryptFinal(s, out, len)))?);
        Ok(all)
    }

    pub fn decrypt_parts(
        &self,
        s: S,
        m: &mut Mech,
        key: H,
        parts: &[&[u8]],
    ) -> Result<Vec<u8>, CK_RV> {
        let mut ck = m.ck();
        rv(ck!(self, C_DecryptInit(s, &mut ck, key)))?;
        let mut all = Vec::new();
        for p in parts {
            let mut d = p.to_vec();
            all.extend(two_call(|out, len| {
                ck!(
                    self,
                    C_DecryptUpdate(s, d.as_mut_ptr(), d.len() as CK_ULONG, out, len)
                )
            })?);
        }
        all.extend(two_call(|out, len| ck!(self, C_DecryptFinal(s, out, len)))?);
        Ok(all)
    }

    pub fn digest(&self, s: S, m: &mut Mech, data: &[u8]) -> Result<Vec<u8>, CK_RV> {
        let mut ck = m.ck();
        rv(ck!(self, C_DigestInit(s, &mut ck)))?;
        let mut d = data.to_vec();
        two_call(|out, len| {
            ck!(
                self,
                C_Digest(s, d.as_mut_ptr(), d.len() as CK_ULONG, out, len)
            )
        })
    }

    pub fn sign(&self, s: S, m: &mut Mech, key: H, data: &[u8]) -> Result<Vec<u8>, CK_RV> {
        let mut ck = m.ck();
        rv(ck!(self, C_SignInit(s, &mut ck, key)))?;
        let mut d = data.to_vec();
        two_call(|out, len| {
            ck!(
                self,
                C_Sign(s, d.as_mut_ptr(), d.len() as CK_ULONG, out, len)
            )
        })
    }

    pub fn sign_parts(
        &self,
        s: S,
        m: &mut Mech,
        key: H,
        parts: &[&[u8]],
    ) -> Result<Vec<u8>, CK_RV> {
        let mut ck = m.ck();
        rv(ck!(self, C_SignInit(s, &mut ck, key)))?;
        for p in parts {
            let mut d = p.to_vec();
            rv(ck!(
                self,
                C_SignUpdate(s, d.as_mut_ptr(), d.len() as CK_ULONG)
            ))?;
        }
        two_call(|out, len| ck!(self, C_SignFinal(s, out, len)))
    }

    pub fn verify(&self, s: S, m: &mut Mech, key: H, data: &[u8], sig: &[u8]) -> Result<(), CK_RV> {
        let mut ck = m.ck();
        rv(ck!(self, C_VerifyInit(s, &mut ck, key)))?;
        let mut d = data.to_vec();
        let mut g = sig.to_vec();
        rv(ck!(
            self,
            C_Verify(
                s,
                d.as_mut_ptr(),
                d.len() as CK_ULONG,
                g.as_mut_ptr(),
                g.len() as CK_ULONG
            )
        ))
    }

    pub fn verify_parts(
        &self,
        s: S,
        m: &mut Mech,
        key: H,
        parts: &[&[u8]],
        sig: &[u8],
    ) -> Result<(), CK_RV> {
        let mut ck = m.ck();
        rv(ck!(self, C_VerifyInit(s, &mut ck, key)))?;
        for p in parts {
            let mut d = p.to_vec();
            rv(ck!(
                self,
                C_VerifyUpdate(s, d.as_mut_ptr(), d.len() as CK_ULONG)
            ))?;
        }
        let mut g = sig.to_vec();
        rv(ck!(
            self,
            C_VerifyFinal(s, g.as_mut_ptr(), g.len() as CK_ULONG)
        ))
    }

    pub fn sign_recover(&self, s: S, m: &mut Mech, key: H, data: &[u8]) -> Result<Vec<u8>, CK_RV> {
        let mut ck = m.ck();
        rv(ck!(self, C_SignRecoverInit(s, &mut ck, key)))?;
        let mut d = data.to_vec();
        two_call(|out, len| {
            ck!(
                self,
                C_SignRecover(s, d.as_mut_ptr(), d.len() as CK_ULONG, out, len)
            )
        })
    }

    pub fn verify_recover(&self, s: S, m: &mut Mech, key: H, sig: &[u8]) -> Result<Vec<u8>, CK_RV> {
        let mut ck = m.ck();
        rv(ck!(self, C_VerifyRecoverInit(s, &mut ck, key)))?;
        let mut d = sig.to_vec();
        two_call(|out, len| {
            ck!(
                self,
                C_VerifyRecover(s, d.as_mut_ptr(), d.len() as CK_ULONG, out, len)
            )
        })
    }

    pub fn wrap(&self, s: S, m: &mut Mech, wrapping: H, key: H) -> Result<Vec<u8>, CK_RV> {
        let mut ck = m.ck();
        two_call(|out, len| ck!(self, C_WrapKey(s, &mut ck, wrapping, key, out, len)))
    }

    pub fn unwrap(
        &self,
        s: S,
        m: &mut Mech,
        unwrapping: H,
        wrapped: &[u8],
        t: &mut Tmpl,
    ) -> Result<H, CK_RV> {
        let mut ck = m.ck();
        let mut w = wrapped.to_vec();
        let mut a = t.ck();
        let mut h = 0;
        rv(ck!(
            self,
            C_UnwrapKey(
                s,
                &mut ck,
                unwrapping,
                w.as_mut_ptr(),
                w.len() as CK_ULONG,
                a.as_mut_ptr(),
                a.len() as CK_ULONG,
                &mut h
            )
        ))?;
        Ok(h)
    }
}

/// The printable name of a CKR_ code, for messages.
pub fn rv_name(r: CK_RV) -> String {
    match cryptoki::error::Rv::from(r) {
        cryptoki::error::Rv::Ok => "CKR_OK".into(),
        cryptoki::error::Rv::Error(e) => format!("{e:?} (0x{r:x})"),
    }
}
