//! cargo-fuzz target `wire_analyse`: see `harness::wire_analyse` for what it checks.
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::wire_analyse(data));
