//! Storage sampling: which chains are stored in full. Chains that touch PII, call tools, reach
//! external destinations, show a first-time pattern (a destination or tool this agent was never
//! seen using) or carry a violation are always kept; routine chains are kept at the configured
//! rate, decided by a stable hash of the chain id so that every version of a chain gets the same
//! answer. Aggregate counts are written for every chain elsewhere, so they stay exact.

use std::collections::{HashMap, HashSet, VecDeque};

use chainwatch_schemas::Chain;

/// Destination categories that leave the organisation's own systems (LLM providers and vector
/// databases are every agent's routine, so they do not make a chain interesting by themselves).
pub const EXTERNAL_CATEGORIES: [&str; 3] = ["unknown-external", "saas", "object-storage"];

/// Agents whose first-time patterns are remembered; the least recently seen is evicted beyond.
pub const MAX_TRACKED_AGENTS: usize = 10_000;
/// Destinations and tools remembered per agent; the oldest is evicted beyond.
pub const MAX_PATTERNS_PER_AGENT: usize = 1_024;
/// Chain ids remembered as kept in full, so their later versions are kept too.
pub const MAX_KEPT_CHAINS: usize = 200_000;

/// Why a chain is stored in full (the first reason that applies).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeepReason {
    Pii,
    ToolCalls,
    ExternalDestination,
    FirstTimePattern,
    Violation,
    /// An earlier version of the chain was kept in full.
    KeptBefore,
    /// A routine chain that the hash sampled in.
    Sampled,
}

/// The sampler's counters (exported as metrics by the caller).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SamplingCounters {
    pub chains_seen: u64,
    pub chains_kept: u64,
    pub routine_dropped: u64,
    /// Agents evicted from the first-time-pattern memory (their next chain looks first-time).
    pub agents_evicted: u64,
    /// Patterns evicted from an agent's memory.
    pub patterns_evicted: u64,
    /// Kept chain ids forgotten (a later routine version may then be sampled out).
    pub kept_chains_evicted: u64,
}

/// Per-agent memory of the destinations and tools seen, bounded.
#[derive(Debug, Default)]
struct AgentPatterns {
    seen: HashSet<String>,
    order: VecDeque<String>,
    last_used: u64,
}

/// Decides, chain by chain, whether a chain is stored in full.
#[derive(Debug)]
pub struct StorageSampler {
    /// Kept when `hash(chain_id) % SCALE < threshold`.
    threshold: u64,
    agents: HashMap<String, AgentPatterns>,
    kept: HashSet<String>,
    kept_order: VecDeque<String>,
    clock: u64,
    counters: SamplingCounters,
}

const SCALE: u64 = 1_000_000;

impl StorageSampler {
    /// `routine_sample_rate` in (0, 1]; values outside are clamped.
    pub fn new(routine_sample_rate: f64) -> Self {
        let rate = if routine_sample_rate.is_finite() { routine_sample_rate.clamp(0.0, 1.0) } else { 0.0 };
        StorageSampler {
            threshold: (rate * SCALE as f64).round() as u64,
            agents: HashMap::new(),
            kept: HashSet::new(),
            kept_order: VecDeque::new(),
            clock: 0,
            counters: SamplingCounters::default(),
        }
    }

    pub fn counters(&self) -> &SamplingCounters {
        &self.counters
    }

    /// Whether to store `chain` in full; `has_violation` says whether a violation names it.
    /// Returns the reason it is kept, or None for a routine chain sampled out. Updates the
    /// first-time-pattern memory with what the chain shows.
    pub fn decide(&mut self, chain: &Chain, has_violation: bool) -> Option<KeepReason> {
        self.counters.chains_seen += 1;
        let first_time = self.observe_patterns(chain);
        let reason = if touches_pii(chain) {
            Some(KeepReason::Pii)
        } else if calls_tools(chain) {
            Some(KeepReason::ToolCalls)
        } else if reaches_external(chain) {
            Some(KeepReason::ExternalDestination)
        } else if first_time {
            Some(KeepReason::FirstTimePattern)
        } else if has_violation {
            Some(KeepReason::Violation)
        } else if self.kept.contains(&chain.chain_id) {
            Some(KeepReason::KeptBefore)
        } else if routine_sampled(&chain.chain_id, self.threshold) {
            Some(KeepReason::Sampled)
        } else {
            None
        };
        match reason {
            Some(_) => {
                self.counters.chains_kept += 1;
                self.remember_kept(&chain.chain_id);
            }
            None => self.counters.routine_dropped += 1,
        }
        reason
    }

