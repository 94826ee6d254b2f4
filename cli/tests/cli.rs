//! The binary as a user meets it: every stage has its subcommand, config errors name the key, topics
//! are created on a real broker.

use std::process::Command;

fn chainwatch() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_chainwatch"));
    c.env_remove("CHAINWATCH__BUS__KIND").current_dir(std::env::temp_dir());
    c
}

#[test]
fn every_stage_subcommand_exists() {
    for cmd in ["probe", "parse", "chain", "policy", "run", "capture", "demo", "sql", "config", "topics"] {
        let out = chainwatch().args([cmd, "--help"]).output().unwrap();
        assert!(out.status.success(), "{cmd} --help: {}", String::from_utf8_lossy(&out.stderr));
    }
}

#[test]
fn bad_config_fails_at_start_naming_the_key() {
    let dir = std::env::temp_dir().join(format!("cw-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.toml");
    std::fs::write(&file, "[chain]\nidle_gap_secs = \"a minute\"\n").unwrap();
    let out = chainwatch().args(["--config", file.to_str().unwrap(), "config"]).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("chain.idle_gap_secs"), "{stderr}");

    let out = chainwatch().env("CHAINWATCH__KAFKA__PARTITIONS", "-3").arg("config").output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("kafka.partitions"));
}

#[test]
fn config_prints_the_effective_configuration() {
    let out = chainwatch().env("CHAINWATCH__CHAIN__IDLE_GAP_SECS", "75").arg("config").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("idle_gap_secs = 75"), "{text}");
    assert!(text.contains("raw_segments = \"cw.raw.segments\""), "{text}");
}

#[test]
fn config_never_prints_a_secret() {
    let secrets = [
        ("CHAINWATCH__POLICY__WEBHOOK__BEARER_TOKEN", "webhook-token-9f3a"),
        ("CHAINWATCH__SQL__BEARER_TOKEN", "sql-token-77b1"),
        ("CHAINWATCH__KAFKA__SASL_PASSWORD", "sasl-pass-1c2d"),
        ("CHAINWATCH__PARSER__FINGERPRINT_KEY", "fingerprint-key-5e6f"),
    ];
    let out = chainwatch().envs(secrets).arg("config").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    for (_, secret) in secrets {
        assert!(!text.contains(secret), "{secret} printed:\n{text}");
    }
    assert!(text.contains("bearer_token = \"<set>\""), "set secrets show as <set>: {text}");
}

#[test]
fn topics_are_created_on_a_real_broker() {
    let broker = chainwatch_testkit::TansuBroker::start();
    let out = chainwatch()
        .env("CHAINWATCH__BUS__KIND", "kafka")
        .env("CHAINWATCH__KAFKA__BROKERS", broker.bootstrap())
        .env("CHAINWATCH__KAFKA__PARTITIONS", "4")
        .arg("topics")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for topic in chainwatch_schemas::topics::ALL {
        assert!(stdout.contains(&format!("{topic}\t4 partitions\t(kafka)")), "{topic} missing in {stdout}");
    }
}
