#!/usr/bin/env python3
"""Render the README performance tables from one bench-results/<run>/ directory.

    scripts/render-bench.py bench-results/<run>              # print the markdown
    scripts/render-bench.py bench-results/<run> --readme README.md
        # replace the text between <!-- bench:begin --> and <!-- bench:end -->

Inputs (written by scripts/bench.sh): p11bench.json (A = clusterhsm, B = SoftHSMv2, with
the OpenSSL ceiling), p11bench-keygen-rsa.json, p11bench-scaling.json, bench.json
(examples/bench.rs with aws-lc-rs alone), scale.json, machine.json. Targets are issue 7's.
"""
import json
import os
import sys

# case -> [(kind, threshold)]; kinds: softhsm (ratio A/B), awslc (module/aws-lc-rs alone,
# examples/bench.rs), openssl (A / openssl speed).
TARGETS = {
    "rsa2048_sign_pkcs1_sha256": [("softhsm", 1.8), ("awslc", 0.9)],
    "rsa2048_sign_pss_sha256": [("softhsm", 1.8), ("awslc", 0.9)],
    "rsa3072_sign": [("softhsm", 1.2)],
    "rsa4096_sign": [("softhsm", 1.2)],
    "rsa2048_decrypt_oaep": [("softhsm", 1.8)],
    "ecdsa_p256_sign": [("softhsm", 2.4)],
    "ecdsa_p384_sign": [("softhsm", 5.0)],
    "ecdsa_p384_sha384_sign": [("softhsm", 5.0)],
    "aes256_cbc_encrypt_4k": [("softhsm", 4.0)],
    "aes256_gcm_encrypt_4k": [("softhsm", 4.0)],
    "aes256_ecb_16": [("softhsm", 15.0)],
    "aes256_cbc_encrypt_1m": [("openssl", 0.95)],
    "sha256_digest_1m": [("openssl", 0.95)],
    "sha256_hmac_4k": [("softhsm", 4.0)],
    "find_objects": [("softhsm", 700.0)],
    "open_close_session": [("softhsm", 30.0)],
    "create_destroy_session_object": [("softhsm", 10.0)],
    "get_attribute_value": [("softhsm", 30.0)],
    "login_logout": [("softhsm", 1.0)],
    "keygen_rsa2048": [("softhsm", 2.5), ("awslc", 0.9)],
    "keygen_ec_p256": [("softhsm", 3.0)],
    "keygen_aes256": [("softhsm", 8.0)],
}
SCALING = ["rsa2048_sign_pkcs1_sha256", "rsa2048_sign_pss_sha256", "rsa3072_sign", "rsa4096_sign",
           "ecdsa_p256_sign", "ecdsa_p384_sign", "ecdsa_p384_sha384_sign",
           "aes256_cbc_encrypt_4k", "aes256_gcm_encrypt_4k", "aes256_ecb_16"]
SCALING_TARGET = 1.7


def load(d, name):
    p = os.path.join(d, name)
    if not os.path.exists(p):
        return None
    with open(p) as f:
        return json.load(f)


def fmt(v):
    if v is None:
        return "-"
    if v >= 1000:
        return f"{v:,.0f}"
    if v >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def ratio(v):
    if v is None:
        return "-"
    return f"{v:.0f}×" if v >= 100 else f"{v:.2f}×"


def verdict(value, target):
    if value is None:
        return "not measured"
    if value >= target:
        return "met"
    return f"**missed** ({100 * (target - value) / target:.0f}% short)"


def verdict_max(value, limit):
    if value is None:
        return "not measured"
    if value <= limit:
        return "met"
    return f"**missed** ({100 * (value - limit) / limit:.0f}% over)"


def rows(doc, threads=1):
    out = {}
    for r in (doc or {}).get("results", []):
        if r.get("threads", 1) == threads:
            out[r["case"]] = r
    return out


def ops(r, tag):
    return (r.get(tag) or {}).get("ops_per_s") if r else None


