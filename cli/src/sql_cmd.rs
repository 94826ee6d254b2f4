//! `chainwatch sql`: ad hoc SQL over the chain tables stored in the data directory (printed as
//! a table, JSON lines or CSV), or with `--serve` the HTTP endpoint for dashboards.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use chainwatch_config::ChainwatchConfig;
use chainwatch_policy_engine::reference::ReferenceData;
use chainwatch_policy_engine::sql::{OutputFormat, SqlEndpoint, SqlSession, bind, reference_tables, serve, write_batches};

/// Runs `query` and prints the answer in `format`.
pub fn query(cfg: &ChainwatchConfig, query: &str, format: &str) -> anyhow::Result<ExitCode> {
    let format: OutputFormat = format.parse()?;
    let data_dir = &cfg.storage.data_dir;
    if !data_dir.is_dir() {
        eprintln!("chainwatch sql: nothing stored yet in {} (storage.data_dir); the tables are empty", data_dir.display());
    }
    let rt = runtime()?;
    let result = rt.block_on(async {
        let session = SqlSession::open(data_dir).await.with_context(|| format!("opening the tables in {}", data_dir.display()))?;
        session.register_reference(&load_reference(cfg)?)?;
        // The DataFusion message alone: its error chain repeats the same text.
        session.query_limited(query, usize::MAX).await.map_err(|e| anyhow::anyhow!("the query failed: {e}"))
    })?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    write_batches(format, &result.batches_or_empty(), &mut out).context("printing the result")?;
    out.flush().context("printing the result")?;
    Ok(ExitCode::SUCCESS)
}

/// Serves `POST /sql` on `listen` (or sql.http_listen) until Ctrl-C.
pub fn serve_http(cfg: &ChainwatchConfig, listen: Option<&str>) -> anyhow::Result<ExitCode> {
    let addr = listen
        .map(str::to_string)
        .or_else(|| cfg.sql.http_listen.clone())
        .filter(|a| !a.trim().is_empty())
        .ok_or(chainwatch_policy_engine::sql::SqlError::NoListenAddress)?;
    let mut endpoint = SqlEndpoint::new(cfg.storage.data_dir.clone(), cfg.sql.bearer_token.clone())?;
    endpoint.extra_tables = reference_tables(&load_reference(cfg)?)?;
    let rt = runtime()?;
    rt.block_on(async {
        let listener = bind(&addr).await?;
        let local = listener.local_addr().map(|a| a.to_string()).unwrap_or(addr.clone());
        eprintln!("chainwatch sql: serving POST http://{local}/sql over {}", cfg.storage.data_dir.display());
        let shutdown = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        serve(listener, endpoint, shutdown).await?;
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// The reference tables from policy.reference_dir (empty when it is not set).
fn load_reference(cfg: &ChainwatchConfig) -> anyhow::Result<ReferenceData> {
    match &cfg.policy.reference_dir {
        Some(dir) => ReferenceData::load(dir).with_context(|| format!("loading the reference tables in {}", dir.display())),
        None => Ok(ReferenceData::default()),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the runtime")
}
