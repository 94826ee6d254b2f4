//! What each subcommand does: configuration and topics here, each stage in its own module.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use chainwatch_config::ChainwatchConfig;

use crate::{Cli, Command};

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let config_path = config_path(cli.config.as_deref())?;
    let cfg = chainwatch_config::load(config_path.as_deref()).context("loading the configuration")?;
    match cli.command {
        Command::Config => {
            let text = toml::to_string_pretty(&masked(&cfg)).context("printing the configuration")?;
            if let Some(p) = &config_path {
                println!("# loaded from {} and the environment", p.display());
            } else {
                println!("# defaults and the environment (no chainwatch.toml)");
            }
            print!("{text}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Topics => {
            create_topics(&cfg)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Probe { pcap: None } => crate::probe_cmd::publish(&cfg),
        Command::Probe { pcap: Some(file) } => crate::probe_cmd::publish_pcap(&cfg, &file),
        Command::Capture { pid, cmd } => crate::probe_cmd::capture(&cfg, pid, &cmd),
        Command::Parse { pcap, input } => crate::parse_cmd::run(&cfg, pcap.as_deref(), input.as_deref()),
        Command::Chain { events } => crate::chain_cmd::run(&cfg, events.as_deref()),
        Command::Policy { chains, format } => crate::policy_cmd::run(&cfg, chains.as_deref(), &format),
        Command::Sql { serve: true, listen, .. } => crate::sql_cmd::serve_http(&cfg, listen.as_deref()),
        Command::Sql { query, format, .. } => crate::sql_cmd::query(&cfg, query.as_deref().unwrap_or_default(), &format),
        Command::Run { format, cmd } => crate::run_cmd::run(&cfg, &format, &cmd),
        Command::Demo { benign, format, report } => crate::run_cmd::demo(&cfg, benign, &format, &report),
    }
}

/// `--config FILE`, else ./chainwatch.toml when it exists, else none (defaults + environment).
/// What `chainwatch config` may print: the configuration with every secret replaced by
/// "<set>" (bearer tokens, Kafka passwords and secret passthrough properties, the fingerprint
/// key), so the output can be pasted into a ticket.
fn masked(cfg: &ChainwatchConfig) -> ChainwatchConfig {
    const SET: &str = "<set>";
    let hide = |v: &mut Option<String>| {
        if v.as_deref().is_some_and(|s| !s.is_empty()) {
            *v = Some(SET.into());
        }
    };
    let mut c = cfg.clone();
    hide(&mut c.policy.webhook.bearer_token);
    hide(&mut c.sql.bearer_token);
    hide(&mut c.kafka.sasl_password);
    hide(&mut c.kafka.ssl_key_password);
    if !c.parser.fingerprint_key.is_empty() {
        c.parser.fingerprint_key = SET.into();
    }
    for (k, v) in c.kafka.properties.iter_mut() {
        let k = k.to_ascii_lowercase();
        if ["password", "secret", "token", "key"].iter().any(|w| k.contains(w)) && !k.ends_with(".location") {
            *v = SET.into();
        }
    }
    c
}

fn config_path(given: Option<&Path>) -> anyhow::Result<Option<PathBuf>> {
    if let Some(p) = given {
        return Ok(Some(p.to_path_buf()));
    }
    let local = PathBuf::from("chainwatch.toml");
    Ok(local.is_file().then_some(local))
}

fn create_topics(cfg: &ChainwatchConfig) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the runtime")?;
    rt.block_on(async {
        let bus = chainwatch_bus::from_config(cfg).await.context("connecting to the bus")?;
        chainwatch_bus::create_all_topics(bus.as_ref(), cfg).await.context("creating topics")?;
        for topic in cfg.topics.all() {
            let n = bus.partition_count(topic).await.with_context(|| format!("reading topic {topic}"))?;
            println!("{topic}\t{n} partitions\t({})", bus.kind());
        }
        Ok(())
    })
}
