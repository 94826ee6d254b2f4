//! The chain tables as Arrow record batches: `chains`, `steps`, `tool_calls`, `pii_flows`,
//! `processes` and `violations`. Their schemas are the contract for policies (SQL) and for the
//! Parquet store; `TABLES.md` documents every column.
//!
//! Conventions: every table carries `chain_id`; the per-chain tables and `violations` carry
//! `day` (UTC date `YYYY-MM-DD` of the chain start, usable as a partition column); times are
//! `Timestamp(Nanosecond, "UTC")`; lists of names are `List<Utf8>`.

use std::sync::Arc;

use chainwatch_schemas::{Chain, ChainStep, Violation};
use datafusion::arrow::array::{
    ArrayRef, BooleanBuilder, Float64Builder, Int32Builder, Int64Builder, ListBuilder, RecordBatch, StringBuilder,
    TimestampNanosecondBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::error::ArrowError;

/// Building a batch failed (a schema/array mismatch: a bug, reported rather than panicking).
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    #[error("building the {table} table: {source}")]
    Arrow {
        table: &'static str,
        #[source]
        source: ArrowError,
    },
    #[error("encoding evidence of violation {violation_id} as JSON: {source}")]
    Evidence {
        violation_id: String,
        #[source]
        source: serde_json::Error,
    },
}

/// The time zone every timestamp column carries.
pub const UTC: &str = "UTC";

/// UTC date (`YYYY-MM-DD`) of a nanosecond timestamp; the partition key.
pub fn day_of(ts_ns: i64) -> String {
    chrono::DateTime::from_timestamp_nanos(ts_ns).format("%Y-%m-%d").to_string()
}

fn ts_type() -> DataType {
    DataType::Timestamp(TimeUnit::Nanosecond, Some(UTC.into()))
}

fn list_of(item: DataType) -> DataType {
    DataType::List(Arc::new(Field::new("item", item, true)))
}

fn utf8(name: &str) -> Field {
    Field::new(name, DataType::Utf8, false)
}

fn utf8_null(name: &str) -> Field {
    Field::new(name, DataType::Utf8, true)
}

fn i64f(name: &str) -> Field {
    Field::new(name, DataType::Int64, false)
}

fn i32f(name: &str) -> Field {
    Field::new(name, DataType::Int32, false)
}

fn tsf(name: &str) -> Field {
    Field::new(name, ts_type(), false)
}

fn strings(name: &str) -> Field {
    Field::new(name, list_of(DataType::Utf8), false)
}

/// One row per chain (its latest version).
pub fn chain_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        utf8("chain_id"),
        i64f("version"),
        utf8("status"),
        utf8("day"),
        utf8("node"),
        utf8("agent_key"),
        i32f("tgid"),
        utf8("exe"),
        utf8("comm"),
        utf8_null("container_id"),
        utf8_null("pod_uid"),
        utf8_null("namespace"),
        utf8_null("team"),
        tsf("start_time"),
        tsf("end_time"),
        i32f("step_count"),
        strings("tools"),
        strings("destinations"),
        strings("pii_types"),
        i64f("bytes_out"),
        i64f("bytes_in"),
        i64f("input_tokens"),
        i64f("output_tokens"),
        Field::new("cost_usd", DataType::Float64, false),
        i32f("max_tool_repeats"),
        utf8("autonomy"),
        Field::new("risk_score", DataType::Float64, false),
        strings("risk_reasons"),
    ]))
}

