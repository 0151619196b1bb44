//! Tests that drive the built libclusterhsm.so through the cryptoki crate.
