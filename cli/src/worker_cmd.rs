//! Running one stage's consumer-group worker on the configured bus until Ctrl-C, as `chainwatch
//! parse`, `chain` and `policy` do without an input file: connect, warn when the bus is
//! in-memory, join, run, leave the group and print the command's summary line. When `[metrics]`
//! configures an exporter, the stage's metric set is registered and the worker's snapshot is
//! published every second (between steps: the worker stops, commits as it does at Ctrl-C,
//! publishes, and goes on).

use std::future::Future;
use std::process::ExitCode;

use anyhow::Context;
use chainwatch_bus::Bus;
use chainwatch_telemetry::{
    BusMetrics, ChainMetrics, ChainSnapshot, Meter, ParserMetrics, ParserSnapshot, PartitionLag, PolicyMetrics,
    PolicySnapshot, PolicyWorkerMetrics, SharedSnapshot, Telemetry,
};
use chainwatch_chain_builder::{ChainWorker, ChainWorkerStats};
use chainwatch_config::{BusKind, ChainwatchConfig};
use chainwatch_parser_workers::worker::{ParserWorker, WorkerStats};
use chainwatch_policy_engine::worker::{PolicyWorker, PolicyWorkerStats};

use crate::stage_feed::{FsmErrors, chain_snapshot, parser_snapshot};

/// A stage worker as the commands drive it (the workers' own methods, errors made `anyhow`).
pub(crate) trait BusWorker: Sized {
    type Stats;
    /// `service.name` and meter scope of the stage's metrics.
    const SERVICE: &'static str;
    const SCOPE: &'static str;
    async fn run_until(&mut self, stop: impl Future<Output = ()>) -> anyhow::Result<()>;
    fn stats(&self) -> Self::Stats;
    async fn close(self) -> anyhow::Result<()>;
    /// Records not yet consumed, per owned (topic, partition).
    fn lag(&self) -> Vec<(String, i32, u64)>;
    /// The stage's metric set, fed from the worker's own counters.
    fn metrics(meter: &Meter) -> Publish<Self>;
    /// Metrics recorded as the worker goes (not sampled): policy evaluation latency and
    /// violations by policy.
    fn observe(&mut self, meter: &Meter);
}

/// Publishes a worker's current snapshot into its (registered) metric set.
pub(crate) type Publish<W> = Box<dyn Fn(&W) + Send>;

macro_rules! bus_worker {
    ($($worker:ty => $stats:ty, $what:literal, $service:literal, $scope:literal, $metrics:path, $observe:path;)*) => {$(
        impl BusWorker for $worker {
            type Stats = $stats;
            const SERVICE: &'static str = $service;
            const SCOPE: &'static str = $scope;
            async fn run_until(&mut self, stop: impl Future<Output = ()>) -> anyhow::Result<()> {
                <$worker>::run_until(self, stop).await.context($what)
            }
            fn stats(&self) -> $stats {
                <$worker>::stats(self)
            }
            async fn close(self) -> anyhow::Result<()> {
                <$worker>::close(self).await.context("leaving the consumer group")
            }
            fn lag(&self) -> Vec<(String, i32, u64)> {
                <$worker>::lag(self)
            }
            fn metrics(meter: &Meter) -> Publish<Self> {
                $metrics(meter)
            }
            fn observe(&mut self, meter: &Meter) {
                $observe(self, meter)
            }
        }
    )*};
}

bus_worker! {
    ParserWorker => WorkerStats, "parser worker", "chainwatch-parser", "chainwatch.parser", default_parser_metrics, sampled_only;
    ChainWorker => ChainWorkerStats, "chain worker", "chainwatch-chain", "chainwatch.chains", chain_metrics, sampled_only;
    PolicyWorker => PolicyWorkerStats, "policy worker", "chainwatch-policy", "chainwatch.policy", policy_metrics, observe_policy_batches;
}

/// The parser's metric set; FSM errors come from `fsm` (the counting hook the worker runs).
pub(crate) fn parser_metrics(meter: &Meter, fsm: FsmErrors) -> Publish<ParserWorker> {
    let shared = SharedSnapshot::new(ParserSnapshot::default());
    let set = ParserMetrics::register(meter, "", shared.source());
    Box::new(move |w: &ParserWorker| {
        let _registered = &set;
        let s = w.stats();
        shared.publish(parser_snapshot(s.segments, s.payload_bytes, s.events_published, s.dead_letters, &w.table().stats(), &fsm));
    })
}

/// Without the counting hook (`chainwatch parse` installs it): FSM errors stay at 0.
fn default_parser_metrics(meter: &Meter) -> Publish<ParserWorker> {
    parser_metrics(meter, FsmErrors::default())
}

fn chain_metrics(meter: &Meter) -> Publish<ChainWorker> {
    let shared = SharedSnapshot::new(ChainSnapshot::default());
    let set = ChainMetrics::register(meter, "", shared.source());
    Box::new(move |w: &ChainWorker| {
        let _registered = &set;
        let s = w.stats();
        shared.publish(ChainSnapshot {
            checkpoints_written: s.checkpoints_written,
            checkpoint_bytes: s.checkpoint_bytes,
            checkpoint_write_ms: s.checkpoint_write_ms,
            checkpoint_errors: s.checkpoint_errors,
            checkpoint_restore_ms: s.checkpoint_restore_ms,
            checkpoints_missing: s.checkpoints_missing,
            checkpoints_rejected: s.checkpoints_rejected,
            ..chain_snapshot(&w.builder().stats(), w.builder().open_chains())
        });
    })
}

