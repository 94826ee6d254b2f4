//! `ChainView`: a chain version as it is published, borrowing the builder's state instead of
//! copying it. The worker Avro-encodes an upsert straight from it (`encode`, `chain_avro`)
//! without building an owned `Chain` first: a version of a 6-step chain was ~150 allocations,
//! most of them string copies of steps and PII flows. `to_chain` gives the owned record for
//! the offline paths (`chainwatch chain`, tests). `tests/encoded_output.rs` checks the bytes
//! equal `Chain::encode` of the owned record.

use chainwatch_schemas::{AgentRef, Autonomy, Chain, ChainStatus, ChainStep, PiiFlow, ToolExecution};

use crate::step::StepRecord;

use crate::attribution::ExecutedFor;

/// `ToolExecution`, borrowed.
#[derive(Debug, Clone)]
pub struct ToolExecutionView<'a> {
    pub tool_call_id: &'a str,
    pub tool_name: &'a str,
    pub requested_at_step: i32,
    pub executed_steps: Vec<i32>,
    pub result_step: Option<i32>,
    pub approved: bool,
}

/// `PiiFlow`, borrowed.
#[derive(Debug, Clone)]
pub struct PiiFlowView<'a> {
    pub fingerprint: &'a str,
    pub pii_type: &'a str,
    pub from_step: i32,
    pub to_step: i32,
    pub destination: Option<&'a str>,
}

/// A `ChainStep` as published: the kept step with its position and the tool call it executed.
#[derive(Debug, Clone, Copy)]
pub struct StepView<'a> {
    pub step: &'a StepRecord,
    pub index: i32,
    /// (name, id) of the tool call this step executed.
    pub tool: Option<(&'a str, &'a str)>,
    /// Which call that is (the requesting step and the call's index in it).
    pub executed: Option<ExecutedFor>,
}

impl<'a> StepView<'a> {
    /// (tool_name, tool_call_id) as published: the executed call's, else the step's own.
    pub fn tool_fields(&self) -> (Option<&'a str>, Option<&'a str>) {
        match self.tool {
            Some((name, id)) => (Some(name), Some(id)),
            None => (self.step.tool_name(), self.step.tool_call_id()),
        }
    }

    fn to_step(self) -> ChainStep {
        self.step.to_chain_step(self.index, self.tool)
    }
}

/// `Chain`, borrowed from the builder's `ChainState`.
#[derive(Debug, Clone)]
pub struct ChainView<'a> {
    pub chain_id: &'a str,
    pub version: i64,
    pub status: ChainStatus,
    pub agent: &'a AgentRef,
    pub start_ns: i64,
    pub end_ns: i64,
    pub steps: Vec<StepView<'a>>,
    pub tool_calls: Vec<ToolExecutionView<'a>>,
    pub pii_flows: Vec<PiiFlowView<'a>>,
    pub tools: Vec<&'a str>,
    pub destinations: Vec<&'a str>,
    pub pii_types: Vec<&'a str>,
    pub bytes_out: i64,
    pub bytes_in: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cost_usd: f64,
    pub max_tool_repeats: i32,
    pub autonomy: Autonomy,
    pub risk_score: f64,
    pub risk_reasons: Vec<String>,
}

impl ChainView<'_> {
    /// The Avro single-object encoding of the chain, as `Chain::encode` gives it.
    pub fn encode(&self) -> Vec<u8> {
        crate::chain_avro::encode_chain(self)
    }

    /// The owned record.
    pub fn to_chain(&self) -> Chain {
        let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<String>>();
        Chain {
            chain_id: self.chain_id.to_string(),
            version: self.version,
            status: self.status,
            agent: self.agent.clone(),
            start_ns: self.start_ns,
            end_ns: self.end_ns,
            steps: self.steps.iter().map(|s| s.to_step()).collect(),
            tool_calls: self
                .tool_calls
                .iter()
                .map(|t| ToolExecution {
                    tool_call_id: t.tool_call_id.to_string(),
                    tool_name: t.tool_name.to_string(),
                    requested_at_step: t.requested_at_step,
                    executed_steps: t.executed_steps.clone(),
                    result_step: t.result_step,
                    approved: t.approved,
                })
                .collect(),
            pii_flows: self
                .pii_flows
                .iter()
                .map(|f| PiiFlow {
                    fingerprint: f.fingerprint.to_string(),
                    pii_type: f.pii_type.to_string(),
                    from_step: f.from_step,
                    to_step: f.to_step,
                    destination: f.destination.map(str::to_string),
                })
                .collect(),
            tools: strings(&self.tools),
            destinations: strings(&self.destinations),
            pii_types: strings(&self.pii_types),
            bytes_out: self.bytes_out,
            bytes_in: self.bytes_in,
            input_tokens: self.input_tokens,
            output_tokens: self.output_tokens,
            cost_usd: self.cost_usd,
            max_tool_repeats: self.max_tool_repeats,
            autonomy: self.autonomy,
            risk_score: self.risk_score,
            risk_reasons: self.risk_reasons.clone(),
        }
    }
}

/// A chain version encoded for the bus (`ChainBuilder::set_encoded_output`): the key, the
/// version header and the Avro bytes the worker publishes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EncodedChain {
    pub chain_id: String,
    pub version: i64,
    pub bytes: Vec<u8>,
}
