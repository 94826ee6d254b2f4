//! TLS and SASL settings pass through to librdkafka (built with SSL), and a bad property is
//! refused at start with its name.

use std::collections::BTreeMap;

use chainwatch_bus::KafkaBus;
use chainwatch_config::KafkaConfig;

#[test]
fn sasl_ssl_settings_are_accepted() {
    let dir = std::env::temp_dir().join(format!("cw-kafka-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = KafkaConfig {
        brokers: "127.0.0.1:1".into(),
        security_protocol: "sasl_ssl".into(),
        sasl_mechanism: Some("SCRAM-SHA-512".into()),
        sasl_username: Some("chainwatch".into()),
        sasl_password: Some("not-a-real-password".into()),
        ..KafkaConfig::default()
    };
    let props = cfg.client_properties();
    for key in ["security.protocol", "sasl.mechanism", "sasl.username", "sasl.password"] {
        assert!(props.iter().any(|(k, _)| k == key), "{key} not passed through");
    }
    // librdkafka refuses sasl_ssl at client creation when it was built without SSL.
    if let Err(e) = KafkaBus::new(cfg) {
        panic!("a sasl_ssl client must be creatable: {e}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn unknown_passthrough_property_is_named() {
    let mut properties = BTreeMap::new();
    properties.insert("no.such.property".to_string(), "1".to_string());
    let cfg = KafkaConfig { brokers: "127.0.0.1:1".into(), properties, ..KafkaConfig::default() };
    match KafkaBus::new(cfg) {
        Ok(_) => panic!("an unknown librdkafka property must be refused"),
        Err(e) => assert!(e.to_string().contains("no.such.property"), "{e}"),
    }
}
