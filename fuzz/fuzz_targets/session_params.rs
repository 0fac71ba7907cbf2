//! cargo-fuzz target `session_params`: see `harness::session_params` for what it checks.
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::session_params(data));