/// Stages whose metrics are all sampled from their stats.
fn sampled_only<W>(_: &mut W, _: &Meter) {}

/// `chainwatch.policy.evaluation.duration{policy_id="all"}` per micro-batch (the engine runs the
/// pack in one evaluation) and `chainwatch.policy.violations{policy_id, severity}` for each new
/// violation (version 1; updates of it are not counted again), as the embedded pipeline does.
fn observe_policy_batches(worker: &mut PolicyWorker, meter: &Meter) {
    let metrics = PolicyMetrics::register(meter, "");
    worker.set_batch_observer(Box::new(move |elapsed, violations| {
        metrics.record_evaluation("all", elapsed);
        for v in violations.iter().filter(|v| v.version == 1) {
            metrics.record_violation(&v.policy_id, v.severity);
        }
    }));
}

/// The policy worker's throughput (latency and violations by policy: `observe_policy_batches`).
fn policy_metrics(meter: &Meter) -> Publish<PolicyWorker> {
    let shared = SharedSnapshot::new(PolicySnapshot::default());
    let set = PolicyWorkerMetrics::register(meter, "", shared.source());
    Box::new(move |w: &PolicyWorker| {
        let _registered = &set;
        let s = w.stats();
        shared.publish(PolicySnapshot {
            chains_in: s.chains,
            batches: s.batches,
            violations_published: s.violations_published,
            dead_lettered: s.dead_letters,
        });
    })
}

/// Runs the worker `join` makes on the configured bus until Ctrl-C, then prints
/// `chainwatch <command>: <summary of its stats>`.
pub(crate) async fn run_until_ctrl_c<W: BusWorker>(
    cfg: &ChainwatchConfig,
    command: &str,
    join: impl AsyncFnOnce(&dyn Bus) -> anyhow::Result<W>,
    summary: impl FnOnce(W::Stats) -> String,
) -> anyhow::Result<ExitCode> {
    run_until_ctrl_c_with(cfg, command, join, W::metrics, summary).await
}

/// As [`run_until_ctrl_c`], with the stage's metric set registered by `metrics` (used when
/// `[metrics]` configures an exporter).
pub(crate) async fn run_until_ctrl_c_with<W: BusWorker>(
    cfg: &ChainwatchConfig,
    command: &str,
    join: impl AsyncFnOnce(&dyn Bus) -> anyhow::Result<W>,
    metrics: impl FnOnce(&Meter) -> Publish<W>,
    summary: impl FnOnce(W::Stats) -> String,
) -> anyhow::Result<ExitCode> {
    let bus = chainwatch_bus::from_config(cfg).await.context("connecting to the bus")?;
    if cfg.bus.kind == BusKind::Memory {
        eprintln!("chainwatch {command}: the bus is in-memory (bus.kind = memory): only records published in this process arrive; use `chainwatch run`, or bus.kind = kafka");
    }
    let telemetry = Telemetry::from_config(&cfg.metrics, W::SERVICE).context("config section [metrics]")?;
    let mut worker = join(bus.as_ref()).await?;
    let publish = telemetry.as_ref().map(|t| metrics(&t.meter(W::SCOPE)));
    if let Some(t) = &telemetry {
        worker.observe(&t.meter(W::SCOPE));
    }
    let lag = telemetry.as_ref().map(|t| consumer_lag(&t.meter("chainwatch.bus"), group_of(cfg, command)));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let ctrl_c = tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        let _ = stop_tx.send(true);
    });
    let tick = publish_tick(publish.is_some());
    loop {
        let mut stopped = stop_rx.clone();
        let stop = async move {
            match tick {
                Some(every) => tokio::select! {
                    _ = stopped.wait_for(|s| *s) => {}
                    _ = tokio::time::sleep(every) => {}
                },
                None => {
                    let _ = stopped.wait_for(|s| *s).await;
                }
            }
        };
        let result = worker.run_until(stop).await;
        if let Some(publish) = &publish {
            publish(&worker);
        }
        if let Some(lag) = &lag {
            lag(&worker);
        }
        result?;
        if *stop_rx.borrow() {
            break;
        }
    }
    ctrl_c.abort();
    let stats = worker.stats();
    worker.close().await?;
    crate::probe_cmd::shutdown_metrics(telemetry, command).await;
    eprintln!("chainwatch {command}: {}", summary(stats));
    Ok(ExitCode::SUCCESS)
}

/// `chainwatch.bus.consumer_lag{group, topic, partition}`: the worker's unconsumed records.
fn consumer_lag<W: BusWorker>(meter: &Meter, group: String) -> Publish<W> {
    let shared = SharedSnapshot::new(Vec::<PartitionLag>::new());
    let set = BusMetrics::register(meter, "", shared.source());
    Box::new(move |w: &W| {
        let _registered = &set;
        let lag = w.lag().into_iter().map(|(topic, partition, lag)| PartitionLag { group: group.clone(), topic, partition, lag });
        shared.publish(lag.collect());
    })
}

/// The consumer group of a stage command.
fn group_of(cfg: &ChainwatchConfig, command: &str) -> String {
    match command {
        "parse" => cfg.parser.group.clone(),
        "chain" => cfg.chain.group.clone(),
        _ => cfg.policy.group.clone(),
    }
}

/// The publish cadence when metrics are on; without, the worker runs uninterrupted.
fn publish_tick(metrics_on: bool) -> Option<std::time::Duration> {
    metrics_on.then_some(crate::stage_feed::PUBLISH_EVERY)
}
