//! cargo-fuzz target `wire_frame`: see `harness::wire_frame` for what it checks.
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::wire_frame(data));
