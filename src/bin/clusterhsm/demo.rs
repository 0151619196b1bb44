//! `clusterhsm demo`: the main job. In a temporary store it loads the built
//! libclusterhsm.so like any PKCS#11 application, creates a 3-instance cluster across 3
//! AZs, a Crypto Officer and a Crypto User, generates RSA-2048, P-256 and AES-256 keys,
//! signs/verifies and encrypts/decrypts, takes az-b down, shows the same operations still
//! succeed and which instances served them, brings az-b back and shows the resync.

#![allow(unsafe_code)]

use clusterhsm::ffi::vendor::{
    CHSM_HEALTH_ACTIVE, CHSM_HEALTH_DOWN, CK_CLUSTERHSM_FUNCTION_LIST, CK_CLUSTERHSM_INSTANCE_INFO,
};
use cryptoki_sys::*;
use std::ptr;
use std::time::Instant;

fn module_path() -> Result<std::path::PathBuf, String> {
    if let Ok(p) = std::env::var("CLUSTERHSM_MODULE") {
        return Ok(p.into());
    }
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let dir = exe.parent().ok_or("no executable directory")?;
    for candidate in [
        dir.join("libclusterhsm.so"),
        dir.join("../libclusterhsm.so"),
        dir.join("../lib/libclusterhsm.so"),
    ] {
        if candidate.exists() {
            return Ok(candidate);
        }
    }
    Err("libclusterhsm.so not found beside the clusterhsm binary; set CLUSTERHSM_MODULE".into())
}

macro_rules! ck {
    ($what:expr, $call:expr) => {{
        // SAFETY: every call passes pointers to live locals sized as the spec requires.
        let rv = unsafe { $call };
        if rv != CKR_OK {
            return Err(format!("{} failed: CKR 0x{:x}", $what, rv));
        }
    }};
}

fn attr<T>(ty: CK_ATTRIBUTE_TYPE, v: &T) -> CK_ATTRIBUTE {
    CK_ATTRIBUTE {
        type_: ty,
        pValue: v as *const T as *mut std::ffi::c_void,
        ulValueLen: std::mem::size_of::<T>() as CK_ULONG,
    }
}

fn bytes_attr(ty: CK_ATTRIBUTE_TYPE, v: &[u8]) -> CK_ATTRIBUTE {
    CK_ATTRIBUTE {
        type_: ty,
        pValue: v.as_ptr() as *mut std::ffi::c_void,
        ulValueLen: v.len() as CK_ULONG,
    }
}

fn step(t: &Instant, msg: &str) {
    println!("[{:6.2}s] {msg}", t.elapsed().as_secs_f64());
}

