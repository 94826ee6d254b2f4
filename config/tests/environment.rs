//! The environment overrides the file, which overrides the defaults (own process: env is global).

use chainwatch_config::{BusKind, load};

#[test]
fn environment_overrides_file_overrides_defaults() {
    let dir = std::env::temp_dir().join(format!("cw-config-env-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("chainwatch.toml");
    std::fs::write(
        &path,
        "[bus]\nkind = \"kafka\"\n[kafka]\nbrokers = \"file:9092\"\npartitions = 6\n[kafka.properties]\n\"fetch.wait.max.ms\" = \"50\"\n",
    )
    .unwrap();
    // SAFETY: this test binary has a single test, so no other thread reads the environment.
    unsafe {
        std::env::set_var("CHAINWATCH__KAFKA__BROKERS", "env:9092");
        std::env::set_var("CHAINWATCH__CHAIN__IDLE_GAP_SECS", "90");
        std::env::set_var("CHAINWATCH__PROBE__WATCH_COMM", "python3,curl");
    }
    let cfg = load(Some(&path)).unwrap();
    assert_eq!(cfg.bus.kind, BusKind::Kafka); // file
    assert_eq!(cfg.kafka.brokers, "env:9092"); // env beats file
    assert_eq!(cfg.kafka.partitions, 6); // file beats default
    assert_eq!(cfg.kafka.properties.get("fetch.wait.max.ms").map(String::as_str), Some("50"));
    assert_eq!(cfg.chain.idle_gap_secs, 90); // env beats default
    assert_eq!(cfg.probe.watch_comm, vec!["python3".to_string(), "curl".to_string()]);
    assert_eq!(cfg.parser.group, "cw-parsers"); // default

    unsafe { std::env::set_var("CHAINWATCH__CHAIN__IDLE_GAP_SECS", "soon") };
    let err = load(Some(&path)).unwrap_err().to_string();
    assert!(err.contains("chain.idle_gap_secs"), "{err}");
}
