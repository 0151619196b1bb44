//! Message digests: SHA-1, SHA-2 and SHA-3 (FIPS 180-4, FIPS 202), on AWS-LC.

use super::lc;

/// A hash algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HashAlg {
    Sha1,
    Sha224,
    Sha256,
    Sha384,
    Sha512,
    Sha3_224,
    Sha3_256,
    Sha3_384,
    Sha3_512,
}

impl HashAlg {
    /// Digest size in bytes.
    pub fn output_len(self) -> usize {
        match self {
            HashAlg::Sha1 => 20,
            HashAlg::Sha224 | HashAlg::Sha3_224 => 28,
            HashAlg::Sha256 | HashAlg::Sha3_256 => 32,
            HashAlg::Sha384 | HashAlg::Sha3_384 => 48,
            HashAlg::Sha512 | HashAlg::Sha3_512 => 64,
        }
    }

    /// Input block size in bytes (the HMAC block size B; the SHA-3 rate).
    pub fn block_len(self) -> usize {
        match self {
            HashAlg::Sha1 | HashAlg::Sha224 | HashAlg::Sha256 => 64,
            HashAlg::Sha384 | HashAlg::Sha512 => 128,
            HashAlg::Sha3_224 => 144,
            HashAlg::Sha3_256 => 136,
            HashAlg::Sha3_384 => 104,
            HashAlg::Sha3_512 => 72,
        }
    }

    /// The DER encoding of `DigestInfo` up to (not including) the digest bytes, as
    /// prepended to the hash in an EMSA-PKCS1-v1_5 signature (RFC 8017 §9.2 note 1;
    /// SHA-3 OIDs 2.16.840.1.101.3.4.2.7..10 from NIST CSOR, with NULL parameters as
    /// OpenSSL and AWS-LC encode them).
    pub fn digest_info_prefix(self) -> &'static [u8] {
        match self {
            HashAlg::Sha1 => &[
                0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0x04,
                0x14,
            ],
            HashAlg::Sha224 => &SHA2_PREFIXES[0],
            HashAlg::Sha256 => &SHA2_PREFIXES[1],
            HashAlg::Sha384 => &SHA2_PREFIXES[2],
            HashAlg::Sha512 => &SHA2_PREFIXES[3],
            HashAlg::Sha3_224 => &SHA2_PREFIXES[4],
            HashAlg::Sha3_256 => &SHA2_PREFIXES[5],
            HashAlg::Sha3_384 => &SHA2_PREFIXES[6],
            HashAlg::Sha3_512 => &SHA2_PREFIXES[7],
        }
    }
}

/// `DigestInfo` prefixes for the algorithms under 2.16.840.1.101.3.4.2 (NIST hash
/// algorithms arc): SHA-224, SHA-256, SHA-384, SHA-512, SHA3-224 .. SHA3-512.
const SHA2_PREFIXES: [[u8; 19]; 8] = [
    nist_prefix(0x04, 28),
    nist_prefix(0x01, 32),
    nist_prefix(0x02, 48),
    nist_prefix(0x03, 64),
    nist_prefix(0x07, 28),
    nist_prefix(0x08, 32),
    nist_prefix(0x09, 48),
    nist_prefix(0x0a, 64),
];

/// SEQUENCE { SEQUENCE { OID 2.16.840.1.101.3.4.2.<arc>, NULL }, OCTET STRING (len) }
const fn nist_prefix(arc: u8, len: u8) -> [u8; 19] {
    [
        0x30,
        0x0d + 4 + len, // outer SEQUENCE length: 15 (AlgorithmIdentifier) + 2 + len
        0x30,
        0x0d,
        0x06,
        0x09,
        0x60,
        0x86,
        0x48,
        0x01,
        0x65,
        0x03,
        0x04,
        0x02,
        arc,
        0x05,
        0x00,
        0x04,
        len,
    ]
}

/// A running hash. `Clone` copies the state (for a retried or forked computation).
#[derive(Clone)]
pub struct Hasher {
    alg: HashAlg,
    ctx: lc::MdCtx,
}

impl Hasher {
    pub fn new(alg: HashAlg) -> Hasher {
        Hasher {
            alg,
            ctx: lc::MdCtx::new(alg),
        }
    }

    pub fn update(&mut self, data: &[u8]) {
        self.ctx.update(data);
    }

