//! `chainwatch capture` (print what the kernel sees as JSON lines) and `chainwatch probe`
//! (publish it to the bus): the probe's events through `RecordMapper` to records.

use std::io::{BufWriter, Write};
use std::collections::VecDeque;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chainwatch_bus::{OutRecord, Pending, Producer};
use chainwatch_config::ChainwatchConfig;
use chainwatch_probe::ebpf::{Probe, ProbeConfig, SyscallHooks};
use chainwatch_probe::records::{RecordMapper, bus_key};
use chainwatch_probe::selectors::Selector;
use chainwatch_schemas::{AvroRecord, JsonRecord};
use chainwatch_telemetry::Telemetry;

use crate::stage_feed::ProbeFeed;

/// The probe's settings from the configuration.
pub(crate) fn probe_config(cfg: &ChainwatchConfig) -> anyhow::Result<ProbeConfig> {
    let p = &cfg.probe;
    let mut selectors = Vec::new();
    if p.watch_all {
        selectors.push(Selector::All);
    }
    selectors.extend(p.watch_comm.iter().map(|c| Selector::Comm(c.clone())));
    selectors.extend(p.watch_exe.iter().map(|e| Selector::Exe(e.clone())));
    selectors.extend(p.watch_cgroups.iter().map(|c| Selector::Cgroup(c.into())));
    selectors.extend(p.watch_pods.iter().map(|u| Selector::PodUid(u.clone())));
    Ok(ProbeConfig {
        node: cfg.node.resolved_id(),
        per_call_cap: u32::try_from(p.per_call_cap_bytes).context("config key `probe.per_call_cap_bytes`: too large")?,
        tls: true,
        syscall_hooks: match p.syscall_hooks {
            chainwatch_config::SyscallHooks::Auto => SyscallHooks::Auto,
            chainwatch_config::SyscallHooks::Libc => SyscallHooks::Libc,
            chainwatch_config::SyscallHooks::Tracepoints => SyscallHooks::Tracepoints,
        },
        selectors,
        ports: p.watch_ports.clone(),
        ring_buffer_bytes: u32::try_from(p.ring_buffer_bytes).context("config key `probe.ring_buffer_bytes`: too large")?,
        max_detach_backlog: (p.max_detach_backlog > 0).then_some(p.max_detach_backlog),
        uprobe_events: p.uprobe_events,
        ..ProbeConfig::default()
    })
}

pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the runtime")
}

/// `chainwatch capture [--pid N] [-- CMD ARGS...]`: JSON lines on stdout until the watched
/// tree exits; loss counters on stderr; exits with CMD's status.
pub fn capture(cfg: &ChainwatchConfig, pid: Option<u32>, cmd: &[String]) -> anyhow::Result<ExitCode> {
    if pid.is_none() && cmd.is_empty() {
        anyhow::bail!("capture needs a command (`chainwatch capture -- CMD ARGS...`) or --pid N");
    }
    let config = probe_config(cfg)?;
    let node = config.node.clone();
    runtime()?.block_on(async move {
        let mut capture = match pid {
            Some(p) => chainwatch_probe::capture::capture_pid(p, config),
            None => chainwatch_probe::capture::run_capture_with(cmd, config),
        }
        .context("starting the probe (capture needs root, or CAP_BPF + CAP_PERFMON)")?;
        let mut mapper = RecordMapper::new(node);
        let mut out = BufWriter::new(std::io::stdout().lock());
        while let Some(event) = capture.next_event().await {
            let line = mapper.map(&event).to_line().context("writing a record as JSON")?;
            if writeln!(out, "{line}").is_err() {
                break; // stdout closed (e.g. `| head`): stop quietly
            }
        }
        let _ = out.flush();
        if let Ok(loss) = capture.probe().loss_counters() {
            eprintln!("chainwatch capture: loss {loss:?}; mapper {:?}", mapper.stats());
        }
        Ok(match capture.exit_status() {
            Some(0) | None => ExitCode::SUCCESS,
            Some(code) => ExitCode::from(u8::try_from(code.clamp(1, 255)).unwrap_or(1)),
        })
    })
}

/// `chainwatch probe`: watch what the configuration selects and publish RawSegment and
/// ConnectionEvent records to cw.raw.segments (key: connection id) and ProcessEvent records to
/// cw.proc.events (key: node), until interrupted. At most `probe.max_pending_events`
/// records wait for the bus's acknowledgement; beyond that the probe waits (and the kernel
/// counts what its ring buffer cannot hold), so memory stays bounded. With `[metrics]` set the
/// probe's metric set is published every second; on a terminal a status line shows records/s,
/// losses (nothing extra when stderr is piped).
pub fn publish(cfg: &ChainwatchConfig) -> anyhow::Result<ExitCode> {
    let config = probe_config(cfg)?;
    if config.selectors.is_empty() {
        anyhow::bail!(
            "nothing to watch: set probe.watch_comm, probe.watch_exe, probe.watch_cgroups, probe.watch_pods or probe.watch_all"
        );
    }
    let node = config.node.clone();
    let cfg = cfg.clone();
    runtime()?.block_on(async move {
        let telemetry = Telemetry::from_config(&cfg.metrics, "chainwatch-probe").context("config section [metrics]")?;
        let mut out = BoundedPublisher::connect(&cfg).await?;
        let mut probe = Probe::start(config).context("starting the probe (needs root, or CAP_BPF + CAP_PERFMON)")?;
        let mut feed = ProbeFeed::start(telemetry.as_ref())?;
        let mut events = probe.events().context("the probe's event stream was already taken")?;
        let mut mapper = RecordMapper::new(node);
        let stop = tokio::signal::ctrl_c();
        tokio::pin!(stop);
        // Also when idle: losses keep counting while nothing arrives.
        let mut tick = tokio::time::interval(crate::stage_feed::PUBLISH_EVERY);
        loop {
            let event = tokio::select! {
                e = events.recv() => match e { Some(e) => e, None => break },
                _ = tick.tick() => {
                    feed.publish(probe.loss_counters().ok().as_ref(), mapper.stats(), None);
                    continue;
                }
                _ = &mut stop => break,
            };
            let record = mapper.map(&event);
            let topic = match record {
                JsonRecord::ProcessEvent(_) => cfg.topics.proc_events.as_str(),
                _ => cfg.topics.raw_segments.as_str(),
            };
            out.publish(topic, &record).await?;
            feed.on_record(&record);
        }
        let waits = out.finish().await?;
        feed.publish(probe.loss_counters().ok().as_ref(), mapper.stats(), None);
        drop(feed);
        shutdown_metrics(telemetry, "probe").await;
        eprintln!(
            "chainwatch probe: {} records, {waits} back-pressure waits, loss {:?}",
            mapper.stats().records,
            probe.loss_counters().ok()
        );
        Ok::<_, anyhow::Error>(ExitCode::SUCCESS)
    })
}

