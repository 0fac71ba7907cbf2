//! cargo-fuzz target `wire_differential`: see `harness::wire_differential` for what it checks.
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::wire_differential(data));
