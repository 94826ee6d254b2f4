//! `chainwatch chain`: semantic and process events to chains. `--events FILE` (`-` = stdin)
//! reads the JSON lines `chainwatch parse` and `chainwatch capture` print and prints the final
//! version of every chain as a `Chain` JSON line, offline. Without `--events`, it runs as a
//! member of the chain-builder consumer group on the configured bus until Ctrl-C (see
//! `chainwatch_chain_builder::worker` for the delivery contract).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use chainwatch_bus::Bus;
use chainwatch_chain_builder::{ChainBuilder, ChainWorker, ChainWorkerConfig};
use chainwatch_config::ChainwatchConfig;
use chainwatch_schemas::{Chain, JsonRecord};

use crate::worker_cmd::run_until_ctrl_c;

/// Advance the watermark (and so close idle chains) every this many input lines.
const ADVANCE_EVERY: usize = 1_024;

pub fn run(cfg: &ChainwatchConfig, events: Option<&Path>) -> anyhow::Result<ExitCode> {
    let Some(path) = events else { return run_worker(cfg) };
    let reader: Box<dyn BufRead> = if path.as_os_str() == "-" {
        Box::new(BufReader::new(std::io::stdin()))
    } else {
        Box::new(BufReader::new(File::open(path).with_context(|| format!("opening {}", path.display()))?))
    };
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let summary = build_chains(cfg, reader, &path.display().to_string(), &mut out)?;
    out.flush().context("writing to stdout")?;
    eprintln!(
        "chainwatch chain: {} semantic events, {} process events, {} other records skipped, {} malformed lines; {} chains ({} duplicates, {} late dropped, {} evicted early, {} stitched requests)",
        summary.semantic,
        summary.process,
        summary.skipped,
        summary.malformed,
        summary.chains,
        summary.duplicates,
        summary.late_dropped,
        summary.evicted,
        summary.stitched
    );
    Ok(if summary.malformed > 0 { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

#[derive(Debug, Default, PartialEq, Eq)]
struct Summary {
    semantic: u64,
    process: u64,
    skipped: u64,
    malformed: u64,
    chains: usize,
    duplicates: u64,
    late_dropped: u64,
    evicted: u64,
    stitched: u64,
}

/// Read every line, then print each chain's last version (ordered by start, then id). A
/// malformed line is reported with its number and skipped; the rest goes on.
fn build_chains(cfg: &ChainwatchConfig, reader: impl BufRead, name: &str, out: &mut impl Write) -> anyhow::Result<Summary> {
    let mut builder = ChainBuilder::new(&cfg.chain);
    let mut finals: BTreeMap<String, Chain> = BTreeMap::new();
    let mut s = Summary::default();
    for (i, line) in reader.lines().enumerate() {
        let n = i + 1;
        let line = line.with_context(|| format!("reading {name} line {n}"))?;
        if line.trim().is_empty() {
            continue;
        }
        match JsonRecord::from_line(&line) {
            Ok(JsonRecord::SemanticEvent(e)) => {
                s.semantic += 1;
                builder.ingest_event(e);
            }
            Ok(JsonRecord::ProcessEvent(p)) => {
                s.process += 1;
                builder.push_process(&p);
            }
            Ok(_) => s.skipped += 1,
            Err(e) => {
                s.malformed += 1;
                eprintln!("chainwatch chain: {name} line {n}: {e}");
            }
        }
        if n % ADVANCE_EVERY == 0 {
            let mut chains = builder.take_updates();
            chains.extend(builder.advance_watermark(i64::MIN));
            keep(chains, &mut finals);
        }
    }
    let mut chains = builder.take_updates();
    chains.extend(builder.finish());
    keep(chains, &mut finals);
    if s.skipped > 0 {
        eprintln!("chainwatch chain: {} records that are neither SemanticEvent nor ProcessEvent were skipped", s.skipped);
    }
    let mut ordered: Vec<Chain> = finals.into_values().filter(|c| !c.steps.is_empty()).collect();
    ordered.sort_by(|a, b| (a.start_ns, &a.chain_id).cmp(&(b.start_ns, &b.chain_id)));
    for c in &ordered {
        let line = JsonRecord::Chain(c.clone()).to_line().context("encoding a chain")?;
        writeln!(out, "{line}").context("writing to stdout")?;
    }
    let st = builder.stats();
    s.chains = ordered.len();
    s.duplicates = st.duplicate_events;
    s.late_dropped = st.late_dropped;
    s.evicted = st.evicted_open_chains;
    s.stitched = st.stitched_requests;
    Ok(s)
}

/// Keep the highest version of each chain.
fn keep(chains: Vec<Chain>, finals: &mut BTreeMap<String, Chain>) {
    for c in chains {
        if finals.get(&c.chain_id).is_none_or(|old| old.version < c.version) {
            finals.insert(c.chain_id.clone(), c);
        }
    }
}

/// The consumer-group worker: cw.semantic.events + cw.proc.events -> cw.chains until Ctrl-C.
fn run_worker(cfg: &ChainwatchConfig) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the runtime")?;
    let mut worker_cfg = ChainWorkerConfig::from_config(cfg);
    if cfg.bus.kind == chainwatch_config::BusKind::Memory {
        // The in-memory bus starts empty at every start: a checkpoint's offsets would skip
        // records of the new bus.
        worker_cfg.checkpoint_dir = None;
    }
    let join = async |bus: &dyn Bus| {
        // The stitch topic is the chain builders' own: with `kafka.create_topics` a member does
        // not wait for the probe to create it (cross-member stitching is off without it).
        if cfg.kafka.create_topics {
            chainwatch_bus::create_all_topics(bus, cfg).await.context("creating topics")?;
        }
        ChainWorker::join(bus, ChainBuilder::new(&cfg.chain), worker_cfg.clone())
            .await
            .context("joining the chain-builder consumer group")
    };
    rt.block_on(run_until_ctrl_c(cfg, "chain", join, |s| {
        format!(
            "{} records ({} semantic, {} process), {} chains published, {} dead letters, {} commits, {} checkpoints",
            s.records, s.semantic_events, s.process_events, s.chains_published, s.dead_letters, s.commits,
            s.checkpoints_written
        )
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chainwatch_schemas::{ProcessEventKind, samples};

    #[test]
    fn lines_become_chains_and_a_bad_line_is_reported_without_stopping() {
        let mut agent = samples::process_event();
        agent.kind = ProcessEventKind::Seed;
        agent.tgid = 4242;
        agent.process_start_ns = 1_699_999_999_000_000_000;
        let mut child = samples::process_event();
        child.kind = ProcessEventKind::Fork;
        child.tgid = 4300;
        child.process_start_ns = 1_700_000_001_500_000_000;
        child.ppid = 4242;
        child.parent_start_ns = agent.process_start_ns;
        let llm = samples::semantic_event(); // by 4242
        let mut upload = samples::semantic_event();
        upload.event_id = "ev-2".into();
        upload.tgid = 4300;
        upload.process_start_ns = child.process_start_ns;
        upload.kind = "upload".into();
        upload.llm = None;
        upload.ts_start_ns += 2_000_000_000;
        upload.ts_end_ns += 2_000_000_000;
        let lines = [
            JsonRecord::ProcessEvent(agent).to_line().unwrap(),
            JsonRecord::ProcessEvent(child).to_line().unwrap(),
            "{broken".to_string(),
            JsonRecord::SemanticEvent(llm).to_line().unwrap(),
            JsonRecord::Violation(samples::violation()).to_line().unwrap(),
            String::new(),
            JsonRecord::SemanticEvent(upload).to_line().unwrap(),
        ]
        .join("\n");
        let mut out = Vec::new();
        let s = build_chains(&ChainwatchConfig::default(), lines.as_bytes(), "test", &mut out).unwrap();
        assert_eq!((s.semantic, s.process, s.skipped, s.malformed, s.chains), (2, 2, 1, 1, 1));
        let text = String::from_utf8(out).unwrap();
        let chains: Vec<Chain> = text
            .lines()
            .map(|l| match JsonRecord::from_line(l).unwrap() {
                JsonRecord::Chain(c) => c,
                other => panic!("not a chain: {other:?}"),
            })
            .collect();
        assert_eq!(chains.len(), 1);
        assert_eq!(chains[0].steps.len(), 2, "the child's upload joins the agent's chain");
        assert_eq!(chains[0].status, chainwatch_schemas::ChainStatus::Closed);
    }
}
