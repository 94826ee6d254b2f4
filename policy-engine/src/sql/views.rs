//! The SQL of the views that resolve upserts at read time and of `agent_daily_counts`.

use crate::storage::catalog::{self, CHAIN_VERSION_COLUMN, Versioning};

/// The column the ranking window adds (and the views drop again).
const RANK: &str = "cw_rank";

/// (view name, SELECT) pairs, in dependency order (`chains` before its child tables).
pub fn view_definitions() -> Vec<(String, String)> {
    let mut views = Vec::new();
    for table in catalog::ALL {
        let sql = match table.versioning {
            Versioning::Own { key } => format!(
                "SELECT * EXCLUDE ({RANK}) FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY {key} ORDER BY version DESC) AS {RANK} FROM {src}) WHERE {RANK} = 1",
                key = key.join(", "),
                src = table.versions_name,
            ),
            Versioning::ChainChild { key } => format!(
                "SELECT * EXCLUDE ({RANK}, {CHAIN_VERSION_COLUMN}) FROM (\
                 SELECT t.*, ROW_NUMBER() OVER (PARTITION BY {key} ORDER BY t.{CHAIN_VERSION_COLUMN} DESC) AS {RANK} \
                 FROM {src} t JOIN (SELECT chain_id AS latest_chain_id, version AS latest_version FROM {chains}) l \
                 ON t.chain_id = l.latest_chain_id AND t.{CHAIN_VERSION_COLUMN} = l.latest_version) WHERE {RANK} = 1",
                key = key.iter().map(|k| format!("t.{k}")).collect::<Vec<_>>().join(", "),
                src = table.versions_name,
                chains = catalog::CHAINS.name,
            ),
        };
        views.push((table.name.to_string(), sql));
    }
    views.push((
        "agent_daily_counts".to_string(),
        format!(
            "SELECT day, agent_key, COUNT(*) AS chains, SUM(steps) AS steps, SUM(llm_calls) AS llm_calls, \
             SUM(input_tokens) AS input_tokens, SUM(output_tokens) AS output_tokens, SUM(cost_usd) AS cost_usd, \
             SUM(bytes_out) AS bytes_out, SUM(bytes_in) AS bytes_in FROM {} GROUP BY day, agent_key",
            catalog::CHAIN_COUNTS.name
        ),
    ));
    views
}
