//! Avro encode + decode of a 2 KiB RawSegment: records/s (criterion prints it as elem/s).

use chainwatch_schemas::{AvroRecord, RawSegment, samples};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;

fn bench(c: &mut Criterion) {
    let payload: Vec<u8> = b"{\"role\":\"user\",\"content\":\"hello\"} ".iter().copied().cycle().take(2048).collect();
    let seg = samples::raw_segment(payload);
    let bytes = seg.encode().expect("encode");
    let mut g = c.benchmark_group("avro_raw_segment_2KiB");
    g.throughput(Throughput::Elements(1));
    g.bench_function("encode", |b| b.iter(|| black_box(&seg).encode().expect("encode")));
    g.bench_function("decode", |b| b.iter(|| RawSegment::decode(black_box(&bytes)).expect("decode")));
    g.bench_function("encode+decode", |b| {
        b.iter(|| RawSegment::decode(&black_box(&seg).encode().expect("encode")).expect("decode"))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
