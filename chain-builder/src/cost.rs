//! Token cost: a price table per model (USD per million tokens, from `[chain.prices]`), applied
//! per step, summed per chain, and accumulated per agent and per team.

use std::collections::{BTreeMap, HashMap};

use chainwatch_config::ModelPrice;
use serde::{Deserialize, Serialize};

/// Prices per model. A model matches its exact name, else the longest configured name it starts
/// with ("gpt-4o" prices "gpt-4o-2024-08-06"); an unknown model costs 0.
#[derive(Debug, Clone, Default)]
pub struct PriceTable {
    exact: HashMap<String, ModelPrice>,
    /// Longest first, for prefix matches.
    by_prefix: Vec<(String, ModelPrice)>,
}

impl PriceTable {
    pub fn new(prices: &BTreeMap<String, ModelPrice>) -> Self {
        let exact: HashMap<String, ModelPrice> = prices.iter().map(|(k, v)| (k.to_ascii_lowercase(), v.clone())).collect();
        let mut by_prefix: Vec<(String, ModelPrice)> = exact.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        by_prefix.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
        PriceTable { exact, by_prefix }
    }

    pub fn price(&self, model: &str) -> Option<&ModelPrice> {
        if self.exact.is_empty() {
            return None;
        }
        let m = model.to_ascii_lowercase();
        // Provider-qualified names ("openai/gpt-4o") are priced by their last part too.
        let short = m.rsplit('/').next().unwrap_or(&m).to_string();
        self.exact
            .get(&m)
            .or_else(|| self.exact.get(&short))
            .or_else(|| self.by_prefix.iter().find(|(k, _)| m.starts_with(k.as_str()) || short.starts_with(k.as_str())).map(|(_, v)| v))
    }

    /// USD for `input` and `output` tokens of `model`.
    pub fn cost(&self, model: &str, input: i64, output: i64) -> f64 {
        self.price(model)
            .map_or(0.0, |p| (input.max(0) as f64 * p.input + output.max(0) as f64 * p.output) / 1_000_000.0)
    }
}

/// Cost and tokens accumulated per agent key and per team, over every chain seen.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CostLedger {
    pub by_agent: BTreeMap<String, CostTotals>,
    pub by_team: BTreeMap<String, CostTotals>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct CostTotals {
    pub cost_usd: f64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub llm_calls: u64,
}

impl CostLedger {
    /// Add one LLM step of `agent_key` (team when known).
    pub fn add(&mut self, agent_key: &str, team: Option<&str>, cost_usd: f64, input: i64, output: i64) {
        let bump = |t: &mut CostTotals| {
            t.cost_usd += cost_usd;
            t.input_tokens += input;
            t.output_tokens += output;
            t.llm_calls += 1;
        };
        if let Some(t) = self.by_agent.get_mut(agent_key) {
            bump(t);
        } else {
            bump(self.by_agent.entry(agent_key.to_string()).or_default());
        }
        if let Some(team) = team {
            if let Some(t) = self.by_team.get_mut(team) {
                bump(t);
            } else {
                bump(self.by_team.entry(team.to_string()).or_default());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_then_longest_prefix_then_zero() {
        let mut p = BTreeMap::new();
        p.insert("gpt-4o".to_string(), ModelPrice { input: 2.5, output: 10.0 });
        p.insert("gpt-4o-mini".to_string(), ModelPrice { input: 0.15, output: 0.6 });
        let t = PriceTable::new(&p);
        assert!((t.cost("gpt-4o", 1_000_000, 0) - 2.5).abs() < 1e-9);
        assert!((t.cost("gpt-4o-2024-08-06", 0, 1_000_000) - 10.0).abs() < 1e-9);
        assert!((t.cost("gpt-4o-mini-2024-07-18", 1_000_000, 1_000_000) - 0.75).abs() < 1e-9);
        assert!((t.cost("openai/gpt-4o", 2_000_000, 0) - 5.0).abs() < 1e-9);
        assert_eq!(t.cost("claude-3", 1000, 1000), 0.0);
    }
}
