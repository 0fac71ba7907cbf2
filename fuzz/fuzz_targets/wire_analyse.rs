//! Any byte string as an OP_MSG body (and as an OP_QUERY query): parse, analyse, strip the
//! handshake; never a panic.
#![no_main]

use bytes::Bytes;
use docauth::wire::{analyse, strip_handshake, Frame, Message, DEFAULT_MAX_MESSAGE_SIZE};
use libfuzzer_sys::fuzz_target;

fn run(bytes: Vec<u8>) {
    if let Ok(frame) = Frame::from_bytes(Bytes::from(bytes), DEFAULT_MAX_MESSAGE_SIZE) {
        if let Ok(message) = Message::parse(frame, DEFAULT_MAX_MESSAGE_SIZE) {
            let _ = analyse(&message);
            let _ = strip_handshake(&message);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    // OP_MSG: header, flagBits 0, kind-0 section holding the fuzz input as the body (which
    // may also run on into kind-1 sections).
    let mut msg = Vec::with_capacity(21 + data.len());
    msg.extend_from_slice(&((21 + data.len()) as i32).to_le_bytes());
    msg.extend_from_slice(&1i32.to_le_bytes());
    msg.extend_from_slice(&0i32.to_le_bytes());
    msg.extend_from_slice(&2013i32.to_le_bytes());
    msg.extend_from_slice(&0u32.to_le_bytes());
    msg.push(0);
    msg.extend_from_slice(data);
    run(msg);
    // OP_QUERY on test.$cmd with the fuzz input as the query.
    let mut q = Vec::with_capacity(40 + data.len());
    let ns = b"test.$cmd\0";
    q.extend_from_slice(&((16 + 4 + ns.len() + 8 + data.len()) as i32).to_le_bytes());
    q.extend_from_slice(&1i32.to_le_bytes());
    q.extend_from_slice(&0i32.to_le_bytes());
    q.extend_from_slice(&2004i32.to_le_bytes());
    q.extend_from_slice(&0i32.to_le_bytes());
    q.extend_from_slice(ns);
    q.extend_from_slice(&0i32.to_le_bytes());
    q.extend_from_slice(&(-1i32).to_le_bytes());
    q.extend_from_slice(data);
    run(q);
});
