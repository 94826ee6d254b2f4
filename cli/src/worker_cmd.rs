//! Running one stage's consumer-group worker on the configured bus until Ctrl-C, as `chainwatch
//! parse`, `chain` and `policy` do without an input file: connect, warn when the bus is
//! in-memory, join, run, leave the group and print the command's summary line.

use std::future::Future;
use std::process::ExitCode;

use anyhow::Context;
use chainwatch_bus::Bus;
use chainwatch_chain_builder::{ChainWorker, ChainWorkerStats};
use chainwatch_config::{BusKind, ChainwatchConfig};
use chainwatch_parser_workers::worker::{ParserWorker, WorkerStats};
use chainwatch_policy_engine::worker::{PolicyWorker, PolicyWorkerStats};

/// A stage worker as the commands drive it (the workers' own methods, errors made `anyhow`).
pub(crate) trait BusWorker: Sized {
    type Stats;
    async fn run_until(&mut self, stop: impl Future<Output = ()>) -> anyhow::Result<()>;
    fn stats(&self) -> Self::Stats;
    async fn close(self) -> anyhow::Result<()>;
}

macro_rules! bus_worker {
    ($($worker:ty => $stats:ty, $what:literal;)*) => {$(
        impl BusWorker for $worker {
            type Stats = $stats;
            async fn run_until(&mut self, stop: impl Future<Output = ()>) -> anyhow::Result<()> {
                <$worker>::run_until(self, stop).await.context($what)
            }
            fn stats(&self) -> $stats {
                <$worker>::stats(self)
            }
            async fn close(self) -> anyhow::Result<()> {
                <$worker>::close(self).await.context("leaving the consumer group")
            }
        }
    )*};
}

bus_worker! {
    ParserWorker => WorkerStats, "parser worker";
    ChainWorker => ChainWorkerStats, "chain worker";
    PolicyWorker => PolicyWorkerStats, "policy worker";
}

/// Runs the worker `join` makes on the configured bus until Ctrl-C, then prints
/// `chainwatch <command>: <summary of its stats>`.
pub(crate) async fn run_until_ctrl_c<W: BusWorker>(
    cfg: &ChainwatchConfig,
    command: &str,
    join: impl AsyncFnOnce(&dyn Bus) -> anyhow::Result<W>,
    summary: impl FnOnce(W::Stats) -> String,
) -> anyhow::Result<ExitCode> {
    let bus = chainwatch_bus::from_config(cfg).await.context("connecting to the bus")?;
    if cfg.bus.kind == BusKind::Memory {
        eprintln!("chainwatch {command}: the bus is in-memory (bus.kind = memory): only records published in this process arrive; use `chainwatch run`, or bus.kind = kafka");
    }
    let mut worker = join(bus.as_ref()).await?;
    let stop = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    worker.run_until(stop).await?;
    let stats = worker.stats();
    worker.close().await?;
    eprintln!("chainwatch {command}: {}", summary(stats));
    Ok(ExitCode::SUCCESS)
}
