//! Wire parsing throughput: frame + parse (full BSON validation) + analyse, per message.
//!
//! `cargo bench --bench wire` (figures in BENCHMARKS.md, section "Wire").

use bson::{doc, RawDocumentBuf};
use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use docauth::wire::{
    analyse, compress_message, encode_op_msg, try_frame, Compressor, Message,
    DEFAULT_MAX_MESSAGE_SIZE,
};

fn raw(d: &bson::Document) -> RawDocumentBuf {
    RawDocumentBuf::from_document(d).unwrap()
}

/// What pymongo sends for `coll.find({"status": "A", "qty": {"$lt": 30}}).limit(10)`.
fn find() -> Vec<u8> {
    let body = doc! {
        "find": "inventory",
        "filter": {"status": "A", "qty": {"$lt": 30}},
        "limit": 10,
        "lsid": {"id": bson::Binary{subtype: bson::spec::BinarySubtype::Uuid, bytes: vec![7; 16]}},
        "$clusterTime": {"clusterTime": bson::Timestamp{time: 1, increment: 1}, "signature": {"hash": bson::Binary{subtype: bson::spec::BinarySubtype::Generic, bytes: vec![0; 20]}, "keyId": 0i64}},
        "$db": "test",
        "$readPreference": {"mode": "primaryPreferred"},
    };
    encode_op_msg(1, 0, 0, &raw(&body), &[]).unwrap()
}

/// `insert_one` of a ~1 KB document: body + `documents` sequence.
fn insert_1k() -> Vec<u8> {
    let body = doc! {
        "insert": "inventory", "ordered": true,
        "lsid": {"id": bson::Binary{subtype: bson::spec::BinarySubtype::Uuid, bytes: vec![7; 16]}},
        "$db": "test",
    };
    let mut d = doc! {"_id": bson::oid::ObjectId::from_bytes([1; 12]), "item": "journal", "qty": 25, "tags": ["blank", "red"], "size": {"h": 14, "w": 21, "uom": "cm"}};
    for i in 0..20 {
        d.insert(format!("field{i:02}"), "x".repeat(32));
    }
    let d = raw(&d);
    assert!(
        (1000..1200).contains(&d.as_bytes().len()),
        "{}",
        d.as_bytes().len()
    );
    encode_op_msg(1, 0, 0, &raw(&body), &[("documents", &[&d])]).unwrap()
}

/// An aggregate with `$match`, `$lookup` (with a sub-pipeline) and `$project`.
fn aggregate_lookup() -> Vec<u8> {
    let body = doc! {
        "aggregate": "orders",
        "pipeline": [
            {"$match": {"status": "shipped", "total": {"$gte": 100}}},
            {"$lookup": {"from": "customers", "let": {"cid": "$customer"}, "as": "customer",
                "pipeline": [{"$match": {"$expr": {"$eq": ["$_id", "$$cid"]}}}, {"$project": {"name": 1, "email": 1}}]}},
            {"$unwind": "$customer"},
            {"$project": {"_id": 0, "total": 1, "customer.name": 1}},
        ],
        "cursor": {"batchSize": 101},
        "lsid": {"id": bson::Binary{subtype: bson::spec::BinarySubtype::Uuid, bytes: vec![7; 16]}},
        "$db": "test",
    };
    encode_op_msg(1, 0, 0, &raw(&body), &[]).unwrap()
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("wire");
    let cases = [
        ("find", find()),
        ("insert_1k", insert_1k()),
        ("aggregate_lookup", aggregate_lookup()),
        (
            "insert_1k_snappy",
            compress_message(&insert_1k(), Compressor::Snappy).unwrap(),
        ),
    ];
    for (name, bytes) in cases {
        group.throughput(Throughput::Elements(1));
        let bytes = Bytes::from(bytes);
        group.bench_function(format!("frame_parse_analyse/{name}"), |b| {
            b.iter_batched(
                || BytesMut::from(&bytes[..]),
                |mut buf| {
                    let frame = try_frame(&mut buf, DEFAULT_MAX_MESSAGE_SIZE)
                        .unwrap()
                        .unwrap();
                    let message = Message::parse_request(frame, DEFAULT_MAX_MESSAGE_SIZE).unwrap();
                    analyse(&message).unwrap()
                },
                BatchSize::SmallInput,
            )
        });
        // Baseline in the same run (the machine is shared, so absolute figures drift): decode
        // the same message's documents into owned `bson::Document`s, as a proxy that parses
        // with `Document` (Teleport does) would.
        let message = Message::parse_request(
            docauth::wire::Frame::from_bytes(bytes.clone(), DEFAULT_MAX_MESSAGE_SIZE).unwrap(),
            DEFAULT_MAX_MESSAGE_SIZE,
        )
        .unwrap();
        let msg = message.op_msg().unwrap();
        let mut docs: Vec<Vec<u8>> = vec![msg.body().as_bytes().to_vec()];
        for seq in msg.sequences() {
            for d in seq.documents() {
                docs.push(d.unwrap().as_bytes().to_vec());
            }
        }
        group.bench_function(format!("baseline_document_decode/{name}"), |b| {
            b.iter(|| {
                docs.iter()
                    .map(|d| bson::Document::from_reader(&d[..]).unwrap().len())
                    .sum::<usize>()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