    /// The digest (`alg.output_len()` bytes).
    pub fn finish(self) -> Vec<u8> {
        let mut out = vec![0u8; self.alg.output_len()];
        self.finish_into(&mut out);
        out
    }

    /// Writes the digest into `out`, which must be exactly `alg.output_len()` bytes (used
    /// where the digest is secret and must land in a `SecretBytes`).
    pub(crate) fn finish_into(self, out: &mut [u8]) {
        assert_eq!(
            out.len(),
            self.alg.output_len(),
            "digest output buffer size"
        );
        self.ctx.finish_into(out);
    }

    pub fn alg(&self) -> HashAlg {
        self.alg
    }
}

impl std::fmt::Debug for Hasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hasher")
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

/// One-shot digest of `data`.
pub fn digest(alg: HashAlg, data: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; alg.output_len()];
    lc::digest_into(alg, data, &mut out);
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn hex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        assert!(s.len() % 2 == 0, "odd hex length");
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex digit"))
            .collect()
    }

    /// A small deterministic PRNG (xorshift64*) for chunking tests.
    pub(crate) struct TestRng(pub u64);
    impl TestRng {
        pub(crate) fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        pub(crate) fn below(&mut self, n: usize) -> usize {
            (self.next() % (n as u64)) as usize
        }
        pub(crate) fn bytes(&mut self, n: usize) -> Vec<u8> {
            (0..n).map(|_| self.next() as u8).collect()
        }
    }

    const ALL: [HashAlg; 9] = [
        HashAlg::Sha1,
        HashAlg::Sha224,
        HashAlg::Sha256,
        HashAlg::Sha384,
        HashAlg::Sha512,
        HashAlg::Sha3_224,
        HashAlg::Sha3_256,
        HashAlg::Sha3_384,
        HashAlg::Sha3_512,
    ];

    /// "abc": FIPS 180-2 Appendix A.1/B.1/C.1 (SHA-1, SHA-256, SHA-512), FIPS 180-2
    /// change notice / NIST "SHA224.pdf" example, NIST "SHA384.pdf" example; SHA-3 from
    /// the NIST CSRC FIPS 202 example values (SHA3-*_Msg0 is empty, these are "abc",
    /// cross-checked with `openssl dgst -sha3-*`).
    #[test]
    fn fips_abc_vectors() {
        let cases: [(HashAlg, &str); 9] = [
            (HashAlg::Sha1, "a9993e364706816aba3e25717850c26c9cd0d89d"),
            (
                HashAlg::Sha224,
                "23097d223405d8228642a477bda255b32aadbce4bda0b3f7e36c9da7",
            ),
            (
                HashAlg::Sha256,
                "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            ),
            (
                HashAlg::Sha384,
                "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed\
                 8086072ba1e7cc2358baeca134c825a7",
            ),
            (
                HashAlg::Sha512,
                "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a\
                 2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
            ),
            (
                HashAlg::Sha3_224,
                "e642824c3f8cf24ad09234ee7d3c766fc9a3a5168d0c94ad73b46fdf",
            ),
            (
                HashAlg::Sha3_256,
                "3a985da74fe225b2045c172d6bd390bd855f086e3e9d525b46bfe24511431532",
            ),
            (
                HashAlg::Sha3_384,
                "ec01498288516fc926459f58e2c6ad8df9b473cb0fc08c2596da7cf0e49be4b2\
                 98d88cea927ac7f539f1edf228376d25",
            ),
            (
                HashAlg::Sha3_512,
                "b751850b1a57168a5693cd924b6b096e08f621827444f70d884f5d0240d2712e\
                 10e116e9192af3c91a7ec57647e3934057340b4cf408d5a56592f8274eec53f0",
            ),
        ];
        for (alg, want) in cases {
            assert_eq!(digest(alg, b"abc"), hex(want), "{alg:?}");
            let mut h = Hasher::new(alg);
            h.update(b"a");
            h.update(b"");
            h.update(b"bc");
            assert_eq!(h.alg(), alg);
            assert_eq!(h.finish(), hex(want), "{alg:?} streamed");
            assert_eq!(digest(alg, b"abc").len(), alg.output_len());
        }
    }

    /// Two-block messages: FIPS 180-2 A.2 / B.2 (448-bit message) and C.2 (896-bit).
    #[test]
    fn fips_multiblock_vectors() {
        let m448 = b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
        assert_eq!(
            digest(HashAlg::Sha1, m448),
            hex("84983e441c3bd26ebaae4aa1f95129e5e54670f1")
        );
        assert_eq!(
            digest(HashAlg::Sha256, m448),
            hex("248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        );
        let m896 = b"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu";
        assert_eq!(
            digest(HashAlg::Sha512, m896),
            hex(
                "8e959b75dae313da8cf4f72814fc143f8f7779c6eb9f7fa17299aeadb6889018\
                 501d289e4900f7e4331b99dec4b5433ac7d329eeb6dd26545e96e55b874be909"
            )
        );
    }

    /// One million 'a': FIPS 180-2 A.3 / B.3, fed in random chunk sizes.
    #[test]
    fn million_a_streamed_in_random_chunks() {
        let data = vec![b'a'; 1_000_000];
        let mut rng = TestRng(0x1234_5678_9abc_def1);
        let mut h1 = Hasher::new(HashAlg::Sha1);
        let mut h256 = Hasher::new(HashAlg::Sha256);
        let mut rest = &data[..];
        while !rest.is_empty() {
            let n = rng.below(9000).min(rest.len());
            h1.update(&rest[..n]);
            h256.update(&rest[..n]);
            rest = &rest[n..];
        }
        assert_eq!(h1.finish(), hex("34aa973cd4c4daa4f61eeb2bdbad27316534016f"));
        assert_eq!(
            h256.finish(),
            hex("cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
        );
    }

    #[test]
    fn empty_input() {
        // FIPS 180-4 / 202 hash of the empty string (NIST CSRC examples).
        assert_eq!(
            digest(HashAlg::Sha256, b""),
            hex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        );
        assert_eq!(
            Hasher::new(HashAlg::Sha3_256).finish(),
            hex("a7ffc6f8bf1ed76651c14756a061d662f580ff4de43b49fa82d80a4b80f8434a")
        );
    }

    #[test]
    fn clone_forks_the_state() {
        let mut rng = TestRng(7);
        for alg in ALL {
            let data = rng.bytes(1000);
            let mut h = Hasher::new(alg);
            h.update(&data[..300]);
            let mut fork = h.clone();
            h.update(&data[300..]);
            fork.update(&data[300..]);
            let a = h.finish();
            assert_eq!(a, fork.finish());
            assert_eq!(a, digest(alg, &data));
        }
    }

    #[test]
    fn digest_info_prefixes() {
        // RFC 8017 §9.2 note 1 (SHA-1, SHA-224, SHA-256, SHA-384, SHA-512).
        let rfc: [(HashAlg, &str); 5] = [
            (HashAlg::Sha1, "3021300906052b0e03021a05000414"),
            (HashAlg::Sha224, "302d300d06096086480165030402040500041c"),
            (HashAlg::Sha256, "3031300d060960864801650304020105000420"),
            (HashAlg::Sha384, "3041300d060960864801650304020205000430"),
            (HashAlg::Sha512, "3051300d060960864801650304020305000440"),
        ];
        for (alg, want) in rfc {
            assert_eq!(alg.digest_info_prefix(), &hex(want)[..], "{alg:?}");
        }
        // SHA-3: id-sha3-224..512 = 2.16.840.1.101.3.4.2.7..10 (AWS-LC rsa.c table).
        assert_eq!(
            HashAlg::Sha3_256.digest_info_prefix(),
            &hex("3031300d060960864801650304020805000420")[..]
        );
        for alg in ALL {
            let p = alg.digest_info_prefix();
            // The DER lengths are consistent: total = 2 + outer length.
            assert_eq!(p.len() + alg.output_len(), 2 + p[1] as usize, "{alg:?}");
            assert_eq!(p[p.len() - 1] as usize, alg.output_len(), "{alg:?}");
        }
    }

    #[test]
    fn block_lengths() {
        assert_eq!(HashAlg::Sha256.block_len(), 64);
        assert_eq!(HashAlg::Sha512.block_len(), 128);
        // FIPS 202: rate = 1600 - 2*d bits.
        for (alg, d) in [
            (HashAlg::Sha3_224, 224),
            (HashAlg::Sha3_256, 256),
            (HashAlg::Sha3_384, 384),
            (HashAlg::Sha3_512, 512),
        ] {
            assert_eq!(alg.block_len(), (1600 - 2 * d) / 8);
        }
    }
}