/// `chainwatch probe --pcap FILE`: replay a capture as RawSegment and ConnectionEvent records
/// on cw.raw.segments (key: connection id), the same records the live probe publishes, with
/// the same bound on unacknowledged records.
pub fn publish_pcap(cfg: &ChainwatchConfig, file: &std::path::Path) -> anyhow::Result<ExitCode> {
    use chainwatch_probe::pcap::records::{PcapRecord, PcapRecordMapper};
    let input = std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?;
    let name = file.display().to_string();
    let mut reader = chainwatch_probe::pcap::PcapReader::new(std::io::BufReader::new(input), &name, Default::default())
        .with_context(|| format!("reading {name}"))?;
    let cfg = cfg.clone();
    runtime()?.block_on(async move {
        let mut out = BoundedPublisher::connect(&cfg).await?;
        let mut mapper = PcapRecordMapper::new(&cfg.node.resolved_id());
        let mut published = 0u64;
        for event in reader.by_ref() {
            let event = event.with_context(|| format!("reading {name}"))?;
            for record in mapper.map(&event) {
                let record = match record {
                    PcapRecord::Segment(s) => JsonRecord::RawSegment(s),
                    PcapRecord::Connection(c) => JsonRecord::ConnectionEvent(c),
                };
                out.publish(&cfg.topics.raw_segments, &record).await?;
                published += 1;
            }
        }
        out.finish().await?;
        eprintln!("chainwatch probe --pcap: {published} records from {name}; {:?}", reader.stats());
        Ok::<_, anyhow::Error>(ExitCode::SUCCESS)
    })
}

/// Push the last metric values and stop the exporters (blocking HTTP, off the runtime's threads).
pub(crate) async fn shutdown_metrics(telemetry: Option<Telemetry>, command: &str) {
    let Some(t) = telemetry else { return };
    match tokio::task::spawn_blocking(move || t.shutdown()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => eprintln!("chainwatch {command}: metrics: {e}"),
        Err(e) => eprintln!("chainwatch {command}: metrics: {e}"),
    }
}

/// Publishes records keyed as `bus_key` says, with at most `probe.max_pending_events` of them
/// waiting for the bus's acknowledgement: beyond that it waits (counted), so memory is bounded.
struct BoundedPublisher {
    producer: Arc<dyn Producer>,
    pending: VecDeque<Pending>,
    max_pending: usize,
    waits: u64,
}

impl BoundedPublisher {
    /// The configured bus, its topics created when the configuration says so.
    async fn connect(cfg: &ChainwatchConfig) -> anyhow::Result<BoundedPublisher> {
        let bus = chainwatch_bus::from_config(cfg).await.context("connecting to the bus")?;
        if cfg.kafka.create_topics || cfg.bus.kind == chainwatch_config::BusKind::Memory {
            chainwatch_bus::create_all_topics(bus.as_ref(), cfg).await.context("creating topics")?;
        }
        Ok(BoundedPublisher {
            producer: bus.producer()?,
            pending: VecDeque::new(),
            max_pending: cfg.probe.max_pending_events.max(1),
            waits: 0,
        })
    }

    async fn publish(&mut self, topic: &str, record: &JsonRecord) -> anyhow::Result<()> {
        let out = OutRecord::new(topic, bus_key(record), encode(record)?);
        self.pending.push_back(self.producer.send(out).await?);
        while self.pending.len() > self.max_pending {
            self.waits += 1;
            if let Some(p) = self.pending.pop_front() {
                p.await.context("publishing to the bus")?;
            }
        }
        Ok(())
    }

    /// Wait for every acknowledgement; returns how often publishing had to wait.
    async fn finish(mut self) -> anyhow::Result<u64> {
        for p in self.pending.drain(..) {
            p.await.context("publishing to the bus")?;
        }
        self.producer.flush(Duration::from_secs(10)).await?;
        Ok(self.waits)
    }
}

fn encode(record: &JsonRecord) -> anyhow::Result<Vec<u8>> {
    Ok(match record {
        JsonRecord::RawSegment(r) => r.encode()?,
        JsonRecord::ConnectionEvent(r) => r.encode()?,
        JsonRecord::ProcessEvent(r) => r.encode()?,
        JsonRecord::SemanticEvent(r) => r.encode()?,
        JsonRecord::Chain(r) => r.encode()?,
        JsonRecord::Violation(r) => r.encode()?,
    })
}

