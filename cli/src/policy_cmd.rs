//! `chainwatch policy`: with `--chains FILE` (or `-` for stdin) evaluates the policy pack on the
//! JSON lines of Chain records `chainwatch chain` prints (micro-batches of
//! `policy.batch_size`, in file order) and prints the violations as JSON lines, offline: the
//! OCSF Detection Finding JSON that goes to cw.violations (`--format ocsf`, the default), or
//! chainwatch's own Violation records (`--format internal`). Without `--chains` it runs as a
//! member of the `cw-policy` consumer group on the configured bus until Ctrl-C (see
//! `chainwatch_policy_engine::worker`), posting to the webhook too when one is configured.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use chainwatch_bus::Bus;
use chainwatch_config::ChainwatchConfig;
use chainwatch_policy_engine::{PolicyEngine, to_ocsf_json};
use chainwatch_policy_engine::worker::{PolicyWorker, PolicyWorkerConfig};
use chainwatch_schemas::{Chain, JsonRecord, Violation};

use crate::worker_cmd::run_until_ctrl_c;

/// How offline violations are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ViolationFormat {
    /// The OCSF Detection Finding JSON, byte for byte what cw.violations and the webhook carry.
    Ocsf,
    /// chainwatch's Violation record (`{"record_type":"violation",...}`).
    Internal,
}

impl ViolationFormat {
    fn parse(s: &str) -> anyhow::Result<Self> {
        match s {
            "ocsf" => Ok(ViolationFormat::Ocsf),
            "internal" => Ok(ViolationFormat::Internal),
            other => anyhow::bail!("unknown --format {other:?}: use ocsf or internal"),
        }
    }

    fn line(self, v: &Violation) -> anyhow::Result<String> {
        match self {
            // Value's Display is the compact JSON serde_json::to_vec gives the bus.
            ViolationFormat::Ocsf => Ok(to_ocsf_json(v).to_string()),
            ViolationFormat::Internal => JsonRecord::Violation(v.clone()).to_line().context("encoding a violation"),
        }
    }
}

pub fn run(cfg: &ChainwatchConfig, chains: Option<&Path>, format: &str) -> anyhow::Result<ExitCode> {
    let format = ViolationFormat::parse(format)?;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the runtime")?;
    rt.block_on(async {
        let engine = PolicyEngine::new(&cfg.policy).await.context("loading the policies")?;
        for e in engine.policy_errors() {
            eprintln!("chainwatch policy: policy not loaded: {e}");
        }
        match chains {
            Some(path) => offline(cfg, engine, path, format).await,
            None => run_worker(cfg, engine).await,
        }
    })
}

async fn offline(cfg: &ChainwatchConfig, mut engine: PolicyEngine, path: &Path, format: ViolationFormat) -> anyhow::Result<ExitCode> {
    let reader: Box<dyn BufRead> = if path.as_os_str() == "-" {
        Box::new(BufReader::new(std::io::stdin()))
    } else {
        Box::new(BufReader::new(File::open(path).with_context(|| format!("opening {}", path.display()))?))
    };
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let batch_size = cfg.policy.batch_size.max(1);
    let mut batch: Vec<Chain> = Vec::with_capacity(batch_size);
    let mut violations = 0usize;
    for (i, line) in reader.lines().enumerate() {
        let n = i + 1;
        let line = line.with_context(|| format!("reading {} line {n}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        match JsonRecord::from_line(&line) {
            Ok(JsonRecord::Chain(c)) => batch.push(c),
            Ok(other) => eprintln!("{} line {n}: a {} record is not a Chain; skipped", path.display(), other.record_type()),
            Err(e) => eprintln!("{} line {n}: {e}; skipped", path.display()),
        }
        if batch.len() >= batch_size {
            violations += evaluate(&mut engine, &mut batch, &mut out, format).await?;
        }
    }
    violations += evaluate(&mut engine, &mut batch, &mut out, format).await?;
    out.flush().context("writing to stdout")?;
    let s = engine.stats();
    eprintln!(
        "chainwatch policy: {} chains, {} policies, {} violations ({} new, {} updated), {} policy errors",
        s.chains,
        engine.policies().len(),
        violations,
        s.violations_new,
        s.violations_updated,
        engine.policy_errors().len()
    );
    Ok(ExitCode::SUCCESS)
}

async fn evaluate(
    engine: &mut PolicyEngine,
    batch: &mut Vec<Chain>,
    out: &mut impl Write,
    format: ViolationFormat,
) -> anyhow::Result<usize> {
    if batch.is_empty() {
        return Ok(0);
    }
    let violations = engine.evaluate(batch).await.context("evaluating the policies")?;
    batch.clear();
    for v in &violations {
        let line = format.line(v)?;
        writeln!(out, "{line}").context("writing to stdout")?;
    }
    Ok(violations.len())
}

/// The consumer-group worker: cw.chains -> cw.violations (OCSF JSON) until Ctrl-C.
async fn run_worker(cfg: &ChainwatchConfig, engine: PolicyEngine) -> anyhow::Result<ExitCode> {
    let join = async |bus: &dyn Bus| {
        PolicyWorker::join(bus, engine, PolicyWorkerConfig::from_config(cfg))
            .await
            .context("joining the policy consumer group")
    };
    run_until_ctrl_c(cfg, "policy", join, |s| {
        format!(
            "{} records, {} chains, {} violations published, {} dead letters, {} commits{}",
            s.records,
            s.chains,
            s.violations_published,
            s.dead_letters,
            s.commits,
            if s.webhook.queued + s.webhook.dropped_queue_full > 0 {
                format!(
                    "; webhook: {} delivered, {} refused, {} given up, {} dropped (queue full)",
                    s.webhook.delivered, s.webhook.rejected, s.webhook.gave_up, s.webhook.dropped_queue_full
                )
            } else {
                String::new()
            }
        )
    })
    .await
}