/// One row per step of a chain.
pub fn steps_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        utf8("chain_id"),
        utf8("day"),
        utf8("node"),
        utf8("agent_key"),
        i32f("step_index"),
        utf8("event_id"),
        tsf("ts_start"),
        tsf("ts_end"),
        utf8("kind"),
        utf8("protocol"),
        i32f("tgid"),
        utf8("comm"),
        utf8_null("destination"),
        utf8("category"),
        utf8_null("method"),
        utf8_null("tool_name"),
        utf8_null("tool_call_id"),
        utf8("summary"),
        utf8_null("model"),
        i64f("input_tokens"),
        i64f("output_tokens"),
        Field::new("cost_usd", DataType::Float64, false),
        Field::new("rows", DataType::Int64, true),
        i64f("bytes_out"),
        i64f("bytes_in"),
        strings("pii_types"),
        strings("injection_rules"),
        strings("secret_types"),
        utf8_null("statement"),
        Field::new("top_k", DataType::Int64, true),
        utf8_null("archive_format"),
    ]))
}

/// One row per tool execution (request by the model, execution steps, result).
pub fn tool_calls_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        utf8("chain_id"),
        utf8("day"),
        utf8("agent_key"),
        utf8("tool_call_id"),
        utf8("tool_name"),
        i32f("requested_at_step"),
        Field::new("requested_at", ts_type(), true),
        Field::new("executed_steps", list_of(DataType::Int32), false),
        Field::new("result_step", DataType::Int32, true),
        Field::new("approved", DataType::Boolean, false),
    ]))
}

/// One row per PII flow: a fingerprinted value seen at `from_step` and again at `to_step`.
pub fn pii_flows_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        utf8("chain_id"),
        utf8("day"),
        utf8("agent_key"),
        utf8("fingerprint"),
        utf8("pii_type"),
        i32f("from_step"),
        i32f("to_step"),
        utf8_null("destination"),
        Field::new("to_ts", ts_type(), true),
    ]))
}

/// One row per process of a chain: the agent itself (`role` = `agent`) and every step of kind
/// `process` (`role` = `child`: a command the agent ran, e.g. gzip or tar).
pub fn processes_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        utf8("chain_id"),
        utf8("day"),
        utf8("node"),
        utf8("agent_key"),
        utf8("role"),
        i32f("tgid"),
        utf8("comm"),
        utf8("exe"),
        Field::new("step_index", DataType::Int32, true),
        tsf("ts"),
    ]))
}

/// One row per violation (the latest version of each).
pub fn violations_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        utf8("violation_id"),
        i64f("version"),
        utf8("policy_id"),
        utf8("policy_title"),
        utf8("severity"),
        utf8("description"),
        utf8("chain_id"),
        utf8("day"),
        utf8("node"),
        utf8("agent_key"),
        tsf("first_seen"),
        tsf("ts"),
        Field::new("evidence_steps", list_of(DataType::Int32), false),
        utf8("evidence"),
        strings("pii_types"),
        Field::new("risk_score", DataType::Float64, false),
        strings("tags"),
    ]))
}

/// The per-chain tables of a set of chains.
#[derive(Debug, Clone)]
pub struct ChainTables {
    pub chains: RecordBatch,
    pub steps: RecordBatch,
    pub tool_calls: RecordBatch,
    pub pii_flows: RecordBatch,
    pub processes: RecordBatch,
}

impl ChainTables {
    /// Flatten chains into the tables (one `chains` row per chain given).
    pub fn from_chains(chains: &[Chain]) -> Result<ChainTables, TableError> {
        Ok(ChainTables {
            chains: chains_batch(chains)?,
            steps: steps_batch(chains)?,
            tool_calls: tool_calls_batch(chains)?,
            pii_flows: pii_flows_batch(chains)?,
            processes: processes_batch(chains)?,
        })
    }

    /// Empty tables (for registering before any chain arrived).
    pub fn empty() -> ChainTables {
        ChainTables {
            chains: RecordBatch::new_empty(chain_schema()),
            steps: RecordBatch::new_empty(steps_schema()),
            tool_calls: RecordBatch::new_empty(tool_calls_schema()),
            pii_flows: RecordBatch::new_empty(pii_flows_schema()),
            processes: RecordBatch::new_empty(processes_schema()),
        }
    }
}

