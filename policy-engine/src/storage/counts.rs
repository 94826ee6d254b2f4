//! Exact aggregate counts over every chain, sampled or not: one small row per chain version
//! (`chain_counts` on disk); the `agent_daily_counts` view sums the latest version of each chain
//! per day and agent, so upserts are not counted twice.

use std::sync::{Arc, LazyLock};

use chainwatch_schemas::Chain;
use datafusion::arrow::array::{ArrayRef, Float64Builder, Int64Builder, RecordBatch, StringBuilder};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::error::ArrowError;

use crate::tables::day_of;

/// The step kind of a call to an LLM API (parser-workers' semantic kind).
pub const LLM_CALL_KIND: &str = "llm_call";

static CHAIN_COUNTS_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("chain_id", DataType::Utf8, false),
        Field::new("version", DataType::Int64, false),
        Field::new("agent_key", DataType::Utf8, false),
        Field::new("node", DataType::Utf8, false),
        Field::new("steps", DataType::Int64, false),
        Field::new("llm_calls", DataType::Int64, false),
        Field::new("input_tokens", DataType::Int64, false),
        Field::new("output_tokens", DataType::Int64, false),
        Field::new("cost_usd", DataType::Float64, false),
        Field::new("bytes_out", DataType::Int64, false),
        Field::new("bytes_in", DataType::Int64, false),
        Field::new("day", DataType::Utf8, false),
    ]))
});

/// Schema of the per-chain count rows, `day` (YYYY-MM-DD, UTC, from the chain's start) last.
pub fn chain_counts_schema() -> SchemaRef {
    CHAIN_COUNTS_SCHEMA.clone()
}

/// One count row per chain.
pub fn chain_counts_batch(chains: &[&Chain]) -> Result<RecordBatch, ArrowError> {
    let n = chains.len();
    let mut chain_id = StringBuilder::with_capacity(n, n * 32);
    let mut version = Int64Builder::with_capacity(n);
    let mut agent_key = StringBuilder::with_capacity(n, n * 32);
    let mut node = StringBuilder::with_capacity(n, n * 16);
    let mut steps = Int64Builder::with_capacity(n);
    let mut llm_calls = Int64Builder::with_capacity(n);
    let mut input_tokens = Int64Builder::with_capacity(n);
    let mut output_tokens = Int64Builder::with_capacity(n);
    let mut cost_usd = Float64Builder::with_capacity(n);
    let mut bytes_out = Int64Builder::with_capacity(n);
    let mut bytes_in = Int64Builder::with_capacity(n);
    let mut day = StringBuilder::with_capacity(n, n * 10);
    for c in chains {
        chain_id.append_value(&c.chain_id);
        version.append_value(c.version);
        agent_key.append_value(&c.agent.agent_key);
        node.append_value(&c.agent.node);
        steps.append_value(c.steps.len() as i64);
        llm_calls.append_value(c.steps.iter().filter(|s| s.kind == LLM_CALL_KIND).count() as i64);
        input_tokens.append_value(c.input_tokens);
        output_tokens.append_value(c.output_tokens);
        cost_usd.append_value(c.cost_usd);
        bytes_out.append_value(c.bytes_out);
        bytes_in.append_value(c.bytes_in);
        day.append_value(day_of(c.start_ns));
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(chain_id.finish()),
        Arc::new(version.finish()),
        Arc::new(agent_key.finish()),
        Arc::new(node.finish()),
        Arc::new(steps.finish()),
        Arc::new(llm_calls.finish()),
        Arc::new(input_tokens.finish()),
        Arc::new(output_tokens.finish()),
        Arc::new(cost_usd.finish()),
        Arc::new(bytes_out.finish()),
        Arc::new(bytes_in.finish()),
        Arc::new(day.finish()),
    ];
    RecordBatch::try_new(chain_counts_schema(), columns)
}

