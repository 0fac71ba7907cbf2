//! cargo-fuzz target `provider_config`: see `harness::provider_config` for what it checks.
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::provider_config(data));