fn ts_builder(capacity: usize) -> TimestampNanosecondBuilder {
    TimestampNanosecondBuilder::with_capacity(capacity).with_timezone(UTC)
}

fn string_list<'a>(b: &mut ListBuilder<StringBuilder>, items: impl IntoIterator<Item = &'a String>) {
    for s in items {
        b.values().append_value(s);
    }
    b.append(true);
}

fn finish(table: &'static str, schema: SchemaRef, columns: Vec<ArrayRef>) -> Result<RecordBatch, TableError> {
    RecordBatch::try_new(schema, columns).map_err(|source| TableError::Arrow { table, source })
}

fn chains_batch(chains: &[Chain]) -> Result<RecordBatch, TableError> {
    let n = chains.len();
    let mut chain_id = StringBuilder::new();
    let mut version = Int64Builder::with_capacity(n);
    let mut status = StringBuilder::new();
    let mut day = StringBuilder::new();
    let mut node = StringBuilder::new();
    let mut agent_key = StringBuilder::new();
    let mut tgid = Int32Builder::with_capacity(n);
    let mut exe = StringBuilder::new();
    let mut comm = StringBuilder::new();
    let mut container_id = StringBuilder::new();
    let mut pod_uid = StringBuilder::new();
    let mut namespace = StringBuilder::new();
    let mut team = StringBuilder::new();
    let mut start = ts_builder(n);
    let mut end = ts_builder(n);
    let mut step_count = Int32Builder::with_capacity(n);
    let mut tools = ListBuilder::new(StringBuilder::new());
    let mut destinations = ListBuilder::new(StringBuilder::new());
    let mut pii_types = ListBuilder::new(StringBuilder::new());
    let mut bytes_out = Int64Builder::with_capacity(n);
    let mut bytes_in = Int64Builder::with_capacity(n);
    let mut input_tokens = Int64Builder::with_capacity(n);
    let mut output_tokens = Int64Builder::with_capacity(n);
    let mut cost = Float64Builder::with_capacity(n);
    let mut max_repeats = Int32Builder::with_capacity(n);
    let mut autonomy = StringBuilder::new();
    let mut risk = Float64Builder::with_capacity(n);
    let mut reasons = ListBuilder::new(StringBuilder::new());
    for c in chains {
        chain_id.append_value(&c.chain_id);
        version.append_value(c.version);
        status.append_value(enum_name(&c.status));
        day.append_value(day_of(c.start_ns));
        node.append_value(&c.agent.node);
        agent_key.append_value(&c.agent.agent_key);
        tgid.append_value(c.agent.tgid);
        exe.append_value(&c.agent.exe);
        comm.append_value(&c.agent.comm);
        container_id.append_option(c.agent.container_id.as_deref());
        pod_uid.append_option(c.agent.pod_uid.as_deref());
        namespace.append_option(c.agent.namespace.as_deref());
        team.append_option(c.agent.team.as_deref());
        start.append_value(c.start_ns);
        end.append_value(c.end_ns);
        step_count.append_value(i32::try_from(c.steps.len()).unwrap_or(i32::MAX));
        string_list(&mut tools, &c.tools);
        string_list(&mut destinations, &c.destinations);
        string_list(&mut pii_types, &c.pii_types);
        bytes_out.append_value(c.bytes_out);
        bytes_in.append_value(c.bytes_in);
        input_tokens.append_value(c.input_tokens);
        output_tokens.append_value(c.output_tokens);
        cost.append_value(c.cost_usd);
        max_repeats.append_value(c.max_tool_repeats);
        autonomy.append_value(enum_name(&c.autonomy));
        risk.append_value(c.risk_score);
        string_list(&mut reasons, &c.risk_reasons);
    }
    finish(
        "chains",
        chain_schema(),
        vec![
            Arc::new(chain_id.finish()),
            Arc::new(version.finish()),
            Arc::new(status.finish()),
            Arc::new(day.finish()),
            Arc::new(node.finish()),
            Arc::new(agent_key.finish()),
            Arc::new(tgid.finish()),
            Arc::new(exe.finish()),
            Arc::new(comm.finish()),
            Arc::new(container_id.finish()),
            Arc::new(pod_uid.finish()),
            Arc::new(namespace.finish()),
            Arc::new(team.finish()),
            Arc::new(start.finish()),
            Arc::new(end.finish()),
            Arc::new(step_count.finish()),
            Arc::new(tools.finish()),
            Arc::new(destinations.finish()),
            Arc::new(pii_types.finish()),
            Arc::new(bytes_out.finish()),
            Arc::new(bytes_in.finish()),
            Arc::new(input_tokens.finish()),
            Arc::new(output_tokens.finish()),
            Arc::new(cost.finish()),
            Arc::new(max_repeats.finish()),
            Arc::new(autonomy.finish()),
            Arc::new(risk.finish()),
            Arc::new(reasons.finish()),
        ],
    )
}

