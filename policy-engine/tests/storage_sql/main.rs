//! Tests of the chain store and ad hoc SQL (one test binary: DataFusion makes each one large).
//! - `roundtrip`: micro-batches over two days with upserts, append-only parts, compaction.
//! - `sampling`: interesting chains kept, routine ones sampled, counts exact.
//! - `http`: the SQL endpoint's auth, errors and answers on 127.0.0.1.
//! - `examples`: the queries of SQL_EXAMPLES.md, as written, with checked answers.
//! - `scheduled`: the scheduled compaction of closed days while appends go on.

mod examples;
mod fixtures;
mod http;
mod roundtrip;
mod sampling;
mod scheduled;
