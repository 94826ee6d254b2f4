//! `chainwatch run [-- CMD ARGS...]` and `chainwatch demo`: the embedded pipeline on live
//! capture (scoped to CMD and its descendants, or the whole host until Ctrl-C) or on the
//! recorded seed scenario, printing chains and violations and leaving them in the data
//! directory for `chainwatch sql`. With `[metrics]` set every stage's metric set is exported
//! and each chain goes out as an OTLP trace; `run` shows a live status line on a terminal.

use std::io::{Read, Write};
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use chainwatch_config::ChainwatchConfig;
use chainwatch_probe::ebpf::Probe;
use chainwatch_probe::records::RecordMapper;
use chainwatch_probe::selectors::Selector;
use chainwatch_schemas::JsonRecord;
use chainwatch_telemetry::{Telemetry, TraceExportMetrics};

use crate::pipeline::{EmbeddedPipeline, PipelineOutput};
use crate::probe_cmd::shutdown_metrics;
use crate::stage_feed::ProbeFeed;
use crate::report;

/// The seed scenario as the project's own probe recorded it (tests/scenario/README.md).
const SEED_EXFILTRATION: &[u8] = include_bytes!("../../tests/scenario/fixtures/seed-exfiltration.jsonl.gz");
/// Its benign twin: the same work without the upload.
const SEED_BENIGN: &[u8] = include_bytes!("../../tests/scenario/fixtures/seed-benign.jsonl.gz");

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    Timeline,
    Json,
}

impl OutputFormat {
    pub fn parse(s: &str) -> anyhow::Result<Self> {
        match s {
            "timeline" => Ok(OutputFormat::Timeline),
            "json" => Ok(OutputFormat::Json),
            other => anyhow::bail!("unknown --format {other:?}: use timeline or json"),
        }
    }
}

/// `chainwatch demo`: the recorded seed scenario through the embedded pipeline; a timeline on
/// stdout and an HTML report drawing the chain.
pub fn demo(cfg: &ChainwatchConfig, benign: bool, format: &str, report_path: &Path) -> anyhow::Result<ExitCode> {
    let format = OutputFormat::parse(format)?;
    let started = Instant::now();
    let (name, fixture) = if benign { ("seed-benign", SEED_BENIGN) } else { ("seed-exfiltration", SEED_EXFILTRATION) };
    let mut text = String::new();
    flate2::read::GzDecoder::new(fixture).read_to_string(&mut text).context("decompressing the recorded scenario")?;
    crate::probe_cmd::runtime()?.block_on(async {
        let telemetry = Telemetry::from_config(&cfg.metrics, "chainwatch").context("config section [metrics]")?;
        let mut pipeline = EmbeddedPipeline::new(cfg, true).await?;
        if let Some(t) = &telemetry {
            pipeline = pipeline.with_metrics(t);
        }
        for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let record = JsonRecord::from_line(line).with_context(|| format!("recorded scenario {name} line {}", i + 1))?;
            pipeline.push(&record).await?;
        }
        let output = pipeline.finish().await?;
        print_output(&output, format)?;
        export_traces(cfg, &output, telemetry.as_ref())?;
        shutdown_metrics(telemetry, "demo").await;
        demo_report(cfg, name, &output, report_path, started)
    })
}