/// The serde name of a unit enum variant (`OPEN`, `AUTONOMOUS`, `HIGH`, ...).
fn enum_name<T: serde::Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

fn steps_batch(chains: &[Chain]) -> Result<RecordBatch, TableError> {
    let n: usize = chains.iter().map(|c| c.steps.len()).sum();
    let mut chain_id = StringBuilder::new();
    let mut day = StringBuilder::new();
    let mut node = StringBuilder::new();
    let mut agent_key = StringBuilder::new();
    let mut index = Int32Builder::with_capacity(n);
    let mut event_id = StringBuilder::new();
    let mut ts_start = ts_builder(n);
    let mut ts_end = ts_builder(n);
    let mut kind = StringBuilder::new();
    let mut protocol = StringBuilder::new();
    let mut tgid = Int32Builder::with_capacity(n);
    let mut comm = StringBuilder::new();
    let mut destination = StringBuilder::new();
    let mut category = StringBuilder::new();
    let mut method = StringBuilder::new();
    let mut tool_name = StringBuilder::new();
    let mut tool_call_id = StringBuilder::new();
    let mut summary = StringBuilder::new();
    let mut model = StringBuilder::new();
    let mut input_tokens = Int64Builder::with_capacity(n);
    let mut output_tokens = Int64Builder::with_capacity(n);
    let mut cost = Float64Builder::with_capacity(n);
    let mut rows = Int64Builder::with_capacity(n);
    let mut bytes_out = Int64Builder::with_capacity(n);
    let mut bytes_in = Int64Builder::with_capacity(n);
    let mut pii = ListBuilder::new(StringBuilder::new());
    let mut injection = ListBuilder::new(StringBuilder::new());
    let mut secrets = ListBuilder::new(StringBuilder::new());
    let mut statement = StringBuilder::new();
    let mut top_k = Int64Builder::with_capacity(n);
    let mut archive = StringBuilder::new();
    for c in chains {
        let d = day_of(c.start_ns);
        for s in &c.steps {
            chain_id.append_value(&c.chain_id);
            day.append_value(&d);
            node.append_value(if s.node.is_empty() { &c.agent.node } else { &s.node });
            agent_key.append_value(&c.agent.agent_key);
            index.append_value(s.index);
            event_id.append_value(&s.event_id);
            ts_start.append_value(s.ts_start_ns);
            ts_end.append_value(s.ts_end_ns);
            kind.append_value(&s.kind);
            protocol.append_value(&s.protocol);
            tgid.append_value(s.tgid);
            comm.append_value(&s.comm);
            destination.append_option(s.destination.as_deref());
            category.append_value(&s.category);
            method.append_option(s.method.as_deref());
            tool_name.append_option(s.tool_name.as_deref());
            tool_call_id.append_option(s.tool_call_id.as_deref());
            summary.append_value(&s.summary);
            model.append_option(s.model.as_deref());
            input_tokens.append_value(s.input_tokens);
            output_tokens.append_value(s.output_tokens);
            cost.append_value(s.cost_usd);
            rows.append_option(s.rows);
            bytes_out.append_value(s.bytes_out);
            bytes_in.append_value(s.bytes_in);
            string_list(&mut pii, &s.pii_types);
            string_list(&mut injection, &s.injection_rules);
            string_list(&mut secrets, &s.secret_types);
            statement.append_option(s.statement.as_deref());
            top_k.append_option(s.top_k);
            archive.append_option(s.archive_format.as_deref());
        }
    }
    finish(
        "steps",
        steps_schema(),
        vec![
            Arc::new(chain_id.finish()),
            Arc::new(day.finish()),
            Arc::new(node.finish()),
            Arc::new(agent_key.finish()),
            Arc::new(index.finish()),
            Arc::new(event_id.finish()),
            Arc::new(ts_start.finish()),
            Arc::new(ts_end.finish()),
            Arc::new(kind.finish()),
            Arc::new(protocol.finish()),
            Arc::new(tgid.finish()),
            Arc::new(comm.finish()),
            Arc::new(destination.finish()),
            Arc::new(category.finish()),
            Arc::new(method.finish()),
            Arc::new(tool_name.finish()),
            Arc::new(tool_call_id.finish()),
            Arc::new(summary.finish()),
            Arc::new(model.finish()),
            Arc::new(input_tokens.finish()),
            Arc::new(output_tokens.finish()),
            Arc::new(cost.finish()),
            Arc::new(rows.finish()),
            Arc::new(bytes_out.finish()),
            Arc::new(bytes_in.finish()),
            Arc::new(pii.finish()),
            Arc::new(injection.finish()),
            Arc::new(secrets.finish()),
            Arc::new(statement.finish()),
            Arc::new(top_k.finish()),
            Arc::new(archive.finish()),
        ],
    )
}

