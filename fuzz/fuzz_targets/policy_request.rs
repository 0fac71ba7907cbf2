//! cargo-fuzz target `policy_request`: see `harness::policy_request` for what it checks.
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::policy_request(data));
