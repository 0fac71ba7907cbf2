//! Any byte stream through the framing reader and the message parser: never a panic, and
//! nothing reserved beyond the limit.
#![no_main]

use bytes::BytesMut;
use docauth::wire::{error_reply, try_frame, Message};
use libfuzzer_sys::fuzz_target;

/// A small limit so that the fuzzer reaches the "too large" paths quickly.
const LIMIT: usize = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let mut buf = BytesMut::from(data);
    while let Ok(Some(frame)) = try_frame(&mut buf, LIMIT) {
        let info = frame.request_info();
        let _ = error_reply(&info, 1, 13, "Unauthorized", "denied");
        let _ = Message::parse(frame, LIMIT);
    }
});
