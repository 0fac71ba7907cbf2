//! cargo-fuzz target `policy_config`: see `harness::policy_config` for what it checks.
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::policy_config(data));
