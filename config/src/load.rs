//! Layered loading (defaults < file < environment) and key-naming errors.

use std::path::Path;

use crate::sections::ChainwatchConfig;

/// Environment variables `CHAINWATCH__SECTION__KEY` (double underscores between levels)
/// override the file: `CHAINWATCH__KAFKA__BROKERS=broker:9092`.
pub const ENV_PREFIX: &str = "CHAINWATCH";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {path}: {message}")]
    File { path: String, message: String },
    #[error("config key `{key}`: {message}")]
    Key { key: String, message: String },
    #[error("config: {0}")]
    Other(String),
}

/// Load the configuration: defaults, then `file` if given (it must exist), then the
/// environment. Validation errors name the key.
pub fn load(file: Option<&Path>) -> Result<ChainwatchConfig, ConfigError> {
    let mut builder = config::Config::builder();
    if let Some(path) = file {
        if !path.exists() {
            return Err(ConfigError::File { path: path.display().to_string(), message: "does not exist".into() });
        }
        builder = builder.add_source(config::File::from(path).format(config::FileFormat::Toml).required(true));
    }
    finish(builder, file.map(|p| p.display().to_string()))
}

/// Load from TOML text (then the environment), as `load` does for a file.
pub fn load_from_str(toml: &str) -> Result<ChainwatchConfig, ConfigError> {
    let builder = config::Config::builder().add_source(config::File::from_str(toml, config::FileFormat::Toml));
    finish(builder, Some("<inline>".into()))
}

fn finish(
    builder: config::ConfigBuilder<config::builder::DefaultState>,
    origin: Option<String>,
) -> Result<ChainwatchConfig, ConfigError> {
    let builder = builder.add_source(
        config::Environment::with_prefix(ENV_PREFIX)
            .prefix_separator("__")
            .separator("__")
            .try_parsing(true)
            .list_separator(",")
            .with_list_parse_key("probe.watch_comm")
            .with_list_parse_key("probe.watch_exe")
            .with_list_parse_key("probe.watch_ports"),
    );
    let built = builder.build().map_err(|e| match e {
        config::ConfigError::FileParse { uri, cause } => ConfigError::File {
            path: uri.or(origin.clone()).unwrap_or_default(),
            message: cause.to_string(),
        },
        other => ConfigError::Other(other.to_string()),
    })?;
    let cfg: ChainwatchConfig = serde_path_to_error::deserialize(built).map_err(|e| ConfigError::Key {
        key: e.path().to_string(),
        message: strip_key_suffix(&e.inner().to_string()),
    })?;
    cfg.validate()?;
    Ok(cfg)
}

/// The `config` crate appends " for key `x`" itself on some errors; the path already says it.
fn strip_key_suffix(msg: &str) -> String {
    match msg.find(" for key `") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

/// Error for a key whose value parsed but makes no sense.
pub(crate) fn bad(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Key { key: key.to_string(), message: message.into() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_load() {
        let cfg = load_from_str("").unwrap();
        assert_eq!(cfg.bus.kind, crate::BusKind::Memory);
        assert_eq!(cfg.topics.raw_segments, "cw.raw.segments");
        assert_eq!(cfg.chain.idle_gap_secs, 60);
    }

    #[test]
    fn wrong_type_names_the_key() {
        let err = load_from_str("[bus.memory]\npartitions = \"many\"\n").unwrap_err().to_string();
        assert!(err.contains("bus.memory.partitions"), "{err}");
    }

    #[test]
    fn unknown_key_names_the_key() {
        let err = load_from_str("[kafka]\nbrokerz = \"x:1\"\n").unwrap_err().to_string();
        assert!(err.contains("brokerz"), "{err}");
        assert!(err.contains("kafka"), "{err}");
    }

    #[test]
    fn invalid_value_names_the_key() {
        let err = load_from_str("[bus]\nkind = \"kafka\"\n[kafka]\nbrokers = \"\"\n").unwrap_err().to_string();
        assert!(err.contains("kafka.brokers"), "{err}");
        let err = load_from_str("[bus.memory]\npartitions = 0\n").unwrap_err().to_string();
        assert!(err.contains("bus.memory.partitions"), "{err}");
        let err = load_from_str("[bus]\nkind = \"rabbit\"\n").unwrap_err().to_string();
        assert!(err.contains("bus.kind"), "{err}");
    }

    #[test]
    fn webhook_keys_load_and_are_checked() {
        let cfg = load_from_str("[policy.webhook]\nurl = \"http://127.0.0.1:9/hook\"\nmax_retries = 2\n").unwrap();
        assert_eq!(cfg.policy.webhook.url.as_deref(), Some("http://127.0.0.1:9/hook"));
        assert_eq!((cfg.policy.webhook.max_retries, cfg.policy.webhook.queue_capacity), (2, 10_000));
        assert!(load_from_str("[policy.webhook]\nurl = \"https://siem.example.com/x\"\n").is_ok());
        let err = load_from_str("[policy.webhook]\nurl = \"ftp://siem.example.com/x\"\n").unwrap_err().to_string();
        assert!(err.contains("policy.webhook.url"), "{err}");
        let err = load_from_str("[policy.webhook]\nqueue_capacity = 0\n").unwrap_err().to_string();
        assert!(err.contains("policy.webhook.queue_capacity"), "{err}");
        assert_eq!(load_from_str("").unwrap().storage.compaction_interval_secs, 3_600);
    }

    #[test]
    fn syscall_hooks_load_and_are_checked() {
        assert_eq!(load_from_str("").unwrap().probe.syscall_hooks, crate::SyscallHooks::Auto);
        let cfg = load_from_str("[probe]\nsyscall_hooks = \"tracepoints\"\n").unwrap();
        assert_eq!(cfg.probe.syscall_hooks, crate::SyscallHooks::Tracepoints);
        let cfg = load_from_str("[probe]\nsyscall_hooks = \"libc\"\n").unwrap();
        assert_eq!(cfg.probe.syscall_hooks, crate::SyscallHooks::Libc);
        let err = load_from_str("[probe]\nsyscall_hooks = \"kprobes\"\n").unwrap_err().to_string();
        assert!(err.contains("syscall_hooks"), "{err}");
    }

    #[test]
    fn missing_file_is_named() {
        let err = load(Some(Path::new("/nonexistent/chainwatch.toml"))).unwrap_err().to_string();
        assert!(err.contains("/nonexistent/chainwatch.toml"), "{err}");
    }

    #[test]
    fn broken_toml_names_the_file() {
        let dir = std::env::temp_dir().join(format!("cw-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("chainwatch.toml");
        std::fs::write(&path, "[bus\nkind=").unwrap();
        let err = load(Some(&path)).unwrap_err().to_string();
        assert!(err.contains("chainwatch.toml"), "{err}");
    }
}