def render(d):
    mach = load(d, "machine.json") or {}
    main = rows(load(d, "p11bench.json"))
    kg = rows(load(d, "p11bench-keygen-rsa.json"))
    scal = load(d, "p11bench-scaling.json")
    own_doc = load(d, "bench.json") or {}
    own = rows(own_doc)
    scale = load(d, "scale.json")
    out = []
    loads = ", ".join(f"{x['step']} {x['loadavg']}" for x in mach.get("loadavg", []))
    out.append(f"Run `{os.path.basename(os.path.normpath(d))}`: {mach.get('date', '?')}, "
               f"{mach.get('nproc', '?')} CPUs ({mach.get('cpu_model', '?')}), "
               f"{mach.get('openssl', '?')}, SoftHSMv2 {mach.get('softhsm', '?')}, "
               f"module built from {mach.get('git_commit', '?')[:10]}"
               f"{' with uncommitted src/ changes' if mach.get('git_dirty_src') else ''}. "
               f"Load average (1/5/15 min) at each step: {loads}.")
    out.append("")
    out.append("Single thread, token keys. clusterhsm and SoftHSMv2: p11bench, one interleaved run "
               "(×SoftHSM = median of per-round ratios; `keygen_rsa2048` from its own 30 s run). "
               "aws-lc-rs alone: `examples/bench.rs`, the same operation in-process, interleaved "
               "with the module case in that run (×aws-lc-rs is the module/aws-lc-rs ratio there). "
               "OpenSSL: `openssl speed -elapsed` as p11bench `--limit` maps it.")
    out.append("")
    out.append("| case | clusterhsm ops/s | SoftHSMv2 ops/s | ×SoftHSM | openssl speed ops/s | ×openssl "
               "| bench.rs ops/s | aws-lc-rs alone ops/s | ×aws-lc-rs | target | result |")
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|")
    names = [r["case"] for r in (load(d, "p11bench.json") or {}).get("results", []) if r["threads"] == 1]
    for c in names:
        r = kg.get(c) if c == "keygen_rsa2048" and c in kg else main.get(c)
        a, b = ops(r, "A"), ops(r, "B")
        rab = r.get("ratio_a_b") if r else None
        note = ""
        if b is None and c == "ecdsa_p384_sha384_sign" and main.get("ecdsa_p384_sign"):
            # SoftHSMv2 2.6 lacks CKM_ECDSA_SHA384: compare with its CKM_ECDSA P-384 rate.
            b = ops(main["ecdsa_p384_sign"], "B")
            rab = a / b if a and b else None
            note = " (vs SoftHSM CKM_ECDSA)"
        ossl = main.get(c, {}).get("openssl_ops_per_s")
        rossl = a / ossl if a and ossl else None
        o = own.get(c)
        aw = (o or {}).get("awslc") or {}
        checks = []
        for kind, t in TARGETS.get(c, []):
            v = {"softhsm": rab, "awslc": aw.get("ratio_module_awslc"), "openssl": rossl}[kind]
            label = {"softhsm": "×SoftHSM", "awslc": "×aws-lc-rs", "openssl": "×openssl"}[kind]
            checks.append((f"≥ {t:g}{label}", verdict(v, t)))
        status_a = (r or {}).get("A", {}).get("status")
        shown_a = fmt(a) if a is not None else (status_a or "-")
        shown_b = fmt(b) if b is not None else ((r or {}).get("B", {}).get("status") or "-")
        out.append(f"| {c} | {shown_a} | {shown_b}{note} | {ratio(rab)} | {fmt(ossl)} | "
                   f"{ratio(rossl) if rossl else '-'} | {fmt((o or {}).get('ops_per_s'))} | "
                   f"{fmt(aw.get('ops_per_s'))} | {ratio(aw.get('ratio_module_awslc'))} | "
                   f"{'; '.join(t for t, _ in checks) or '-'} | {'; '.join(v for _, v in checks) or '-'} |")
    out.append("")

    if scal:
        one, two = rows(scal, 1), rows(scal, 2)
        st = scal.get("settings", {})
        out.append(f"Thread scaling: p11bench dedicated run, `--threads 1,2 --seconds {st.get('seconds')} "
                   f"--rounds {st.get('rounds')}` (both modules interleaved; target ×{SCALING_TARGET} for clusterhsm).")
        out.append("")
        out.append("| case | clusterhsm 1 thr | 2 thr | speedup | SoftHSMv2 1 thr | 2 thr | speedup | result |")
        out.append("|---|---:|---:|---:|---:|---:|---:|---|")
        for c in SCALING:
            if c not in one or c not in two:
                continue
            a1, a2, b1, b2 = ops(one[c], "A"), ops(two[c], "A"), ops(one[c], "B"), ops(two[c], "B")
            sa = a2 / a1 if a1 and a2 else None
            sb = b2 / b1 if b1 and b2 else None
            out.append(f"| {c} | {fmt(a1)} | {fmt(a2)} | {'×%.2f' % sa if sa else '-'} | {fmt(b1)} | {fmt(b2)} | "
                       f"{'×%.2f' % sb if sb else '-'} | {verdict(sa, SCALING_TARGET)} |")
        out.append("")

    if scale:
        f = scale.get("full", {})
        find1k = ops(main.get("find_objects"), "A")
        find100k = f.get("find_objects_per_s")
        rss = scale.get("max_rss_kib_time_v") or f.get("vm_hwm_kib")
        budget = scale.get("budget_kib")
        n_aes, n_rsa = scale.get("aes_keys"), scale.get("rsa_keys")
        out.append(f"Scale (`examples/bench.rs --scale`): {n_aes:,} AES-256 and {n_rsa:,} RSA-2048 token keys "
                   f"imported with C_CreateObject ({scale.get('rsa_distinct_materials')} distinct RSA keys from "
                   f"aws-lc-rs reused under distinct labels); created at "
                   f"{n_aes / scale['create_aes_seconds']:,.0f} AES/s and {n_rsa / scale['create_rsa_seconds']:,.0f} RSA/s; "
                   f"store {scale.get('store_bytes', 0) / 1e6:.1f} MB.")
        out.append("")
        out.append("| measure | value | target | result |")
        out.append("|---|---:|---|---|")
        o = scale.get("open_seconds_median")
        runs = ", ".join(f"{x:.3f}" for x in scale.get("open_seconds_runs", []))
        out.append(f"| fresh process C_Initialize + C_GetSlotList + C_OpenSession + C_Login (median of 3: {runs} s) "
                   f"| {o:.3f} s | < 0.5 s | {verdict_max(o, 0.5)} |")
        if find100k is not None:
            half = find1k / 2 if find1k else None
            res = verdict(find100k, half) if half else "not measured"
            out.append(f"| find_objects by label, {n_aes + n_rsa:,} objects | {fmt(find100k)}/s | "
                       f"≥ half the measured 1,000-object rate ({fmt(half)}/s) / "
                       f"≥ half the ≈100,000/s target (50,000/s) | {res} / {verdict(find100k, 50000)} |")
        out.append(f"| use every AES key once (ECB 16 B) / every RSA key once (sign) | "
                   f"{f.get('aes_use_seconds', 0):.2f} s / {f.get('rsa_use_seconds', 0):.2f} s | - | - |")
        if rss is not None and budget:
            out.append(f"| max RSS of that process (`/usr/bin/time -v`) | {rss / 1024:,.1f} MiB | "
                       f"≤ {n_aes:,} × 2 KiB + {n_rsa:,} × 8 KiB = {budget / 1024:,.1f} MiB | {verdict_max(rss, budget)} |")
        out.append(f"| RSS before C_Initialize → after login → after AES use → after RSA use | "
                   f"{f.get('rss_start_kib', 0) / 1024:.1f} → {f.get('rss_after_login_kib', 0) / 1024:.1f} → "
                   f"{f.get('rss_after_aes_kib', 0) / 1024:.1f} → {f.get('rss_after_rsa_kib', 0) / 1024:.1f} MiB | - | - |")
        out.append(f"| KiB per AES key (all growth up to AES use, RSA records included) / per RSA key (growth while signing) "
                   f"| {f.get('kib_per_aes_key_upper', 0):.2f} / {f.get('kib_per_rsa_key_growth', 0):.2f} | 2 / 8 | "
                   f"{verdict_max(f.get('kib_per_aes_key_upper'), 2.0)} / {verdict_max(f.get('kib_per_rsa_key_growth'), 8.0)} |")
        out.append("")
    return "\n".join(out)


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    d = sys.argv[1]
    md = render(d)
    if "--readme" in sys.argv:
        path = sys.argv[sys.argv.index("--readme") + 1]
        with open(path) as f:
            text = f.read()
        b, e = "<!-- bench:begin -->", "<!-- bench:end -->"
        if b not in text or e not in text:
            sys.exit(f"{path}: no {b} ... {e} block")
        head, rest = text.split(b, 1)
        _, tail = rest.split(e, 1)
        with open(path, "w") as f:
            f.write(f"{head}{b}\n{md}\n{e}{tail}")
        print(f"updated {path}", file=sys.stderr)
    else:
        print(md)


if __name__ == "__main__":
    main()
