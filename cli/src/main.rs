//! `chainwatch`: one binary, a subcommand per stage, plus the embedded pipeline (`run`),
//! `capture`, `demo` and `sql`. Errors leave through `anyhow` with the context that names
//! what was wrong.

mod chain_cmd;
mod commands;
mod parse_cmd;
mod pipeline;
mod policy_cmd;
mod probe_cmd;
mod report;
mod run_cmd;
mod sql_cmd;
mod stage_feed;
mod worker_cmd;

use std::path::PathBuf;
use std::process::ExitCode;

/// mimalloc: the chain builder allocates per event and per chain version, and glibc malloc
/// (with its chunk coalescing) was about half of its time (chain-builder bench).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "chainwatch", version, about = "Watch AI agents at runtime and judge whole workflows")]
pub struct Cli {
    /// Configuration file (TOML). Default: ./chainwatch.toml when it exists. Environment
    /// variables CHAINWATCH__SECTION__KEY override it.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Log filter (tracing's EnvFilter syntax), e.g. "info" or "chainwatch_bus=debug".
    #[arg(long, global = true, default_value = "warn", env = "CHAINWATCH_LOG")]
    pub log: String,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Layer 1: capture sockets, TLS plaintext and processes with eBPF (or replay a pcap) and
    /// publish raw segments.
    Probe {
        /// Replay a pcap/pcapng file instead of capturing live.
        #[arg(long, value_name = "FILE")]
        pcap: Option<PathBuf>,
    },
    /// Layer 2: parse raw segments into semantic events (a consumer-group member).
    Parse {
        /// Parse a pcap/pcapng file offline and print semantic events as JSON lines.
        #[arg(long, value_name = "FILE", conflicts_with = "input")]
        pcap: Option<PathBuf>,
        /// Parse the JSON lines `chainwatch capture` prints (`-` for stdin).
        #[arg(long, value_name = "FILE")]
        input: Option<PathBuf>,
    },
    /// Layer 3: join semantic and process events into chains.
    Chain {
        /// Read events as JSON lines and print chains, offline.
        #[arg(long, value_name = "FILE")]
        events: Option<PathBuf>,
    },
    /// Layers 4-5: evaluate chain policies and publish violations.
    Policy {
        /// Evaluate the JSON chains `chainwatch chain` prints (`-` for stdin), offline.
        #[arg(long, value_name = "FILE")]
        chains: Option<PathBuf>,
        /// With --chains: ocsf (the OCSF Detection Finding JSON of cw.violations) or internal
        /// (chainwatch's Violation records).
        #[arg(long, default_value = "ocsf")]
        format: String,
    },
    /// All stages in one process on the embedded bus; with a command, watch just that command.
    Run {
        /// timeline (readable) or json (chains, then violations, as JSON lines).
        #[arg(long, default_value = "timeline")]
        format: String,
        #[arg(last = true, value_name = "CMD")]
        cmd: Vec<String>,
    },
    /// Run CMD (or attach to --pid) and print what the kernel sees as JSON lines.
    Capture {
        #[arg(long, value_name = "PID", conflicts_with = "cmd")]
        pid: Option<u32>,
        #[arg(last = true, value_name = "CMD")]
        cmd: Vec<String>,
    },
    /// Replay the recorded seed scenario through the embedded pipeline and report.
    Demo {
        /// Replay the benign twin (the same work without the upload) instead.
        #[arg(long)]
        benign: bool,
        /// timeline (readable) or json (chains, then violations, as JSON lines).
        #[arg(long, default_value = "timeline")]
        format: String,
        /// Where the HTML report (the chain drawn as a graph) is written.
        #[arg(long, value_name = "FILE", default_value = "chainwatch-demo.html")]
        report: PathBuf,
    },
    /// Ad hoc SQL over the chain tables in the data directory.
    Sql {
        /// The query (SQL); not needed with --serve.
        #[arg(required_unless_present = "serve")]
        query: Option<String>,
        /// table, json (JSON lines) or csv.
        #[arg(long, default_value = "table")]
        format: String,
        /// Serve POST /sql over HTTP (sql.http_listen, bearer token sql.bearer_token) instead.
        #[arg(long, conflicts_with = "query")]
        serve: bool,
        /// Listen address for --serve (overrides sql.http_listen), e.g. 127.0.0.1:8181.
        #[arg(long, value_name = "HOST:PORT", requires = "serve")]
        listen: Option<String>,
    },
    /// Check the configuration and print it as loaded (defaults, file, environment).
    Config,
    /// Create every chainwatch topic on the configured bus (kafka.partitions each).
    Topics,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_new(&cli.log).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    match commands::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("chainwatch: {e:#}");
            ExitCode::FAILURE
        }
    }
}
