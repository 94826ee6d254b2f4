//! Engine semantics: broken policy files are reported while the rest fires, policies reload
//! when their files change, and violations are emitted once and updated (version + 1) only
//! when the evidence changes.

mod common;

use chainwatch_policy_engine::policy::BUILTIN_PACK;
use common::*;

#[tokio::test]
async fn broken_policies_are_reported_and_the_rest_still_fires() {
    let dir = temp_dir("broken");
    for (name, text) in BUILTIN_PACK {
        std::fs::write(dir.join(name), text).unwrap();
    }
    std::fs::write(
        dir.join("zz_bad_sql.toml"),
        "id = \"bad-sql\"\ntitle = \"t\"\nseverity = \"LOW\"\ntags = []\nsql = \"SELECT chain_id FROM no_such_table\"\n",
    )
    .unwrap();
    std::fs::write(dir.join("zz_bad_toml.toml"), "id = \"bad-toml\"\ntitle = \n").unwrap();
    std::fs::write(
        dir.join("zz_no_chain_id.toml"),
        "id = \"no-chain-id\"\ntitle = \"t\"\nseverity = \"LOW\"\nsql = \"SELECT step_index FROM steps\"\n",
    )
    .unwrap();
    let mut e = engine(None, Some(&dir)).await;
    let errors = e.policy_errors();
    assert_eq!(errors.len(), 3, "{errors:#?}");
    let sql_err = errors.iter().find(|x| x.source.ends_with("zz_bad_sql.toml")).expect("bad SQL reported");
    assert!(sql_err.message.contains("no_such_table"), "{}", sql_err.message);
    assert_eq!(sql_err.policy_id.as_deref(), Some("bad-sql"));
    let toml_err = errors.iter().find(|x| x.source.ends_with("zz_bad_toml.toml")).expect("bad TOML reported");
    assert!(toml_err.message.contains("TOML"), "{}", toml_err.message);
    assert!(errors.iter().any(|x| x.source.ends_with("zz_no_chain_id.toml") && x.message.contains("chain_id")));
    assert_eq!(e.policies().len(), BUILTIN_PACK.len());

    let v = e.evaluate(&[seed_chain(false)]).await.unwrap();
    assert_eq!(of(&v, "pii-exfiltration").len(), 1, "{v:#?}");
    assert_eq!(of(&v, "compress-then-upload").len(), 1, "{v:#?}");
}

#[tokio::test]
async fn policies_reload_when_their_files_change() {
    let dir = temp_dir("reload");
    let policy = |threshold: i64| {
        format!(
            "id = \"big-llm\"\ntitle = \"Big LLM call\"\nseverity = \"INFO\"\ntags = [\"AML.T0034\"]\nsql = \"SELECT chain_id, step_index AS evidence_steps FROM steps WHERE kind = 'llm_call' AND input_tokens > {threshold}\"\n"
        )
    };
    std::fs::write(dir.join("big.toml"), policy(10_000)).unwrap();
    let mut e = engine(None, Some(&dir)).await;
    assert!(e.policy_errors().is_empty());
    let c = |id: &str| chain(id, AGENT, vec![llm(0, 5_000, &[])], vec![], vec![]);
    assert!(e.evaluate(&[c("a")]).await.unwrap().is_empty());

    // Lower the threshold (a longer file, so the change shows even within one mtime tick).
    std::fs::write(dir.join("big.toml"), policy(1_000_000).replace("1000000", "1000   ")).unwrap();
    let v = e.evaluate(&[c("b")]).await.unwrap();
    assert_eq!(ids(&v).into_iter().collect::<Vec<_>>(), vec!["big-llm".to_string()], "{v:#?}");

    // A broken edit is reported; the file's policy is gone until fixed.
    std::fs::write(dir.join("big.toml"), "id = \"big-llm\"\ntitle = \"x\"\nseverity = \"INFO\"\nsql = \"SELEKT\"\n").unwrap();
    assert!(e.evaluate(&[c("c")]).await.unwrap().is_empty());
    assert_eq!(e.policy_errors().len(), 1);
    assert!(e.stats().reloads >= 2);
}

#[tokio::test]
async fn violations_are_emitted_once_and_updated_when_evidence_changes() {
    let mut e = engine(None, None).await;
    let first = seed_chain(false);
    let v1 = e.evaluate(&[first.clone()]).await.unwrap();
    let pii1 = of(&v1, "pii-exfiltration")[0].clone();
    assert_eq!(pii1.version, 1);

    // The same chain again: nothing new.
    assert!(e.evaluate(&[first.clone()]).await.unwrap().is_empty());

    // The chain grows without changing the evidence: nothing new.
    let mut grown = first.clone();
    grown.version = 2;
    grown.steps.push(llm(8, 500, &[]));
    grown.end_ns += 10 * SEC;
    assert!(e.evaluate(&[grown.clone()]).await.unwrap().is_empty());

    // The chain grows and the evidence changes (a new PII type flows to the upload): the same
    // violation, version 2, first_seen kept.
    let mut changed = grown.clone();
    changed.version = 3;
    changed.pii_flows.push(flow("iban", 1, 7, "personal-pastebin.com"));
    let v3 = e.evaluate(&[changed.clone()]).await.unwrap();
    assert_eq!(v3.len(), 1, "{v3:#?}");
    assert_eq!(v3[0].violation_id, pii1.violation_id);
    assert_eq!(v3[0].version, 2);
    assert_eq!(v3[0].first_seen_ns, pii1.first_seen_ns);
    assert!(v3[0].pii_types.contains(&"iban".to_string()));

    // An older version arriving late in the same batch as the newer one is ignored.
    let mut old = first.clone();
    old.version = 1;
    assert!(e.evaluate(&[changed, old]).await.unwrap().is_empty());
}

#[tokio::test]
async fn the_same_policy_on_two_destinations_gives_two_violations() {
    let mut c = seed_chain(false);
    let mut second = post(8, "upload", "drop.attacker.example.net", "unknown-external");
    second.archive_format = Some("zip".into());
    c.steps.push(second);
    let mut e = engine(None, None).await;
    let v = e.evaluate(&[c]).await.unwrap();
    let pii = of(&v, "pii-exfiltration");
    assert_eq!(pii.len(), 2, "{v:#?}");
    assert_ne!(pii[0].violation_id, pii[1].violation_id);
}