/// The step of a chain with this index, if any.
fn step_at(c: &Chain, index: i32) -> Option<&ChainStep> {
    c.steps.iter().find(|s| s.index == index)
}

fn tool_calls_batch(chains: &[Chain]) -> Result<RecordBatch, TableError> {
    let n: usize = chains.iter().map(|c| c.tool_calls.len()).sum();
    let mut chain_id = StringBuilder::new();
    let mut day = StringBuilder::new();
    let mut agent_key = StringBuilder::new();
    let mut tool_call_id = StringBuilder::new();
    let mut tool_name = StringBuilder::new();
    let mut requested_at_step = Int32Builder::with_capacity(n);
    let mut requested_at = ts_builder(n);
    let mut executed = ListBuilder::new(Int32Builder::new());
    let mut result_step = Int32Builder::with_capacity(n);
    let mut approved = BooleanBuilder::with_capacity(n);
    for c in chains {
        let d = day_of(c.start_ns);
        for t in &c.tool_calls {
            chain_id.append_value(&c.chain_id);
            day.append_value(&d);
            agent_key.append_value(&c.agent.agent_key);
            tool_call_id.append_value(&t.tool_call_id);
            tool_name.append_value(&t.tool_name);
            requested_at_step.append_value(t.requested_at_step);
            requested_at.append_option(step_at(c, t.requested_at_step).map(|s| s.ts_start_ns));
            for e in &t.executed_steps {
                executed.values().append_value(*e);
            }
            executed.append(true);
            result_step.append_option(t.result_step);
            approved.append_value(t.approved);
        }
    }
    finish(
        "tool_calls",
        tool_calls_schema(),
        vec![
            Arc::new(chain_id.finish()),
            Arc::new(day.finish()),
            Arc::new(agent_key.finish()),
            Arc::new(tool_call_id.finish()),
            Arc::new(tool_name.finish()),
            Arc::new(requested_at_step.finish()),
            Arc::new(requested_at.finish()),
            Arc::new(executed.finish()),
            Arc::new(result_step.finish()),
            Arc::new(approved.finish()),
        ],
    )
}

