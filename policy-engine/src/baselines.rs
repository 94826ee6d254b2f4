//! Per-agent baselines the engine maintains from the chains it sees (token use per LLM call and
//! per chain, call rate), exposed to policies as the `baselines` table. Each LLM step is counted
//! once even though a chain arrives again with every update; agents and remembered chains are
//! capped (evictions counted).

use std::collections::{HashMap, VecDeque};
use chainwatch_schemas::Chain;
use datafusion::arrow::array::{ArrayRef, Float64Builder, Int64Builder, RecordBatch, StringBuilder, TimestampNanosecondBuilder};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

use crate::tables::{TableError, UTC};

/// Running statistics of one agent.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct AgentBaseline {
    pub chains: i64,
    pub llm_calls: i64,
    pub tokens: i64,
    pub max_tokens_per_call: i64,
    pub first_call_ns: i64,
    pub last_call_ns: i64,
}

/// Baselines of every agent seen.
#[derive(Debug)]
pub struct Baselines {
    agents: HashMap<String, AgentBaseline>,
    /// chain_id -> highest step index already counted.
    counted: HashMap<String, i32>,
    counted_order: VecDeque<String>,
    max_agents: usize,
    max_chains: usize,
    evicted_agents: u64,
    evicted_chains: u64,
}

impl Default for Baselines {
    fn default() -> Self {
        Baselines::new(10_000, 200_000)
    }
}

impl Baselines {
    pub fn new(max_agents: usize, max_chains: usize) -> Self {
        Baselines {
            agents: HashMap::new(),
            counted: HashMap::new(),
            counted_order: VecDeque::new(),
            max_agents,
            max_chains,
            evicted_agents: 0,
            evicted_chains: 0,
        }
    }

    pub fn get(&self, agent_key: &str) -> Option<&AgentBaseline> {
        self.agents.get(agent_key)
    }

    /// (agents, remembered chains) evicted by the caps.
    pub fn evictions(&self) -> (u64, u64) {
        (self.evicted_agents, self.evicted_chains)
    }

    /// Count the LLM steps of these chains not counted before.
    pub fn observe(&mut self, chains: &[Chain]) {
        for c in chains {
            let seen = match self.counted.get(&c.chain_id) {
                Some(i) => *i,
                None => {
                    self.counted.insert(c.chain_id.clone(), -1);
                    self.counted_order.push_back(c.chain_id.clone());
                    self.agents.entry(c.agent.agent_key.clone()).or_default().chains += 1;
                    -1
                }
            };
            let b = self.agents.entry(c.agent.agent_key.clone()).or_default();
            let mut highest = seen;
            for s in c.steps.iter().filter(|s| s.index > seen) {
                highest = highest.max(s.index);
                if s.kind != "llm_call" {
                    continue;
                }
                let tokens = s.input_tokens.saturating_add(s.output_tokens);
                b.llm_calls += 1;
                b.tokens = b.tokens.saturating_add(tokens);
                b.max_tokens_per_call = b.max_tokens_per_call.max(tokens);
                if b.first_call_ns == 0 || s.ts_start_ns < b.first_call_ns {
                    b.first_call_ns = s.ts_start_ns;
                }
                b.last_call_ns = b.last_call_ns.max(s.ts_start_ns);
            }
            self.counted.insert(c.chain_id.clone(), highest);
        }
        while self.counted_order.len() > self.max_chains {
            if let Some(id) = self.counted_order.pop_front() {
                self.counted.remove(&id);
                self.evicted_chains += 1;
            }
        }
        if self.agents.len() > self.max_agents {
            let mut by_age: Vec<(i64, String)> = self.agents.iter().map(|(k, b)| (b.last_call_ns, k.clone())).collect();
            by_age.sort();
            let excess = self.agents.len() - self.max_agents;
            for (_, k) in by_age.into_iter().take(excess) {
                self.agents.remove(&k);
                self.evicted_agents += 1;
            }
        }
    }

    /// The `baselines` table.
    pub fn batch(&self) -> Result<RecordBatch, TableError> {
        let mut agent = StringBuilder::new();
        let mut chains = Int64Builder::new();
        let mut calls = Int64Builder::new();
        let mut avg_call = Float64Builder::new();
        let mut max_call = Int64Builder::new();
        let mut avg_chain = Float64Builder::new();
        let mut rate = Float64Builder::new();
        let mut first = TimestampNanosecondBuilder::new().with_timezone(UTC);
        let mut last = TimestampNanosecondBuilder::new().with_timezone(UTC);
        let mut keys: Vec<&String> = self.agents.keys().collect();
        keys.sort();
        for k in keys {
            let Some(b) = self.agents.get(k) else { continue };
            agent.append_value(k);
            chains.append_value(b.chains);
            calls.append_value(b.llm_calls);
            avg_call.append_value(if b.llm_calls > 0 { b.tokens as f64 / b.llm_calls as f64 } else { 0.0 });
            max_call.append_value(b.max_tokens_per_call);
            avg_chain.append_value(if b.chains > 0 { b.tokens as f64 / b.chains as f64 } else { 0.0 });
            let span_min = (b.last_call_ns - b.first_call_ns) as f64 / 60e9;
            rate.append_value(if span_min > 0.0 { b.llm_calls as f64 / span_min } else { 0.0 });
            first.append_value(b.first_call_ns);
            last.append_value(b.last_call_ns);
        }
        let cols: Vec<ArrayRef> = vec![
            std::sync::Arc::new(agent.finish()),
            std::sync::Arc::new(chains.finish()),
            std::sync::Arc::new(calls.finish()),
            std::sync::Arc::new(avg_call.finish()),
            std::sync::Arc::new(max_call.finish()),
            std::sync::Arc::new(avg_chain.finish()),
            std::sync::Arc::new(rate.finish()),
            std::sync::Arc::new(first.finish()),
            std::sync::Arc::new(last.finish()),
        ];
        RecordBatch::try_new(baselines_schema(), cols).map_err(|source| TableError::Arrow { table: "baselines", source })
    }
}

/// Schema of `baselines`.
pub fn baselines_schema() -> SchemaRef {
    let ts = DataType::Timestamp(TimeUnit::Nanosecond, Some(UTC.into()));
    std::sync::Arc::new(Schema::new(vec![
        Field::new("agent_key", DataType::Utf8, false),
        Field::new("chains", DataType::Int64, false),
        Field::new("llm_calls", DataType::Int64, false),
        Field::new("avg_tokens_per_call", DataType::Float64, false),
        Field::new("max_tokens_per_call", DataType::Int64, false),
        Field::new("avg_tokens_per_chain", DataType::Float64, false),
        Field::new("llm_calls_per_minute", DataType::Float64, false),
        Field::new("first_call", ts.clone(), false),
        Field::new("last_call", ts, false),
    ]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chainwatch_schemas::samples;

    #[test]
    fn a_chain_update_counts_only_new_steps() {
        let mut b = Baselines::default();
        let mut c = samples::chain();
        b.observe(std::slice::from_ref(&c));
        let mut s = c.steps[0].clone();
        s.index = 1;
        s.input_tokens = 1000;
        s.output_tokens = 0;
        c.steps.push(s);
        b.observe(std::slice::from_ref(&c));
        b.observe(&[c]);
        let a = b.get("node-a/support-agent").unwrap();
        assert_eq!(a.chains, 1);
        assert_eq!(a.llm_calls, 2);
        assert_eq!(a.tokens, 2113 + 57 + 1000);
        assert_eq!(b.batch().unwrap().num_rows(), 1);
    }
}
