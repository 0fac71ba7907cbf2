//! cargo-fuzz target `wire_decompress`: see `harness::wire_decompress` for what it checks.
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::wire_decompress(data));
