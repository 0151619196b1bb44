//! Build script: records the version and checks that include/clusterhsm.h carries the same
//! vendor constants as src/vendor.rs, so C programs and the module cannot drift apart.

use std::fs;

fn constants(text: &str, pattern: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| {
            let l = l.trim();
            let rest = l.strip_prefix(pattern)?;
            let mut parts = rest.split_whitespace();
            let name = parts.next()?.trim_end_matches(':').to_string();
            let value = l
                .rsplit(['=', ' '])
                .next()?
                .trim_end_matches(';')
                .trim_end_matches("UL")
                .to_lowercase()
                .replace('_', "");
            Some((name, value))
        })
        .collect()
}

fn main() {
    // Never unmapped by dlclose: thread-local destructors and AWS-LC state of this library
    // may still run after a host unloads it (cryptoki, Python and Java all dlclose).
    println!("cargo:rustc-cdylib-link-arg=-Wl,-z,nodelete");
    println!("cargo:rerun-if-changed=include/clusterhsm.h");
    println!("cargo:rerun-if-changed=src/vendor.rs");
    let header = fs::read_to_string("include/clusterhsm.h").expect("include/clusterhsm.h");
    let rust = fs::read_to_string("src/vendor.rs").expect("src/vendor.rs");
    let c = constants(&header, "#define ");
    for (name, value) in constants(&rust, "pub const ") {
        if !name.starts_with("CKM_") {
            continue;
        }
        match c.iter().find(|(n, _)| *n == name) {
            Some((_, v)) if *v == value => {}
            Some((_, v)) => {
                panic!("include/clusterhsm.h has {name} = {v}, src/vendor.rs has {value}")
            }
            None => panic!("include/clusterhsm.h lacks {name}"),
        }
    }
}