fn pii_flows_batch(chains: &[Chain]) -> Result<RecordBatch, TableError> {
    let n: usize = chains.iter().map(|c| c.pii_flows.len()).sum();
    let mut chain_id = StringBuilder::new();
    let mut day = StringBuilder::new();
    let mut agent_key = StringBuilder::new();
    let mut fingerprint = StringBuilder::new();
    let mut pii_type = StringBuilder::new();
    let mut from_step = Int32Builder::with_capacity(n);
    let mut to_step = Int32Builder::with_capacity(n);
    let mut destination = StringBuilder::new();
    let mut to_ts = ts_builder(n);
    for c in chains {
        let d = day_of(c.start_ns);
        for f in &c.pii_flows {
            chain_id.append_value(&c.chain_id);
            day.append_value(&d);
            agent_key.append_value(&c.agent.agent_key);
            fingerprint.append_value(&f.fingerprint);
            pii_type.append_value(&f.pii_type);
            from_step.append_value(f.from_step);
            to_step.append_value(f.to_step);
            destination.append_option(f.destination.as_deref());
            to_ts.append_option(step_at(c, f.to_step).map(|s| s.ts_start_ns));
        }
    }
    finish(
        "pii_flows",
        pii_flows_schema(),
        vec![
            Arc::new(chain_id.finish()),
            Arc::new(day.finish()),
            Arc::new(agent_key.finish()),
            Arc::new(fingerprint.finish()),
            Arc::new(pii_type.finish()),
            Arc::new(from_step.finish()),
            Arc::new(to_step.finish()),
            Arc::new(destination.finish()),
            Arc::new(to_ts.finish()),
        ],
    )
}

fn processes_batch(chains: &[Chain]) -> Result<RecordBatch, TableError> {
    let mut chain_id = StringBuilder::new();
    let mut day = StringBuilder::new();
    let mut node = StringBuilder::new();
    let mut agent_key = StringBuilder::new();
    let mut role = StringBuilder::new();
    let mut tgid = Int32Builder::new();
    let mut comm = StringBuilder::new();
    let mut exe = StringBuilder::new();
    let mut step_index = Int32Builder::new();
    let mut ts = ts_builder(chains.len());
    for c in chains {
        let d = day_of(c.start_ns);
        chain_id.append_value(&c.chain_id);
        day.append_value(&d);
        node.append_value(&c.agent.node);
        agent_key.append_value(&c.agent.agent_key);
        role.append_value("agent");
        tgid.append_value(c.agent.tgid);
        comm.append_value(&c.agent.comm);
        exe.append_value(&c.agent.exe);
        step_index.append_null();
        ts.append_value(if c.agent.process_start_ns > 0 { c.agent.process_start_ns } else { c.start_ns });
        for s in c.steps.iter().filter(|s| s.kind == "process") {
            chain_id.append_value(&c.chain_id);
            day.append_value(&d);
            node.append_value(if s.node.is_empty() { &c.agent.node } else { &s.node });
            agent_key.append_value(&c.agent.agent_key);
            role.append_value("child");
            tgid.append_value(s.tgid);
            comm.append_value(&s.comm);
            // A process step's summary is its command line; the first word is the executable.
            exe.append_value(s.summary.split_whitespace().next().unwrap_or(&s.comm));
            step_index.append_value(s.index);
            ts.append_value(s.ts_start_ns);
        }
    }
    finish(
        "processes",
        processes_schema(),
        vec![
            Arc::new(chain_id.finish()),
            Arc::new(day.finish()),
            Arc::new(node.finish()),
            Arc::new(agent_key.finish()),
            Arc::new(role.finish()),
            Arc::new(tgid.finish()),
            Arc::new(comm.finish()),
            Arc::new(exe.finish()),
            Arc::new(step_index.finish()),
            Arc::new(ts.finish()),
        ],
    )
}

