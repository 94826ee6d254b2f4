//! `chainwatch parse`: raw segments to semantic events through the connection FSMs. `--pcap`
//! replays a capture offline, `--input` reads the JSON lines `chainwatch capture` prints
//! (`-` = stdin; process events pass through), and both print SemanticEvent JSON lines. With
//! neither, it runs as a member of the parser consumer group on the configured bus until
//! Ctrl-C (see `chainwatch_parser_workers::worker` for the delivery contract).

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use chainwatch_bus::Bus;
use chainwatch_config::ChainwatchConfig;
use chainwatch_parser_workers::connection::{ConnectionTable, ParsedExchange};
use chainwatch_parser_workers::events::{ExchangeHook, to_event_with};
use chainwatch_parser_workers::semantics::SemanticsHook;
use chainwatch_parser_workers::worker::{ParserWorker, WorkerConfig};
use chainwatch_probe::pcap::records::{PCAP_NODE, PcapRecord, PcapRecordMapper};
use chainwatch_probe::pcap::{PcapConfig, PcapReader};
use chainwatch_schemas::JsonRecord;
use chainwatch_telemetry::Meter;

use crate::stage_feed::{CountingHook, FsmErrors};
use crate::worker_cmd::{parser_metrics, run_until_ctrl_c_with};


pub fn run(cfg: &ChainwatchConfig, pcap: Option<&Path>, input: Option<&Path>) -> anyhow::Result<ExitCode> {
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let mut table = ConnectionTable::new(&cfg.parser);
    let mut hook = SemanticsHook::new(&cfg.parser);
    match (pcap, input) {
        (Some(path), _) => parse_pcap(path, &mut table, &mut hook, &mut out)?,
        (None, Some(path)) => parse_lines(path, &mut table, &mut hook, &mut out)?,
        (None, None) => return run_worker(cfg),
    }
    let rest = table.finish();
    write_events(&rest, &mut hook, &mut out)?;
    out.flush().context("writing to stdout")?;
    let s = table.stats();
    eprintln!(
        "chainwatch parse: {} connections, {} events, {} undetected, {} evicted (lru {}, idle {}), {} gaps ({} bytes)",
        s.connections_opened,
        s.exchanges,
        s.undetected,
        s.evicted_lru + s.evicted_idle,
        s.evicted_lru,
        s.evicted_idle,
        s.gaps,
        s.gap_bytes
    );
    Ok(ExitCode::SUCCESS)
}

/// The consumer-group worker: cw.raw.segments -> cw.semantic.events until Ctrl-C.
fn run_worker(cfg: &ChainwatchConfig) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let fsm_errors = FsmErrors::default();
    let hook = CountingHook { inner: SemanticsHook::new(&cfg.parser), errors: fsm_errors.clone() };
    let join = async |bus: &dyn Bus| {
        Ok(ParserWorker::join(bus, &cfg.parser, WorkerConfig::from_config(cfg))
            .await
            .context("joining the parser consumer group")?
            .with_hook(Box::new(hook)))
    };
    let metrics = move |meter: &Meter| parser_metrics(meter, fsm_errors);
    rt.block_on(run_until_ctrl_c_with(cfg, "parse", join, metrics, |s| {
        format!(
            "{} records, {} events, {} dead letters, {} commits",
            s.records, s.events_published, s.dead_letters, s.commits
        )
    }))
}

fn write_events(exchanges: &[ParsedExchange], hook: &mut dyn ExchangeHook, out: &mut impl Write) -> anyhow::Result<()> {
    for ex in exchanges {
        let line = JsonRecord::SemanticEvent(to_event_with(ex, hook))
            .to_line()
            .context("encoding a semantic event")?;
        writeln!(out, "{line}").context("writing to stdout")?;
    }
    Ok(())
}

fn parse_pcap(path: &Path, table: &mut ConnectionTable, hook: &mut dyn ExchangeHook, out: &mut impl Write) -> anyhow::Result<()> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    // A progress bar over the file's bytes on a terminal; hidden (prints nothing) when piped.
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let bar = chainwatch_telemetry::progress::bytes_progress(size, "parsing capture");
    let mut reader = PcapReader::new(bar.wrap_read(file), &path.display().to_string(), PcapConfig::default())
        .with_context(|| format!("reading {}", path.display()))?;
    let mut mapper = PcapRecordMapper::new(PCAP_NODE);
    let (mut events, mut shown) = (0u64, 0u64);
    for event in reader.by_ref() {
        let event = event.with_context(|| format!("reading {}", path.display()))?;
        for record in mapper.map(&event) {
            let exchanges = match &record {
                PcapRecord::Segment(s) => table.on_segment(s),
                PcapRecord::Connection(c) => table.on_connection_event(c),
            };
            events += exchanges.len() as u64;
            write_events(&exchanges, hook, out)?;
        }
        if events >= shown + 256 {
            shown = events;
            bar.set_message(format!("{events} events"));
        }
    }
    bar.finish_and_clear();
    Ok(())
}