/// The demo's HTML report and summary line.
fn demo_report(
    cfg: &ChainwatchConfig,
    name: &str,
    output: &PipelineOutput,
    report_path: &Path,
    started: Instant,
) -> anyhow::Result<ExitCode> {
    let title = format!("chainwatch demo: the {name} scenario");
    std::fs::write(report_path, report::html::render(&title, &output.chains, &output.violations))
        .with_context(|| format!("writing the report {}", report_path.display()))?;
    eprintln!(
        "chainwatch demo: {} records -> {} events -> {} chains, {} violations in {:.1} s; report {}; data in {} (try `chainwatch sql \"SELECT * FROM violations\"`)",
        output.counts.records,
        output.counts.events,
        output.chains.len(),
        output.violations.len(),
        started.elapsed().as_secs_f64(),
        report_path.display(),
        cfg.storage.data_dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// `chainwatch run [-- CMD]`: live capture through the embedded pipeline.
pub fn run(cfg: &ChainwatchConfig, format: &str, cmd: &[String]) -> anyhow::Result<ExitCode> {
    let format = OutputFormat::parse(format)?;
    let mut config = crate::probe_cmd::probe_config(cfg)?;
    let node = config.node.clone();
    crate::probe_cmd::runtime()?.block_on(async move {
        let telemetry = Telemetry::from_config(&cfg.metrics, "chainwatch").context("config section [metrics]")?;
        let mut pipeline = EmbeddedPipeline::new(cfg, true).await?;
        if let Some(t) = &telemetry {
            pipeline = pipeline.with_metrics(t);
        }
        let mut feed = ProbeFeed::start(telemetry.as_ref())?;
        let mut mapper = RecordMapper::new(node);
        let status = if cmd.is_empty() {
            if config.selectors.is_empty() {
                config.selectors.push(Selector::All);
            }
            let mut probe = Probe::start(config).context("starting the probe (needs root, or CAP_BPF + CAP_PERFMON)")?;
            let mut events = probe.events().context("the probe's event stream was already taken")?;
            let stop = tokio::signal::ctrl_c();
            tokio::pin!(stop);
            feed.println("chainwatch run: watching the host; Ctrl-C stops and prints the chains");
            let mut tick = tokio::time::interval(crate::stage_feed::PUBLISH_EVERY);
            loop {
                let event = tokio::select! {
                    e = events.recv() => match e { Some(e) => e, None => break },
                    _ = tick.tick() => {
                        let loss = probe.loss_counters().ok();
                        feed.publish(loss.as_ref(), mapper.stats(), Some(pipeline.status_sample()));
                        continue;
                    }
                    _ = &mut stop => break,
                };
                let record = mapper.map(&event);
                feed.on_record(&record);
                pipeline.push(&record).await?;
            }
            None
        } else {
            let mut capture = chainwatch_probe::capture::run_capture_with(cmd, config)
                .context("starting the probe (run needs root, or CAP_BPF + CAP_PERFMON)")?;
            while let Some(event) = capture.next_event().await {
                let record = mapper.map(&event);
                feed.on_record(&record);
                pipeline.push(&record).await?;
                if feed.due() {
                    let loss = capture.probe().loss_counters().ok();
                    feed.publish(loss.as_ref(), mapper.stats(), Some(pipeline.status_sample()));
                }
            }
            capture.exit_status()
        };
        drop(feed);
        let output = pipeline.finish().await?;
        print_output(&output, format)?;
        export_traces(cfg, &output, telemetry.as_ref())?;
        shutdown_metrics(telemetry, "run").await;
        eprintln!(
            "chainwatch run: {} records -> {} events -> {} chains, {} violations; data in {}",
            output.counts.records,
            output.counts.events,
            output.chains.len(),
            output.violations.len(),
            cfg.storage.data_dir.display()
        );
        Ok(match status {
            Some(0) | None => ExitCode::SUCCESS,
            Some(code) => ExitCode::from(u8::try_from(code.clamp(1, 255)).unwrap_or(1)),
        })
    })
}

/// Each chain as one OTLP trace (GenAI conventions) when `metrics.otlp_endpoint` is set, with
/// the LLM details of its chat spans; the exporter's counters join `telemetry`'s metrics.
fn export_traces(cfg: &ChainwatchConfig, output: &PipelineOutput, telemetry: Option<&Telemetry>) -> anyhow::Result<()> {
    let Some(exporter) = chainwatch_telemetry::ChainTraceExporter::from_config(&cfg.metrics, "chainwatch")
        .context("config key `metrics.otlp_endpoint`")?
    else {
        return Ok(());
    };
    let _metrics = telemetry
        .map(|t| TraceExportMetrics::register(&t.meter("chainwatch.traces"), "", exporter.stats_source()));
    for chain in &output.chains {
        let violations: Vec<_> = output.violations.iter().filter(|v| v.chain_id == chain.chain_id).cloned().collect();
        exporter.submit_with(chain, &violations, &output.llm);
    }
    let stats = exporter.flush(std::time::Duration::from_secs(10)).context("exporting chain traces over OTLP")?;
    eprintln!("chainwatch: chain traces exported to {}: {stats:?}", exporter.url());
    Ok(())
}

/// Chains and violations on stdout: the timeline, or JSON lines (chains, then violations).
pub fn print_output(output: &PipelineOutput, format: OutputFormat) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match format {
        OutputFormat::Timeline => out.write_all(report::timeline::render(&output.chains, &output.violations).as_bytes())?,
        OutputFormat::Json => {
            for c in &output.chains {
                writeln!(out, "{}", JsonRecord::Chain(c.clone()).to_line()?)?;
            }
            for v in &output.violations {
                writeln!(out, "{}", JsonRecord::Violation(v.clone()).to_line()?)?;
            }
        }
    }
    out.flush().context("writing to stdout")
}