/// The violations table (one row per violation given; `day` is the UTC date of `first_seen`).
pub fn violations_batch(violations: &[Violation]) -> Result<RecordBatch, TableError> {
    let n = violations.len();
    let mut violation_id = StringBuilder::new();
    let mut version = Int64Builder::with_capacity(n);
    let mut policy_id = StringBuilder::new();
    let mut policy_title = StringBuilder::new();
    let mut severity = StringBuilder::new();
    let mut description = StringBuilder::new();
    let mut chain_id = StringBuilder::new();
    let mut day = StringBuilder::new();
    let mut node = StringBuilder::new();
    let mut agent_key = StringBuilder::new();
    let mut first_seen = ts_builder(n);
    let mut ts = ts_builder(n);
    let mut steps = ListBuilder::new(Int32Builder::new());
    let mut evidence = StringBuilder::new();
    let mut pii = ListBuilder::new(StringBuilder::new());
    let mut risk = Float64Builder::with_capacity(n);
    let mut tags = ListBuilder::new(StringBuilder::new());
    for v in violations {
        violation_id.append_value(&v.violation_id);
        version.append_value(v.version);
        policy_id.append_value(&v.policy_id);
        policy_title.append_value(&v.policy_title);
        severity.append_value(enum_name(&v.severity));
        description.append_value(&v.description);
        chain_id.append_value(&v.chain_id);
        day.append_value(day_of(v.first_seen_ns));
        node.append_value(&v.node);
        agent_key.append_value(&v.agent_key);
        first_seen.append_value(v.first_seen_ns);
        ts.append_value(v.ts_ns);
        for s in &v.evidence_steps {
            steps.values().append_value(*s);
        }
        steps.append(true);
        let json = serde_json::to_string(&v.evidence)
            .map_err(|source| TableError::Evidence { violation_id: v.violation_id.clone(), source })?;
        evidence.append_value(json);
        string_list(&mut pii, &v.pii_types);
        risk.append_value(v.risk_score);
        string_list(&mut tags, &v.tags);
    }
    finish(
        "violations",
        violations_schema(),
        vec![
            Arc::new(violation_id.finish()),
            Arc::new(version.finish()),
            Arc::new(policy_id.finish()),
            Arc::new(policy_title.finish()),
            Arc::new(severity.finish()),
            Arc::new(description.finish()),
            Arc::new(chain_id.finish()),
            Arc::new(day.finish()),
            Arc::new(node.finish()),
            Arc::new(agent_key.finish()),
            Arc::new(first_seen.finish()),
            Arc::new(ts.finish()),
            Arc::new(steps.finish()),
            Arc::new(evidence.finish()),
            Arc::new(pii.finish()),
            Arc::new(risk.finish()),
            Arc::new(tags.finish()),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use chainwatch_schemas::samples;

    #[test]
    fn sample_chain_flattens_into_every_table() {
        let t = ChainTables::from_chains(&[samples::chain()]).unwrap();
        assert_eq!(t.chains.num_rows(), 1);
        assert_eq!(t.steps.num_rows(), 1);
        assert_eq!(t.tool_calls.num_rows(), 1);
        assert_eq!(t.pii_flows.num_rows(), 1);
        assert_eq!(t.processes.num_rows(), 1);
        assert_eq!(t.chains.schema(), chain_schema());
        let day = t.steps.column_by_name("day").unwrap();
        let day = day.as_any().downcast_ref::<datafusion::arrow::array::StringArray>().unwrap();
        assert_eq!(day.value(0), "2023-11-14");
    }

    #[test]
    fn violations_flatten() {
        let b = violations_batch(&[samples::violation()]).unwrap();
        assert_eq!(b.num_rows(), 1);
        assert_eq!(b.schema(), violations_schema());
    }
}