    fn remember_kept(&mut self, chain_id: &str) {
        if self.kept.contains(chain_id) {
            return;
        }
        if self.kept.len() >= MAX_KEPT_CHAINS
            && let Some(old) = self.kept_order.pop_front()
        {
            self.kept.remove(&old);
            self.counters.kept_chains_evicted += 1;
        }
        self.kept.insert(chain_id.to_string());
        self.kept_order.push_back(chain_id.to_string());
    }

    /// Records the chain's destinations and tools for its agent; true when one was new.
    fn observe_patterns(&mut self, chain: &Chain) -> bool {
        self.clock += 1;
        let agent_key = &chain.agent.agent_key;
        if !self.agents.contains_key(agent_key) && self.agents.len() >= MAX_TRACKED_AGENTS {
            self.evict_least_recent_agent();
        }
        let clock = self.clock;
        let agent = self.agents.entry(agent_key.clone()).or_default();
        agent.last_used = clock;
        let patterns = chain
            .destinations
            .iter()
            .map(|d| format!("dest:{d}"))
            .chain(chain.steps.iter().filter_map(|s| s.destination.as_ref()).map(|d| format!("dest:{d}")))
            .chain(chain.tools.iter().map(|t| format!("tool:{t}")))
            .chain(chain.tool_calls.iter().map(|t| format!("tool:{}", t.tool_name)));
        let mut new_pattern = false;
        for p in patterns {
            if agent.seen.contains(&p) {
                continue;
            }
            new_pattern = true;
            if agent.seen.len() >= MAX_PATTERNS_PER_AGENT
                && let Some(old) = agent.order.pop_front()
            {
                agent.seen.remove(&old);
                self.counters.patterns_evicted += 1;
            }
            agent.seen.insert(p.clone());
            agent.order.push_back(p);
        }
        new_pattern
    }

    fn evict_least_recent_agent(&mut self) {
        let oldest = self.agents.iter().min_by_key(|(_, a)| a.last_used).map(|(k, _)| k.clone());
        if let Some(k) = oldest {
            self.agents.remove(&k);
            self.counters.agents_evicted += 1;
        }
    }
}

/// The chain carried PII (a flow, a type on the chain or on a step).
pub fn touches_pii(chain: &Chain) -> bool {
    !chain.pii_types.is_empty() || !chain.pii_flows.is_empty() || chain.steps.iter().any(|s| !s.pii_types.is_empty())
}

/// The chain executed or requested a tool.
pub fn calls_tools(chain: &Chain) -> bool {
    !chain.tool_calls.is_empty() || !chain.tools.is_empty() || chain.steps.iter().any(|s| s.tool_name.is_some())
}

/// A step went to a destination outside the organisation's own systems.
pub fn reaches_external(chain: &Chain) -> bool {
    chain.steps.iter().any(|s| EXTERNAL_CATEGORIES.contains(&s.category.as_str()))
}

/// Whether a routine chain is sampled in at `threshold` parts per million; stable across runs,
/// platforms and Rust versions (FNV-1a 64 of the chain id).
fn routine_sampled(chain_id: &str, threshold: u64) -> bool {
    fnv1a64(chain_id.as_bytes()) % SCALE < threshold
}

fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_matches_the_reference_vectors() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn rate_one_keeps_everything_and_tiny_rate_keeps_about_that_share() {
        let ids: Vec<String> = (0..20_000).map(|i| format!("chain-{i}")).collect();
        assert!(ids.iter().all(|id| routine_sampled(id, SCALE)));
        let kept = ids.iter().filter(|id| routine_sampled(id, 10_000)).count();
        // 1% of 20,000 = 200; FNV spreads well enough to stay within a wide band.
        assert!((100..=320).contains(&kept), "kept {kept}");
    }
}
