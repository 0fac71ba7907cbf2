//! The relay benches' round trip (`#[path = "shared/round_trip.rs"] mod round_trip;`, beside
//! `mod common;` from tests/common).

use std::time::{Duration, Instant};

use bson::doc;

/// Small request/reply round trips of the relay benches: a 1-document-filter `find`.
pub fn find_request() -> bson::Document {
    doc! {"find": "people", "filter": {"age": {"$gt": 30}}, "limit": 1, "$db": "test"}
}

pub fn round_trip(client: &mut crate::common::Client, request: &bson::Document) -> Duration {
    let started = Instant::now();
    let (_, reply) = client.command(request.clone());
    let took = started.elapsed();
    assert_eq!(reply.doc.get_f64("ok").unwrap(), 1.0);
    took
}

pub fn median_us(samples: &mut [Duration]) -> f64 {
    samples.sort_unstable();
    samples[samples.len() / 2].as_secs_f64() * 1e6
}