pub fn run(keep: Option<String>) -> Result<(), String> {
    let t = Instant::now();
    let dir = match &keep {
        Some(d) => {
            std::fs::create_dir_all(d).map_err(|e| e.to_string())?;
            std::path::PathBuf::from(d)
        }
        None => std::env::temp_dir().join(format!("clusterhsm-demo-{}", std::process::id())),
    };
    let _ = std::fs::remove_dir_all(dir.join("clusterhsm.db"));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    // The demo never touches the user's own store or config.
    std::env::set_var("CLUSTERHSM_DIR", &dir);
    let conf = dir.join("demo.toml");
    std::fs::write(&conf, "kdf_iterations = 20000\n").map_err(|e| e.to_string())?;
    std::env::set_var("CLUSTERHSM_CONF", &conf);
    let result = run_in(&t, &dir);
    if keep.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

fn run_in(t: &Instant, dir: &std::path::Path) -> Result<(), String> {
    let path = module_path()?;
    step(
        t,
        &format!("loading {} (store {})", path.display(), dir.display()),
    );
    // SAFETY: loading our own PKCS#11 module, whose initializers are side-effect free.
    let lib = unsafe { libloading::Library::new(&path) }.map_err(|e| e.to_string())?;
    // SAFETY: the symbol has the PKCS#11 C_GetFunctionList signature.
    let get_list: libloading::Symbol<unsafe extern "C" fn(*mut *mut CK_FUNCTION_LIST) -> CK_RV> =
        unsafe { lib.get(b"C_GetFunctionList") }.map_err(|e| e.to_string())?;
    let mut fl: *mut CK_FUNCTION_LIST = ptr::null_mut();
    ck!("C_GetFunctionList", get_list(&mut fl));
    // SAFETY: the module returned a pointer to its static function table.
    let f = unsafe { &*fl };
    macro_rules! p11 {
        ($name:ident) => {
            f.$name.ok_or(concat!(stringify!($name), " missing"))?
        };
    }
    // SAFETY: as above, for the 3.0 entry points and the vendor interface.
    let get_iface: libloading::Symbol<
        unsafe extern "C" fn(*mut u8, *mut CK_VERSION, *mut *mut CK_INTERFACE, CK_FLAGS) -> CK_RV,
    > = unsafe { lib.get(b"C_GetInterface") }.map_err(|e| e.to_string())?;
    ck!("C_Initialize", p11!(C_Initialize)(ptr::null_mut()));

    let mut slots = [0 as CK_SLOT_ID; 4];
    let mut n: CK_ULONG = 4;
    ck!(
        "C_GetSlotList",
        p11!(C_GetSlotList)(CK_TRUE, slots.as_mut_ptr(), &mut n)
    );
    let slot = slots[0];
    let mut label = [b' '; 32];
    label[..4].copy_from_slice(b"demo");
    let so_pin = b"admin-password";
    ck!(
        "C_InitToken",
        p11!(C_InitToken)(
            slot,
            so_pin.as_ptr() as *mut u8,
            so_pin.len() as CK_ULONG,
            label.as_mut_ptr()
        )
    );
    step(
        t,
        &format!("C_InitToken: cluster created in slot {slot} (Crypto Officer 'admin')"),
    );

    let mut vif: *mut CK_INTERFACE = ptr::null_mut();
    ck!(
        "C_GetInterface(clusterhsm)",
        get_iface(
            c"clusterhsm".as_ptr() as *mut u8,
            ptr::null_mut(),
            &mut vif,
            0
        )
    );
    // SAFETY: the vendor interface's table has the layout of CK_CLUSTERHSM_FUNCTION_LIST.
    let v = unsafe { &*((*vif).pFunctionList as *const CK_CLUSTERHSM_FUNCTION_LIST) };
    let show = |title: &str| -> Result<(), String> {
        let mut count: CK_ULONG = 0;
        ck!(
            "CHSM_GetInstanceCount",
            (v.CHSM_GetInstanceCount)(slot, &mut count)
        );
        println!("         {title}");
        for i in 0..count {
            // SAFETY: a plain C struct; zeroed is a valid value.
            let mut info: CK_CLUSTERHSM_INSTANCE_INFO = unsafe { std::mem::zeroed() };
            ck!(
                "CHSM_GetInstanceInfo",
                (v.CHSM_GetInstanceInfo)(slot, i, &mut info)
            );
            let s = |b: &[u8]| {
                String::from_utf8_lossy(&b[..b.iter().position(|x| *x == 0).unwrap_or(b.len())])
                    .into_owned()
            };
            let health = ["active", "degraded", "down"]
                .get(info.health as usize)
                .copied()
                .unwrap_or("?");
            println!(
                "           {:6} {:5} {:8} served {}",
                s(&info.id),
                s(&info.az),
                health,
                info.ops_served
            );
        }
        Ok(())
    };
    show("instances:")?;

    let mut h: CK_SESSION_HANDLE = 0;
    ck!(
        "C_OpenSession",
        p11!(C_OpenSession)(
            slot,
            CKF_SERIAL_SESSION | CKF_RW_SESSION,
            ptr::null_mut(),
            None,
            &mut h
        )
    );
    ck!(
        "C_Login(SO)",
        p11!(C_Login)(
            h,
            CKU_SO,
            so_pin.as_ptr() as *mut u8,
            so_pin.len() as CK_ULONG
        )
    );
    let cu_pin = b"cu-password";
    ck!(
        "C_InitPIN",
        p11!(C_InitPIN)(h, cu_pin.as_ptr() as *mut u8, cu_pin.len() as CK_ULONG)
    );
    ck!("C_Logout", p11!(C_Logout)(h));
    ck!(
        "C_Login(USER)",
        p11!(C_Login)(
            h,
            CKU_USER,
            cu_pin.as_ptr() as *mut u8,
            cu_pin.len() as CK_ULONG
        )
    );
    step(
        t,
        "Crypto User 'cu' created by the CO (C_InitPIN) and logged in",
    );

    let yes: CK_BBOOL = CK_TRUE;
    let bits: CK_ULONG = 2048;
    let p256_oid: [u8; 10] = [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
    let (mut rsa_pub, mut rsa_priv, mut ec_pub, mut ec_priv, mut aes) = (0, 0, 0, 0, 0);
    let mut m = CK_MECHANISM {
        mechanism: CKM_RSA_PKCS_KEY_PAIR_GEN,
        pParameter: ptr::null_mut(),
        ulParameterLen: 0,
    };
    let mut pubt = [
        attr(CKA_TOKEN, &yes),
        attr(CKA_MODULUS_BITS, &bits),
        bytes_attr(CKA_LABEL, b"demo-rsa"),
    ];
    let mut privt = [attr(CKA_TOKEN, &yes), bytes_attr(CKA_LABEL, b"demo-rsa")];
    ck!(
        "C_GenerateKeyPair(RSA-2048)",
        p11!(C_GenerateKeyPair)(
            h,
            &mut m,
            pubt.as_mut_ptr(),
            3,
            privt.as_mut_ptr(),
            2,
            &mut rsa_pub,
            &mut rsa_priv
        )
    );
    m.mechanism = CKM_EC_KEY_PAIR_GEN;
    let mut pubt = [
        attr(CKA_TOKEN, &yes),
        bytes_attr(CKA_EC_PARAMS, &p256_oid),
        bytes_attr(CKA_LABEL, b"demo-p256"),
    ];
    let mut privt = [attr(CKA_TOKEN, &yes), bytes_attr(CKA_LABEL, b"demo-p256")];
    ck!(
        "C_GenerateKeyPair(P-256)",
        p11!(C_GenerateKeyPair)(
            h,
            &mut m,
            pubt.as_mut_ptr(),
            3,
            privt.as_mut_ptr(),
            2,
            &mut ec_pub,
            &mut ec_priv
        )
    );
    m.mechanism = CKM_AES_KEY_GEN;
    let len: CK_ULONG = 32;
    let mut aest = [
        attr(CKA_TOKEN, &yes),
        attr(CKA_VALUE_LEN, &len),
        bytes_attr(CKA_LABEL, b"demo-aes"),
    ];
    ck!(
        "C_GenerateKey(AES-256)",
        p11!(C_GenerateKey)(h, &mut m, aest.as_mut_ptr(), 3, &mut aes)
    );
    step(
        t,
        "token keys generated: RSA-2048, EC P-256, AES-256 (replicated to every instance)",
    );

    let operations = |round: &str| -> Result<(), String> {
        let msg = b"clusterhsm demo message";
        for (name, mech, key, pubkey) in [
            (
                "RSA SHA256-RSA-PKCS",
                CKM_SHA256_RSA_PKCS,
                rsa_priv,
                rsa_pub,
            ),
            ("ECDSA-SHA256", CKM_ECDSA_SHA256, ec_priv, ec_pub),
        ] {
            let mut mm = CK_MECHANISM {
                mechanism: mech,
                pParameter: ptr::null_mut(),
                ulParameterLen: 0,
            };
            let mut sig = [0u8; 512];
            let mut sl: CK_ULONG = sig.len() as CK_ULONG;
            ck!("C_SignInit", p11!(C_SignInit)(h, &mut mm, key));
            ck!(
                "C_Sign",
                p11!(C_Sign)(
                    h,
                    msg.as_ptr() as *mut u8,
                    msg.len() as CK_ULONG,
                    sig.as_mut_ptr(),
                    &mut sl
                )
            );
            ck!("C_VerifyInit", p11!(C_VerifyInit)(h, &mut mm, pubkey));
            ck!(
                "C_Verify",
                p11!(C_Verify)(
                    h,
                    msg.as_ptr() as *mut u8,
                    msg.len() as CK_ULONG,
                    sig.as_mut_ptr(),
                    sl
                )
            );
            println!("         {round}: {name} sign + verify OK ({sl}-byte signature)");
        }
        let mut iv = [7u8; 12];
        let mut gcm = CK_GCM_PARAMS {
            pIv: iv.as_mut_ptr(),
            ulIvLen: 12,
            ulIvBits: 96,
            pAAD: ptr::null_mut(),
            ulAADLen: 0,
            ulTagBits: 128,
        };
        let mut mm = CK_MECHANISM {
            mechanism: CKM_AES_GCM,
            pParameter: &mut gcm as *mut _ as *mut std::ffi::c_void,
            ulParameterLen: std::mem::size_of::<CK_GCM_PARAMS>() as CK_ULONG,
        };
        let mut ct = [0u8; 64];
        let mut cl: CK_ULONG = ct.len() as CK_ULONG;
        ck!("C_EncryptInit", p11!(C_EncryptInit)(h, &mut mm, aes));
        ck!(
            "C_Encrypt",
            p11!(C_Encrypt)(
                h,
                msg.as_ptr() as *mut u8,
                msg.len() as CK_ULONG,
                ct.as_mut_ptr(),
                &mut cl
            )
        );
        let mut pt = [0u8; 64];
        let mut pl: CK_ULONG = pt.len() as CK_ULONG;
        ck!("C_DecryptInit", p11!(C_DecryptInit)(h, &mut mm, aes));
        ck!(
            "C_Decrypt",
            p11!(C_Decrypt)(h, ct.as_mut_ptr(), cl, pt.as_mut_ptr(), &mut pl)
        );
        if &pt[..pl as usize] != msg {
            return Err("AES-GCM round trip returned different plaintext".into());
        }
        println!("         {round}: AES-256-GCM encrypt + decrypt OK");
        Ok(())
    };
    operations("all AZs up")?;
    show("instances after the first round:")?;

    ck!(
        "CHSM_SetAzHealth(az-b, down)",
        (v.CHSM_SetAzHealth)(slot, c"az-b".as_ptr(), CHSM_HEALTH_DOWN)
    );
    step(t, "az-b is DOWN (hsm-b unreachable)");
    let mut late = 0;
    m.mechanism = CKM_AES_KEY_GEN;
    let mut aest = [
        attr(CKA_TOKEN, &yes),
        attr(CKA_VALUE_LEN, &len),
        bytes_attr(CKA_LABEL, b"made-while-az-b-down"),
    ];
    ck!(
        "C_GenerateKey(while az-b down)",
        p11!(C_GenerateKey)(h, &mut m, aest.as_mut_ptr(), 3, &mut late)
    );
    let replicas = |obj: CK_OBJECT_HANDLE| -> Result<String, String> {
        let mut buf = [0u8; 256];
        let mut l: CK_ULONG = buf.len() as CK_ULONG;
        ck!(
            "CHSM_GetObjectReplicas",
            (v.CHSM_GetObjectReplicas)(h, obj, buf.as_mut_ptr(), &mut l)
        );
        Ok(String::from_utf8_lossy(&buf[..l as usize]).into_owned())
    };
    println!("         a key made now is held by: {}", replicas(late)?);
    operations("az-b down")?;
    show("instances while az-b is down (hsm-b served nothing new):")?;

    ck!(
        "CHSM_SetAzHealth(az-b, up)",
        (v.CHSM_SetAzHealth)(slot, c"az-b".as_ptr(), CHSM_HEALTH_ACTIVE)
    );
    step(t, "az-b is back: hsm-b resynced from a healthy peer");
    println!(
        "         the key made while az-b was down is now held by: {}",
        replicas(late)?
    );
    operations("after resync")?;
    show("instances at the end:")?;
    ck!("C_Logout", p11!(C_Logout)(h));
    ck!("C_CloseSession", p11!(C_CloseSession)(h));
    ck!("C_Finalize", p11!(C_Finalize)(ptr::null_mut()));

    let store = clusterhsm::store::Store::open(dir).map_err(|e| e.to_string())?;
    println!("\naudit log tail:");
    for (_, _, line) in store
        .read(|c| clusterhsm::store::audit_lines(c, slot as i64, None, 8))
        .map_err(|e| e.to_string())?
    {
        println!("  {line}");
    }
    step(t, "demo finished");
    println!(
        "\nUse a token of your own:\n  pkcs11-tool --module {m} --init-token --label mytoken --so-pin <so-pin>\n  pkcs11-tool --module {m} --login --login-type so --so-pin <so-pin> --init-pin --pin <user-pin>\n  pkcs11-tool --module {m} --login --pin <user-pin> --keypairgen --key-type EC:prime256v1 --id 01 --label mykey\n  openssl (pkcs11-provider): openssl pkeyutl -provider pkcs11 -sign -inkey 'pkcs11:token=mytoken;object=mykey' ...\n  nginx: ssl_certificate_key \"store:pkcs11:token=mytoken;object=mykey\"; (see README)",
        m = module_path()?.display()
    );
    Ok(())
}