fn parse_lines(path: &Path, table: &mut ConnectionTable, hook: &mut dyn ExchangeHook, out: &mut impl Write) -> anyhow::Result<()> {
    let reader: Box<dyn BufRead> = if path.as_os_str() == "-" {
        Box::new(BufReader::new(std::io::stdin()))
    } else {
        Box::new(BufReader::new(
            File::open(path).with_context(|| format!("opening {}", path.display()))?,
        ))
    };
    for (i, line) in reader.lines().enumerate() {
        let n = i + 1;
        let line = line.with_context(|| format!("reading {} line {n}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        match JsonRecord::from_line(&line) {
            Ok(JsonRecord::RawSegment(s)) => write_events(&table.on_segment(&s), hook, out)?,
            Ok(JsonRecord::ConnectionEvent(c)) => write_events(&table.on_connection_event(&c), hook, out)?,
            Ok(JsonRecord::ProcessEvent(_) | JsonRecord::SemanticEvent(_)) => {
                writeln!(out, "{line}").context("writing to stdout")?;
            }
            Ok(other) => eprintln!(
                "{} line {n}: a {} record is not an input of parse; skipped",
                path.display(),
                other.record_type()
            ),
            Err(e) => eprintln!("{} line {n}: {e}; skipped", path.display()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chainwatch_parser_workers::events::NoHook;
    use chainwatch_probe::pcap::read_pcap_file;
    use chainwatch_schemas::{SemanticEvent, samples};

    fn corpus_pcap(rel: &str) -> std::path::PathBuf {
        let dir = std::env::var_os("CHAINWATCH_CORPORA")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpora"));
        let p = dir.join("pcaps").join(rel);
        assert!(p.exists(), "corpus file {} missing (set CHAINWATCH_CORPORA)", p.display());
        p
    }

    fn semantic(out: &[u8]) -> Vec<SemanticEvent> {
        String::from_utf8_lossy(out)
            .lines()
            .filter_map(|l| match JsonRecord::from_line(l) {
                Ok(JsonRecord::SemanticEvent(e)) => Some(e),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn input_lines_give_the_same_events_as_the_pcap_and_pass_process_events_through() {
        let pcap = corpus_pcap("deepflow/http/httpv1.pcap");
        let cfg = ChainwatchConfig::default();
        let mut direct = Vec::new();
        let mut table = ConnectionTable::new(&cfg.parser);
        parse_pcap(&pcap, &mut table, &mut NoHook, &mut direct).unwrap_or_else(|e| panic!("{e:#}"));
        write_events(&table.finish(), &mut NoHook, &mut direct).unwrap_or_else(|e| panic!("{e:#}"));

        // The same capture as JSON lines, with a process event and a broken line in between.
        let (events, _) = read_pcap_file(&pcap, &PcapConfig::default()).unwrap_or_else(|e| panic!("{e}"));
        let mut mapper = PcapRecordMapper::new(PCAP_NODE);
        let mut lines = Vec::new();
        let process = JsonRecord::ProcessEvent(samples::process_event()).to_line().unwrap_or_default();
        lines.push(process.clone());
        lines.push("{not json".to_string());
        for ev in &events {
            for r in mapper.map(ev) {
                let rec = match r {
                    PcapRecord::Segment(s) => JsonRecord::RawSegment(s),
                    PcapRecord::Connection(c) => JsonRecord::ConnectionEvent(c),
                };
                lines.push(rec.to_line().unwrap_or_default());
            }
        }
        let file = std::env::temp_dir().join(format!("chainwatch-parse-test-{}.jsonl", std::process::id()));
        std::fs::write(&file, lines.join("\n")).unwrap_or_else(|e| panic!("{e}"));
        let mut piped = Vec::new();
        let mut table = ConnectionTable::new(&cfg.parser);
        let result = parse_lines(&file, &mut table, &mut NoHook, &mut piped);
        let _ = std::fs::remove_file(&file);
        result.unwrap_or_else(|e| panic!("{e:#}"));
        write_events(&table.finish(), &mut NoHook, &mut piped).unwrap_or_else(|e| panic!("{e:#}"));

        let text = String::from_utf8_lossy(&piped);
        assert_eq!(text.lines().next(), Some(process.as_str()), "process event passed through first");
        let (a, b) = (semantic(&direct), semantic(&piped));
        assert_eq!(a.len(), 1);
        assert_eq!(a, b);
        assert_eq!((a[0].method.as_deref(), a[0].status), (Some("POST"), Some(200)));
        assert_eq!(a[0].path.as_deref(), Some("/query?1590632942"));
    }
}
