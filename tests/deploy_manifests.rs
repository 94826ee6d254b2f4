//! Checks the deployment files against the code, since no container engine runs here:
//! docker-compose.yml, k8s/*.yaml, the Dockerfile and chainwatch.example.toml must parse, and
//! every topic, consumer group, config key (CHAINWATCH__SECTION__KEY), `chainwatch`
//! subcommand and port they use must be one the code uses. The probe must have its
//! capabilities, mounts and hostPID, and the parser workers their partition comment.
//! Every failure names the file and the offending value.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use chainwatch_config::{ChainwatchConfig, load_from_str};
use chainwatch_schemas::topics;
use serde::Deserialize as _;
use serde_json::Value as Json;
use serde_norway::Value as Yaml;

/// Subcommands the `chainwatch` binary must have (issue 2); the full list is read from the
/// CLI's `enum Command` in cli/src/main.rs.
const REQUIRED_SUBCOMMANDS: [&str; 8] = ["probe", "parse", "chain", "policy", "run", "capture", "demo", "sql"];
const CLI_MAIN: &str = "cli/src/main.rs";
/// Config keys that chainwatch-config reads from the environment as comma-separated lists
/// (`with_list_parse_key` in config/src/load.rs); any other list key cannot come from env.
const ENV_LIST_KEYS: [&str; 3] = ["probe.watch_comm", "probe.watch_exe", "probe.watch_ports"];
/// Capabilities the probe needs (issue 2, point 7).
const PROBE_CAPABILITIES: [&str; 3] = ["BPF", "PERFMON", "SYS_RESOURCE"];
/// The probe's host mounts: (host path, path in the container, must be read-only).
const PROBE_MOUNTS: [(&str, &str, bool); 4] = [
    ("/sys/kernel/tracing", "/sys/kernel/tracing", false),
    ("/sys/fs/bpf", "/sys/fs/bpf", false),
    ("/proc", "/host/proc", true),
    ("/sys/kernel/btf", "/sys/kernel/btf", true),
];
/// Where the Kubernetes stages read chainwatch.toml from the ConfigMap.
const CONFIG_KEY: &str = "chainwatch.toml";

// ---------------------------------------------------------------------------------------
// Reading the files
// ---------------------------------------------------------------------------------------

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

fn read(rel: &str) -> String {
    let path = repo_root().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{rel}: cannot read {}: {e}", path.display()))
}

/// One YAML document of a file, `<<` merge keys applied.
struct YamlDoc {
    file: String,
    /// The document's own text (comments included), for comment checks.
    text: String,
    value: Yaml,
}

fn yaml_docs(rel: &str) -> Vec<YamlDoc> {
    let text = read(rel);
    let mut docs = Vec::new();
    for (i, de) in serde_norway::Deserializer::from_str(&text).enumerate() {
        let mut value =
            Yaml::deserialize(de).unwrap_or_else(|e| panic!("{rel}: YAML document {} does not parse: {e}", i + 1));
        value.apply_merge().unwrap_or_else(|e| panic!("{rel}: YAML document {}: bad merge key: {e}", i + 1));
        if !value.is_null() {
            docs.push(YamlDoc { file: rel.to_string(), text: String::new(), value });
        }
    }
    let texts = split_documents(&text);
    if texts.len() == docs.len() {
        for (doc, t) in docs.iter_mut().zip(texts) {
            doc.text = t;
        }
    } else {
        for doc in &mut docs {
            doc.text = text.clone();
        }
    }
    docs
}

/// Raw text of each non-empty document (split on `---` lines).
fn split_documents(text: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    for line in text.lines() {
        if line.trim_end() == "---" {
            out.push(String::new());
        } else if let Some(last) = out.last_mut() {
            last.push_str(line);
            last.push('\n');
        }
    }
    out.into_iter().filter(|t| t.lines().any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))).collect()
}

fn k8s_files() -> Vec<String> {
    let dir = repo_root().join("k8s");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("k8s/: cannot list {}: {e}", dir.display()))
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml") || n.ends_with(".yml"))
        .map(|n| format!("k8s/{n}"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "k8s/: no YAML files");
    files
}

fn k8s_docs() -> Vec<YamlDoc> {
    k8s_files().iter().flat_map(|f| yaml_docs(f)).collect()
}

/// Problems found so far; the test fails listing all of them.
#[derive(Default)]
struct Problems(Vec<String>);

impl Problems {
    fn add(&mut self, file: &str, msg: impl AsRef<str>) {
        self.0.push(format!("{file}: {}", msg.as_ref()));
    }
    fn check(self) {
        assert!(self.0.is_empty(), "{} problem(s):\n  {}", self.0.len(), self.0.join("\n  "));
    }
}

// ---------------------------------------------------------------------------------------
// YAML helpers
// ---------------------------------------------------------------------------------------

fn at<'a>(v: &'a Yaml, path: &[&str]) -> Option<&'a Yaml> {
    path.iter().try_fold(v, |v, k| v.get(*k))
}

fn str_at<'a>(v: &'a Yaml, path: &[&str]) -> Option<&'a str> {
    at(v, path).and_then(Yaml::as_str)
}

fn seq(v: Option<&Yaml>) -> &[Yaml] {
    v.and_then(Yaml::as_sequence).map(|s| s.as_slice()).unwrap_or(&[])
}

/// A scalar as text (strings, numbers, booleans).
fn scalar(v: &Yaml) -> Option<String> {
    match v {
        Yaml::String(s) => Some(s.clone()),
        Yaml::Number(n) => Some(n.to_string()),
        Yaml::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Every string scalar (keys included) in a YAML tree.
fn strings(v: &Yaml, out: &mut Vec<String>) {
    match v {
        Yaml::String(s) => out.push(s.clone()),
        Yaml::Sequence(s) => s.iter().for_each(|x| strings(x, out)),
        Yaml::Mapping(m) => {
            for (k, x) in m {
                strings(k, out);
                strings(x, out);
            }
        }
        Yaml::Tagged(t) => strings(&t.value, out),
        _ => {}
    }
}

/// Words in `text` that start with `prefix` (word characters: alphanumerics, `.`, `-`, `_`).
fn words_with_prefix(text: &str, prefix: &str) -> Vec<String> {
    let is_word = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_');
    let mut out = Vec::new();
    let mut start = 0;
    while let Some(i) = text.get(start..).and_then(|t| t.find(prefix)).map(|i| i + start) {
        let before_ok = text[..i].chars().next_back().is_none_or(|c| !is_word(c));
        let end = text[i..].char_indices().find(|&(_, c)| !is_word(c)).map_or(text.len(), |(j, _)| i + j);
        let word = text[i..end].trim_end_matches(['.', '-', '_']);
        if before_ok && word.len() > prefix.len() {
            out.push(word.to_string());
        }
        start = end.max(i + prefix.len());
    }
    out
}

/// The port of a `host:port` listen address.
fn listen_port(addr: &str) -> Option<u16> {
    addr.rsplit(':').next()?.parse().ok()
}

// ---------------------------------------------------------------------------------------
// Config keys and the environment
// ---------------------------------------------------------------------------------------

/// The default config as a tree of keys (None shows as null).
fn default_tree() -> Json {
    serde_json::to_value(ChainwatchConfig::default())
        .unwrap_or_else(|e| panic!("ChainwatchConfig does not serialise: {e}"))
}

/// The config key path an env var names (`CHAINWATCH__BUS__MEMORY__PARTITIONS` ->
/// ["bus", "memory", "partitions"]) and the default value there, or why it names none.
/// An empty table in the defaults is a map (kafka.properties, chain.prices): any key below it.
fn env_key(name: &str, defaults: &Json) -> Result<(Vec<String>, Json), String> {
    let rest = name
        .strip_prefix("CHAINWATCH__")
        .ok_or_else(|| format!("`{name}` does not start with CHAINWATCH__ (double underscore)"))?;
    let path: Vec<String> = rest.split("__").map(str::to_ascii_lowercase).collect();
    if path.iter().any(String::is_empty) {
        return Err(format!("`{name}` has an empty level (use exactly two underscores between levels)"));
    }
    let mut node = defaults;
    for (i, key) in path.iter().enumerate() {
        match node {
            Json::Object(map) if map.is_empty() => return Ok((path, Json::String(String::new()))),
            Json::Object(map) => {
                node = map.get(key).ok_or_else(|| {
                    format!("`{name}` names no config key: `{}` has no key `{key}`", path[..i].join("."))
                })?;
            }
            _ => return Err(format!("`{name}` names no config key: `{}` is not a section", path[..i].join("."))),
        }
    }
    if node.as_object().is_some_and(|m| !m.is_empty()) {
        return Err(format!("`{name}` names the section `{}`, not a key", path.join(".")));
    }
    Ok((path, node.clone()))
}

/// The TOML value chainwatch-config would read from the env var's text, given the default.
fn env_value(key: &str, text: &str, default: &Json) -> Result<toml::Value, String> {
    let bad = |what: &str| format!("`{key}` = {text:?} is not {what}");
    Ok(match default {
        Json::Bool(_) => toml::Value::Boolean(text.parse().map_err(|_| bad("a boolean"))?),
        Json::Number(n) if n.is_f64() => toml::Value::Float(text.parse().map_err(|_| bad("a number"))?),
        Json::Number(_) => toml::Value::Integer(text.parse().map_err(|_| bad("an integer"))?),
        Json::Array(_) => {
            if !ENV_LIST_KEYS.contains(&key) {
                return Err(format!("`{key}` is a list that chainwatch-config does not read from the environment"));
            }
            let items = text.split(',').map(str::trim).filter(|s| !s.is_empty());
            if key == "probe.watch_ports" {
                let ports: Result<Vec<_>, _> =
                    items.map(|p| p.parse::<u16>().map(|p| toml::Value::Integer(p.into()))).collect();
                toml::Value::Array(ports.map_err(|_| bad("a list of ports"))?)
            } else {
                toml::Value::Array(items.map(|s| toml::Value::String(s.to_string())).collect())
            }
        }
        _ => toml::Value::String(text.to_string()),
    })
}

/// Environment of one container: name -> value, `None` where it comes from elsewhere
/// (a Secret, the downward API).
type Env = BTreeMap<String, Option<String>>;

/// Load `base_toml` with `env` applied on top, as chainwatch would see it; every
/// CHAINWATCH variable must name a config key and hold a value of its type.
fn effective_config(file: &str, who: &str, base_toml: &str, env: &Env, p: &mut Problems) -> Option<ChainwatchConfig> {
    let defaults = default_tree();
    let mut table: toml::Table = match base_toml.parse() {
        Ok(t) => t,
        Err(e) => {
            p.add(file, format!("{who}: chainwatch.toml does not parse: {e}"));
            return None;
        }
    };
    let mut ok = true;
    for (name, value) in env {
        if !name.starts_with("CHAINWATCH__") {
            continue;
        }
        let (path, default) = match env_key(name, &defaults) {
            Ok(k) => k,
            Err(e) => {
                p.add(file, format!("{who}: {e}"));
                ok = false;
                continue;
            }
        };
        let key = path.join(".");
        // A value from a Secret or the downward API is text; only text keys may take one.
        let text = value.clone().unwrap_or_else(|| "from-elsewhere".into());
        if value.is_none() && !(default.is_string() || default.is_null()) {
            p.add(file, format!("{who}: `{name}` takes its value from elsewhere but `{key}` is not text"));
            ok = false;
            continue;
        }
        match env_value(&key, &text, &default) {
            Ok(v) => insert_path(&mut table, &path, v),
            Err(e) => {
                p.add(file, format!("{who}: `{name}`: {e}"));
                ok = false;
            }
        }
    }
    if !ok {
        return None;
    }
    let text = toml::to_string(&table).unwrap_or_default();
    match load_from_str(&text) {
        Ok(cfg) => Some(cfg),
        Err(e) => {
            p.add(file, format!("{who}: the config does not load: {e}"));
            None
        }
    }
}

fn insert_path(table: &mut toml::Table, path: &[String], value: toml::Value) {
    let Some((last, parents)) = path.split_last() else { return };
    let mut t = table;
    for k in parents {
        let entry = t.entry(k.clone()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if !entry.is_table() {
            *entry = toml::Value::Table(toml::Table::new());
        }
        let toml::Value::Table(next) = entry else { return };
        t = next;
    }
    t.insert(last.clone(), value);
}

/// The ports a stage listens on, per its config: sql.http_listen and metrics.prometheus_listen.
fn listen_ports(cfg: &ChainwatchConfig) -> BTreeSet<u16> {
    [&cfg.sql.http_listen, &cfg.metrics.prometheus_listen]
        .into_iter()
        .flatten()
        .filter_map(|a| listen_port(a))
        .collect()
}

/// The subcommand of a `chainwatch` command line and its `--config` file, or what is wrong.
fn chainwatch_subcommand(argv: &[String], cli: &CliSurface) -> Result<(String, Option<String>), String> {
    let program = argv.first().ok_or("runs no command (the image's default)")?;
    if Path::new(program).file_name().and_then(|n| n.to_str()) != Some("chainwatch") {
        return Err(format!("runs `{program}`, not chainwatch"));
    }
    let mut config = None;
    let mut args = argv[1..].iter();
    while let Some(a) = args.next() {
        let (option, inline) = match a.split_once('=') {
            Some((o, v)) if o.starts_with("--") => (o, Some(v.to_string())),
            _ => (a.as_str(), None),
        };
        if option.starts_with('-') {
            if !cli.global_options.iter().any(|g| g == option) {
                return Err(format!("`{option}` is not a global option of chainwatch {:?}", cli.global_options));
            }
            let value = inline.or_else(|| args.next().cloned());
            if option == "--config" {
                config = value;
            }
        } else if cli.subcommands.iter().any(|s| s == a) {
            return Ok((a.clone(), config));
        } else {
            return Err(format!("`chainwatch {a}` is not a subcommand (one of {:?})", cli.subcommands));
        }
    }
    Err(format!("`{}` names no subcommand", argv.join(" ")))
}

// ---------------------------------------------------------------------------------------
// The CLI, read from its source (the binary crate has no library to link against)
// ---------------------------------------------------------------------------------------

/// What the manifests may put on a `chainwatch` command line and in its environment.
struct CliSurface {
    /// Subcommands (kebab-case of `enum Command`'s variants).
    subcommands: Vec<String>,
    /// Global options that take a value (`--config`, `--log`).
    global_options: Vec<String>,
    /// Environment variables clap reads (`env = "CHAINWATCH_LOG"`), besides the config's.
    env_vars: BTreeSet<String>,
}

fn kebab(ident: &str) -> String {
    let mut out = String::new();
    for (i, c) in ident.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('-');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(if c == '_' { '-' } else { c });
        }
    }
    out
}

fn cli_surface() -> CliSurface {
    let text = read(CLI_MAIN);
    // Variants: lines indented four spaces inside `enum Command {`, starting with a capital.
    let mut subcommands = Vec::new();
    let mut in_enum = false;
    for line in text.lines() {
        if line.starts_with("pub enum Command") || line.starts_with("enum Command") {
            in_enum = true;
        } else if in_enum && line.starts_with('}') {
            break;
        } else if in_enum
            && let Some(rest) = line.strip_prefix("    ")
            && rest.starts_with(|c: char| c.is_ascii_uppercase())
        {
            let ident: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            subcommands.push(kebab(&ident));
        }
    }
    assert!(!subcommands.is_empty(), "{CLI_MAIN}: found no variants of `enum Command`");
    for required in REQUIRED_SUBCOMMANDS {
        assert!(
            subcommands.iter().any(|s| s == required),
            "{CLI_MAIN}: no subcommand `{required}` (has {subcommands:?})"
        );
    }
    // Global options: a `global = true` attribute, then the field it is on.
    let mut global_options = Vec::new();
    let mut pending = false;
    for line in text.lines().map(str::trim) {
        if line.starts_with("#[arg(") && line.contains("global = true") {
            pending = true;
        } else if pending && let Some(field) = line.strip_prefix("pub ").and_then(|l| l.split(':').next()) {
            global_options.push(format!("--{}", kebab(field.trim())));
            pending = false;
        }
    }
    assert!(
        global_options.iter().any(|o| o == "--config"),
        "{CLI_MAIN}: no global `--config` option (has {global_options:?})"
    );
    let env_vars = words_after(&text, "env = \"");
    CliSurface { subcommands, global_options, env_vars }
}

/// The quoted names after each `marker` (e.g. `env = "NAME"`).
fn words_after(text: &str, marker: &str) -> BTreeSet<String> {
    text.split(marker).skip(1).filter_map(|rest| rest.split('"').next()).map(str::to_string).collect()
}

/// A CHAINWATCH* variable must be a config key (CHAINWATCH__...) or one the CLI reads.
fn check_env_names(file: &str, who: &str, env: &Env, cli: &CliSurface, p: &mut Problems) {
    for key in env.keys() {
        if key.starts_with("CHAINWATCH") && !key.starts_with("CHAINWATCH__") && !cli.env_vars.contains(key) {
            p.add(
                file,
                format!(
                    "{who}: `{key}` is neither CHAINWATCH__SECTION__KEY nor a variable the CLI reads {:?}",
                    cli.env_vars
                ),
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// Topics and groups in any file
// ---------------------------------------------------------------------------------------

fn check_names_in(file: &str, texts: &[String], p: &mut Problems) {
    let groups = [topics::GROUP_PARSERS, topics::GROUP_CHAINS, topics::GROUP_POLICY];
    for t in texts {
        for w in words_with_prefix(t, "cw.") {
            if !topics::ALL.contains(&w.as_str()) {
                p.add(file, format!("topic `{w}` is not one of schemas::topics::ALL {:?}", topics::ALL));
            }
        }
        for w in words_with_prefix(t, "cw-") {
            if !groups.contains(&w.as_str()) {
                p.add(file, format!("consumer group `{w}` is not one of schemas::topics' groups {groups:?}"));
            }
        }
    }
}

fn check_config_topics(file: &str, who: &str, cfg: &ChainwatchConfig, p: &mut Problems) {
    for t in cfg.topics.all() {
        if !topics::ALL.contains(&t) {
            p.add(file, format!("{who}: config topic `{t}` is not one of schemas::topics::ALL"));
        }
    }
    for (key, g, want) in [
        ("parser.group", &cfg.parser.group, topics::GROUP_PARSERS),
        ("chain.group", &cfg.chain.group, topics::GROUP_CHAINS),
        ("policy.group", &cfg.policy.group, topics::GROUP_POLICY),
    ] {
        if g != want {
            p.add(file, format!("{who}: `{key}` = `{g}`, schemas::topics says `{want}`"));
        }
    }
}

/// Does the text have a comment that says the partition count bounds the replicas?
fn has_partition_comment(text: &str) -> bool {
    let comments: String = text
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix('#'))
        .collect::<Vec<_>>()
        .join(" ")
        .to_ascii_lowercase();
    comments.contains("cw.raw.segments") && comments.contains("partition") && comments.contains("replica")
}

// ---------------------------------------------------------------------------------------
// docker-compose.yml
// ---------------------------------------------------------------------------------------

const COMPOSE: &str = "docker-compose.yml";

/// The value a compose `${VAR:-default}` stands for when VAR is unset (None if none).
fn compose_interpolate(text: &str) -> Option<String> {
    let inner = text.strip_prefix("${")?.strip_suffix('}')?;
    inner.split_once(":-").or_else(|| inner.split_once('-')).map(|(_, d)| d.to_string())
}

fn compose_env(service: &Yaml) -> Env {
    let mut env = Env::new();
    match service.get("environment") {
        Some(Yaml::Mapping(m)) => {
            for (k, v) in m {
                if let Some(k) = k.as_str() {
                    let v = scalar(v)
                        .map(|v| if v.starts_with("${") { compose_interpolate(&v).unwrap_or_default() } else { v });
                    env.insert(k.to_string(), v);
                }
            }
        }
        Some(Yaml::Sequence(s)) => {
            for item in s.iter().filter_map(Yaml::as_str) {
                let (k, v) = item.split_once('=').unwrap_or((item, ""));
                env.insert(k.to_string(), Some(v.to_string()));
            }
        }
        _ => {}
    }
    env
}

fn compose_argv(service: &Yaml) -> Vec<String> {
    let part = |key: &str| -> Vec<String> {
        match service.get(key) {
            Some(Yaml::String(s)) => s.split_whitespace().map(str::to_string).collect(),
            Some(Yaml::Sequence(s)) => s.iter().filter_map(scalar).collect(),
            _ => Vec::new(),
        }
    };
    let mut argv = part("entrypoint");
    argv.extend(part("command"));
    argv
}

fn is_chainwatch_image(image: &str) -> bool {
    let name = image.rsplit('/').next().unwrap_or(image);
    name == "chainwatch" || name.starts_with("chainwatch:") || name.starts_with("chainwatch@")
}

/// The container port of a compose `ports`/`expose` entry.
fn compose_container_port(entry: &Yaml) -> Option<u16> {
    if let Some(t) = entry.get("target") {
        return scalar(t)?.parse().ok();
    }
    let s = scalar(entry)?;
    s.rsplit(':').next()?.split('/').next()?.parse().ok()
}

/// `src:dst[:mode]` volume entries (and the long syntax) as (source, target, read_only).
fn compose_volumes(service: &Yaml) -> Vec<(String, String, bool)> {
    seq(service.get("volumes"))
        .iter()
        .filter_map(|v| match v {
            Yaml::String(s) => {
                let parts: Vec<&str> = s.split(':').collect();
                match parts.as_slice() {
                    [src, dst] => Some((src.to_string(), dst.to_string(), false)),
                    [src, dst, mode] => Some((src.to_string(), dst.to_string(), mode.split(',').any(|m| m == "ro"))),
                    _ => None,
                }
            }
            Yaml::Mapping(_) => Some((
                str_at(v, &["source"])?.to_string(),
                str_at(v, &["target"])?.to_string(),
                at(v, &["read_only"]).and_then(Yaml::as_bool).unwrap_or(false),
            )),
            _ => None,
        })
        .collect()
}

#[test]
fn compose_uses_only_real_topics_keys_subcommands_and_ports() {
    let mut p = Problems::default();
    let cli = cli_surface();
    let docs = yaml_docs(COMPOSE);
    assert_eq!(docs.len(), 1, "{COMPOSE}: expected one YAML document, found {}", docs.len());
    let doc = &docs[0].value;
    // Values and comments alike: a comment naming a wrong topic misleads as much as a value.
    let mut texts = vec![read(COMPOSE), read("Dockerfile")];
    strings(doc, &mut texts);
    check_names_in(COMPOSE, &texts, &mut p);

    let services = doc.get("services").and_then(Yaml::as_mapping).unwrap_or_else(|| panic!("{COMPOSE}: no `services`"));
    let mut by_subcommand: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut partitions = None;
    let mut all_ports = BTreeSet::new();
    let mut all_loaded = true;
    for (name, service) in services {
        let name = name.as_str().unwrap_or("?").to_string();
        let who = format!("service `{name}`");
        let image = str_at(service, &["image"]).unwrap_or("");
        let builds = service.get("build").is_some();
        if !(builds || is_chainwatch_image(image)) {
            continue;
        }
        if builds {
            let dockerfile = str_at(service, &["build", "dockerfile"]).unwrap_or("Dockerfile");
            let context = str_at(service, &["build", "context"]).or_else(|| str_at(service, &["build"])).unwrap_or(".");
            let path = repo_root().join(context).join(dockerfile);
            if !path.is_file() {
                p.add(COMPOSE, format!("{who}: builds from `{context}/{dockerfile}`, which does not exist"));
            }
        }
        let argv = compose_argv(service);
        let subcommand = match chainwatch_subcommand(&argv, &cli) {
            Ok((sub, _)) => sub,
            Err(e) => {
                p.add(COMPOSE, format!("{who}: {e}"));
                String::new()
            }
        };
        by_subcommand.entry(subcommand.clone()).or_default().push(name.clone());
        let env = compose_env(service);
        check_env_names(COMPOSE, &who, &env, &cli, &mut p);
        let Some(cfg) = effective_config(COMPOSE, &who, "", &env, &mut p) else {
            all_loaded = false;
            continue;
        };
        check_config_topics(COMPOSE, &who, &cfg, &mut p);
        partitions.get_or_insert(cfg.kafka.partitions);
        if partitions != Some(cfg.kafka.partitions) {
            p.add(COMPOSE, format!("{who}: kafka.partitions = {} differs from other stages", cfg.kafka.partitions));
        }
        let listens = listen_ports(&cfg);
        let mut declared = BTreeSet::new();
        for entry in seq(service.get("ports")).iter().chain(seq(service.get("expose"))) {
            match compose_container_port(entry) {
                Some(port) if listens.contains(&port) => {
                    declared.insert(port);
                }
                Some(port) => p.add(COMPOSE, format!("{who}: port {port} is not one it listens on {listens:?} (sql.http_listen, metrics.prometheus_listen)")),
                None => p.add(COMPOSE, format!("{who}: port entry {entry:?} does not parse")),
            }
        }
        for port in listens.difference(&declared) {
            p.add(COMPOSE, format!("{who}: listens on {port} but neither exposes nor publishes it"));
        }
        all_ports.extend(listens);

        if subcommand == "probe" {
            check_compose_probe(&who, service, &mut p);
        }
        if subcommand == "parse" {
            let replicas = at(service, &["deploy", "replicas"]).and_then(Yaml::as_i64);
            match replicas {
                None => p.add(COMPOSE, format!("{who}: parser has no deploy.replicas")),
                Some(r) if r > i64::from(cfg.kafka.partitions) => p.add(
                    COMPOSE,
                    format!(
                        "{who}: deploy.replicas = {r} exceeds kafka.partitions = {} (idle members)",
                        cfg.kafka.partitions
                    ),
                ),
                Some(_) => {}
            }
        }
    }
    if !has_partition_comment(&docs[0].text) {
        p.add(COMPOSE, "no comment says the partition count of cw.raw.segments bounds the useful parser replicas");
    }
    for stage in ["probe", "parse", "chain", "policy"] {
        if !by_subcommand.contains_key(stage) {
            p.add(COMPOSE, format!("no service runs `chainwatch {stage}`"));
        }
    }
    if let Some(parts) = partitions {
        check_topic_creation(doc, parts, &mut p);
    }
    check_kafka_kraft(services, &mut p);
    // The Dockerfile's EXPOSE is compared with what the stages listen on, once they all load.
    check_dockerfile(all_loaded.then_some(&all_ports), &mut p);
    p.check();
}

fn check_compose_probe(who: &str, service: &Yaml, p: &mut Problems) {
    if str_at(service, &["pid"]) != Some("host") {
        p.add(COMPOSE, format!("{who}: the probe needs `pid: host`"));
    }
    if at(service, &["privileged"]).and_then(Yaml::as_bool) == Some(true) {
        p.add(COMPOSE, format!("{who}: the probe must not be privileged (add capabilities instead)"));
    }
    let caps: BTreeSet<String> = seq(service.get("cap_add"))
        .iter()
        .filter_map(Yaml::as_str)
        .map(|c| c.trim_start_matches("CAP_").to_string())
        .collect();
    for cap in PROBE_CAPABILITIES {
        if !caps.contains(cap) {
            p.add(COMPOSE, format!("{who}: cap_add lacks {cap} (has {caps:?})"));
        }
    }
    if caps.contains("SYS_ADMIN") {
        p.add(COMPOSE, format!("{who}: cap_add has SYS_ADMIN, which the probe avoids (tracefs/bpffs are mounted)"));
    }
    let volumes = compose_volumes(service);
    for (src, dst, ro) in PROBE_MOUNTS {
        match volumes.iter().find(|(s, d, _)| s == src && d == dst) {
            None => p.add(COMPOSE, format!("{who}: the probe lacks the volume {src}:{dst}")),
            Some((_, _, is_ro)) if ro && !is_ro => {
                p.add(COMPOSE, format!("{who}: volume {src}:{dst} must be read-only (:ro)"))
            }
            Some(_) => {}
        }
    }
}

/// The one-shot topic service must create exactly schemas' topics with kafka.partitions.
fn check_topic_creation(doc: &Yaml, partitions: i32, p: &mut Problems) {
    let Some(services) = doc.get("services").and_then(Yaml::as_mapping) else { return };
    let mut created = BTreeSet::new();
    for (name, service) in services {
        let script = compose_argv(service).join(" ");
        if !script.contains("kafka-topics.sh") {
            continue;
        }
        let name = name.as_str().unwrap_or("?");
        for line in script.lines().filter(|l| l.contains("--create")) {
            let words: Vec<&str> = line.split_whitespace().collect();
            let arg = |flag: &str| words.iter().position(|w| *w == flag).and_then(|i| words.get(i + 1)).copied();
            if let Some(t) = arg("--topic") {
                created.insert(t.to_string());
            }
            if arg("--partitions").and_then(|n| n.parse::<i32>().ok()) != Some(partitions) {
                p.add(
                    COMPOSE,
                    format!("service `{name}`: `{line}` does not use --partitions {partitions} (kafka.partitions)"),
                );
            }
        }
    }
    let all: BTreeSet<String> = topics::ALL.iter().map(|t| t.to_string()).collect();
    if created.is_empty() {
        return; // chainwatch creates them itself (kafka.create_topics)
    }
    for missing in all.difference(&created) {
        p.add(COMPOSE, format!("topic `{missing}` is not created by the kafka-topics service"));
    }
}

fn check_kafka_kraft(services: &serde_norway::Mapping, p: &mut Problems) {
    let apache: Vec<_> = services
        .iter()
        .filter(|(_, s)| str_at(s, &["image"]).is_some_and(|i| i.starts_with("apache/kafka:")))
        .collect();
    if apache.is_empty() {
        p.add(COMPOSE, "no service runs the apache/kafka image");
        return;
    }
    // The broker is the apache/kafka service with a process role (kafka-topics only runs a tool).
    let broker = apache.iter().find(|(_, s)| compose_env(s).contains_key("KAFKA_PROCESS_ROLES"));
    let Some((name, kafka)) = broker.copied() else {
        p.add(COMPOSE, "no apache/kafka service sets KAFKA_PROCESS_ROLES (a KRaft broker)");
        return;
    };
    let who = format!("service `{}`", name.as_str().unwrap_or("?"));
    let env = compose_env(kafka);
    for key in [
        "KAFKA_NODE_ID",
        "KAFKA_PROCESS_ROLES",
        "KAFKA_LISTENERS",
        "KAFKA_ADVERTISED_LISTENERS",
        "KAFKA_CONTROLLER_LISTENER_NAMES",
        "KAFKA_CONTROLLER_QUORUM_VOTERS",
        "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP",
    ] {
        if env.get(key).cloned().flatten().is_none_or(|v| v.is_empty()) {
            p.add(COMPOSE, format!("{who}: KRaft needs {key}"));
        }
    }
    let roles = env.get("KAFKA_PROCESS_ROLES").cloned().flatten().unwrap_or_default();
    let roles: BTreeSet<&str> = roles.split(',').map(str::trim).collect();
    if roles != BTreeSet::from(["broker", "controller"]) {
        p.add(COMPOSE, format!("{who}: KAFKA_PROCESS_ROLES = {roles:?}, want broker,controller"));
    }
    let node = env.get("KAFKA_NODE_ID").cloned().flatten().unwrap_or_default();
    let voters = env.get("KAFKA_CONTROLLER_QUORUM_VOTERS").cloned().flatten().unwrap_or_default();
    if !voters.split(',').any(|v| v.split('@').next() == Some(node.as_str())) {
        p.add(COMPOSE, format!("{who}: KAFKA_CONTROLLER_QUORUM_VOTERS `{voters}` does not name node {node}"));
    }
}

// ---------------------------------------------------------------------------------------
// Dockerfile
// ---------------------------------------------------------------------------------------

fn check_dockerfile(ports: Option<&BTreeSet<u16>>, p: &mut Problems) {
    const FILE: &str = "Dockerfile";
    let text = read(FILE);
    // Join continuation lines, drop comments.
    let joined = text.replace("\\\n", " ");
    let lines: Vec<&str> = joined.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect();
    let froms: Vec<&str> = lines.iter().filter_map(|l| l.strip_prefix("FROM ")).map(str::trim).collect();
    let (Some(builder), Some(runtime)) = (froms.first(), froms.last()) else {
        p.add(FILE, "has no FROM");
        return;
    };
    let builder_image = builder.split_whitespace().next().unwrap_or("");
    if !builder_image.starts_with("rust:1.95") {
        p.add(FILE, format!("builder `{builder_image}` is not rust:1.95 (the workspace's rust-version)"));
    }
    if *runtime != "debian:bookworm-slim" {
        p.add(FILE, format!("runtime `{runtime}` is not debian:bookworm-slim"));
    }
    // The binary's glibc must be the runtime's: the builder's Debian must match.
    if let Some(codename) = builder_image.strip_prefix("rust:1.95-")
        && !runtime.contains(codename)
    {
        p.add(FILE, format!("builder Debian `{codename}` differs from the runtime `{runtime}`"));
    }
    if froms.len() < 2 {
        p.add(FILE, "is not multi-stage (builder + runtime)");
    }
    let installs: String =
        lines.iter().filter(|l| l.contains("apt-get install")).copied().collect::<Vec<_>>().join(" ");
    for pkg in ["clang", "libbpf-dev"] {
        if !installs.split_whitespace().any(|w| w.starts_with(pkg)) {
            p.add(FILE, format!("builder does not install {pkg} (the probe's eBPF object needs it)"));
        }
    }
    let cli: toml::Table = read("cli/Cargo.toml").parse().unwrap_or_else(|e| panic!("cli/Cargo.toml: {e}"));
    let package = cli.get("package").and_then(|p| p.get("name")).and_then(toml::Value::as_str).unwrap_or("");
    let bins: Vec<&str> = cli
        .get("bin")
        .and_then(toml::Value::as_array)
        .map(|a| a.iter().filter_map(|b| b.get("name").and_then(toml::Value::as_str)).collect())
        .unwrap_or_default();
    if !bins.contains(&"chainwatch") && package != "chainwatch" {
        p.add("cli/Cargo.toml", "builds no `chainwatch` binary");
    }
    let build = lines.iter().find(|l| l.contains("cargo build")).copied().unwrap_or("");
    let words: Vec<&str> = build.split_whitespace().collect();
    let arg = |flag: &str| words.iter().position(|w| *w == flag).and_then(|i| words.get(i + 1)).copied();
    if arg("-p").or(arg("--package")) != Some(package) {
        p.add(FILE, format!("`cargo build` does not build package `{package}` (cli/Cargo.toml): `{build}`"));
    }
    if arg("--bin") != Some("chainwatch") || !words.contains(&"--release") {
        p.add(FILE, format!("`cargo build` is not `--release --bin chainwatch`: `{build}`"));
    }
    if !lines.iter().any(|l| l.starts_with("COPY --from=") && l.ends_with("/usr/local/bin/chainwatch")) {
        p.add(FILE, "the runtime stage does not put the binary at /usr/local/bin/chainwatch (on PATH)");
    }
    let exposed: BTreeSet<u16> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("EXPOSE "))
        .flat_map(|l| l.split_whitespace())
        .filter_map(|w| w.split('/').next()?.parse().ok())
        .collect();
    if let Some(ports) = ports
        && &exposed != ports
    {
        p.add(FILE, format!("EXPOSE {exposed:?} differs from the ports the stages listen on {ports:?}"));
    }
}

// ---------------------------------------------------------------------------------------
// k8s/
// ---------------------------------------------------------------------------------------

fn kind(doc: &YamlDoc) -> &str {
    str_at(&doc.value, &["kind"]).unwrap_or("")
}

fn name(doc: &YamlDoc) -> &str {
    str_at(&doc.value, &["metadata", "name"]).unwrap_or("")
}

/// The one ConfigMap that holds chainwatch.toml: (name, toml text).
fn k8s_configmap(docs: &[YamlDoc]) -> (String, String, String) {
    let found: Vec<&YamlDoc> =
        docs.iter().filter(|d| kind(d) == "ConfigMap" && str_at(&d.value, &["data", CONFIG_KEY]).is_some()).collect();
    assert_eq!(found.len(), 1, "k8s/: expected one ConfigMap with data.{CONFIG_KEY}, found {}", found.len());
    let d = found[0];
    (d.file.clone(), name(d).to_string(), str_at(&d.value, &["data", CONFIG_KEY]).unwrap_or("").to_string())
}

fn container_env(container: &Yaml) -> Env {
    seq(container.get("env"))
        .iter()
        .filter_map(|e| Some((str_at(e, &["name"])?.to_string(), at(e, &["value"]).and_then(scalar))))
        .collect()
}

fn container_argv(container: &Yaml) -> Vec<String> {
    seq(container.get("command")).iter().chain(seq(container.get("args"))).filter_map(scalar).collect()
}

/// A chainwatch container of a workload, with what the checks need.
struct Stage<'a> {
    doc: &'a YamlDoc,
    pod: &'a Yaml,
    container: &'a Yaml,
    who: String,
    subcommand: String,
    config: ChainwatchConfig,
}

fn k8s_stages<'a>(
    docs: &'a [YamlDoc],
    cm_name: &str,
    cm_toml: &str,
    cli: &CliSurface,
    p: &mut Problems,
) -> Vec<Stage<'a>> {
    let mut stages = Vec::new();
    for doc in docs.iter().filter(|d| matches!(kind(d), "Deployment" | "DaemonSet" | "StatefulSet" | "Job")) {
        let Some(pod) = at(&doc.value, &["spec", "template", "spec"]) else {
            p.add(&doc.file, format!("{} {}: no spec.template.spec", kind(doc), name(doc)));
            continue;
        };
        for container in seq(pod.get("containers")).iter().chain(seq(pod.get("initContainers"))) {
            let image = str_at(container, &["image"]).unwrap_or("");
            if !is_chainwatch_image(image) {
                continue;
            }
            let who = format!("{} {} container {}", kind(doc), name(doc), str_at(container, &["name"]).unwrap_or("?"));
            let argv = container_argv(container);
            let (subcommand, config_path) = match chainwatch_subcommand(&argv, cli) {
                Ok(s) => s,
                Err(e) => {
                    p.add(&doc.file, format!("{who}: {e}"));
                    continue;
                }
            };
            check_config_mount(doc, pod, container, &who, config_path.as_deref(), cm_name, p);
            let env = container_env(container);
            check_env_names(&doc.file, &who, &env, cli, p);
            let Some(config) = effective_config(&doc.file, &who, cm_toml, &env, p) else { continue };
            check_config_topics(&doc.file, &who, &config, p);
            stages.push(Stage { doc, pod, container, who, subcommand, config });
        }
    }
    stages
}

/// `--config FILE` must be chainwatch.toml of the ConfigMap, mounted into the container.
fn check_config_mount(
    doc: &YamlDoc,
    pod: &Yaml,
    container: &Yaml,
    who: &str,
    path: Option<&str>,
    cm: &str,
    p: &mut Problems,
) {
    let Some(path) = path else {
        p.add(&doc.file, format!("{who}: no `--config` (./chainwatch.toml is not in the image)"));
        return;
    };
    let volume = seq(pod.get("volumes")).iter().find(|v| str_at(v, &["configMap", "name"]) == Some(cm));
    let Some(vname) = volume.and_then(|v| str_at(v, &["name"])) else {
        p.add(&doc.file, format!("{who}: the pod has no volume of ConfigMap `{cm}`"));
        return;
    };
    let mounted = seq(container.get("volumeMounts")).iter().any(|m| {
        str_at(m, &["name"]) == Some(vname)
            && str_at(m, &["mountPath"]).is_some_and(|mp| {
                let sub = str_at(m, &["subPath"]);
                match sub {
                    Some(s) => s == CONFIG_KEY && mp == path,
                    None => format!("{}/{CONFIG_KEY}", mp.trim_end_matches('/')) == path,
                }
            })
    });
    if !mounted {
        p.add(&doc.file, format!("{who}: `--config {path}` is not {CONFIG_KEY} of the mounted ConfigMap `{cm}`"));
    }
}

fn container_ports(container: &Yaml) -> Vec<(Option<String>, u16)> {
    seq(container.get("ports"))
        .iter()
        .filter_map(|port| {
            let n = at(port, &["containerPort"]).and_then(Yaml::as_u64).and_then(|n| u16::try_from(n).ok())?;
            Some((str_at(port, &["name"]).map(str::to_string), n))
        })
        .collect()
}

#[test]
fn k8s_manifests_use_only_real_topics_keys_subcommands_and_ports() {
    let mut p = Problems::default();
    let docs = k8s_docs();
    for d in &docs {
        let mut texts = vec![d.text.clone()];
        strings(&d.value, &mut texts);
        check_names_in(&d.file, &texts, &mut p);
        if str_at(&d.value, &["apiVersion"]).is_none() || kind(d).is_empty() {
            p.add(&d.file, "a document without apiVersion or kind");
        }
    }
    let (cm_file, cm_name, cm_toml) = k8s_configmap(&docs);
    match load_from_str(&cm_toml) {
        Ok(cfg) => check_config_topics(&cm_file, &format!("ConfigMap {cm_name}"), &cfg, &mut p),
        Err(e) => p.add(&cm_file, format!("ConfigMap {cm_name}: {CONFIG_KEY} does not load: {e}")),
    }
    let cli = cli_surface();
    let stages = k8s_stages(&docs, &cm_name, &cm_toml, &cli, &mut p);

    for s in &stages {
        let file = &s.doc.file;
        let listens = listen_ports(&s.config);
        let ports = container_ports(s.container);
        for (_, port) in &ports {
            if !listens.contains(port) {
                p.add(file, format!("{}: containerPort {port} is not one it listens on {listens:?}", s.who));
            }
        }
        for port in &listens {
            if !ports.iter().any(|(_, n)| n == port) {
                p.add(file, format!("{}: listens on {port} but declares no containerPort {port}", s.who));
            }
        }
        let annotated = str_at(&s.doc.value, &["spec", "template", "metadata", "annotations", "prometheus.io/port"]);
        if let Some(a) = annotated {
            let metrics = s.config.metrics.prometheus_listen.as_deref().and_then(listen_port);
            if a.parse::<u16>().ok() != metrics {
                p.add(
                    file,
                    format!("{}: prometheus.io/port `{a}` is not metrics.prometheus_listen's port {metrics:?}", s.who),
                );
            }
        }
        for probe in ["readinessProbe", "livenessProbe", "startupProbe"] {
            for kind in ["tcpSocket", "httpGet"] {
                if let Some(port) = at(s.container, &[probe, kind, "port"]) {
                    let ok = match port {
                        Yaml::String(n) => ports.iter().any(|(name, _)| name.as_deref() == Some(n.as_str())),
                        other => other.as_u64().is_some_and(|n| listens.contains(&(n as u16))),
                    };
                    if !ok {
                        p.add(file, format!("{}: {probe} port {port:?} is not a port it listens on", s.who));
                    }
                }
            }
        }
    }

    check_services(&docs, &stages, &mut p);
    check_k8s_roles(&stages, &mut p);
    check_kustomization(&docs, &mut p);
    check_namespaces(&docs, &mut p);
    p.check();
}

/// Every Service selects a chainwatch pod and targets a port that pod listens on.
fn check_services(docs: &[YamlDoc], stages: &[Stage], p: &mut Problems) {
    for svc in docs.iter().filter(|d| kind(d) == "Service") {
        let who = format!("Service {}", name(svc));
        let Some(selector) = at(&svc.value, &["spec", "selector"]).and_then(Yaml::as_mapping) else {
            p.add(&svc.file, format!("{who}: no selector"));
            continue;
        };
        let selected: Vec<&Stage> = stages
            .iter()
            .filter(|s| {
                let labels = at(&s.doc.value, &["spec", "template", "metadata", "labels"]);
                selector.iter().all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
            })
            .collect();
        if selected.is_empty() {
            p.add(&svc.file, format!("{who}: its selector matches no chainwatch pod"));
            continue;
        }
        for port in seq(at(&svc.value, &["spec", "ports"])) {
            let target = port.get("targetPort").or_else(|| port.get("port"));
            for s in &selected {
                let ports = container_ports(s.container);
                let listens = listen_ports(&s.config);
                let resolved = match target {
                    Some(Yaml::String(n)) => {
                        ports.iter().find(|(name, _)| name.as_deref() == Some(n.as_str())).map(|(_, n)| *n)
                    }
                    Some(other) => other.as_u64().and_then(|n| u16::try_from(n).ok()),
                    None => None,
                };
                match resolved {
                    Some(n) if listens.contains(&n) => {}
                    _ => p.add(
                        &svc.file,
                        format!("{who}: targetPort {target:?} is not a port {} listens on {listens:?}", s.who),
                    ),
                }
            }
        }
    }
}

/// One workload per stage; the probe's privileges; the parser's replicas; the SQL token.
fn check_k8s_roles(stages: &[Stage], p: &mut Problems) {
    for stage in ["probe", "parse", "chain", "policy"] {
        if !stages.iter().any(|s| s.subcommand == stage) {
            p.add("k8s/", format!("no workload runs `chainwatch {stage}`"));
        }
    }
    for s in stages {
        let file = &s.doc.file;
        match s.subcommand.as_str() {
            "probe" => check_k8s_probe(s, p),
            "parse" => {
                if kind(s.doc) != "Deployment" {
                    p.add(file, format!("{}: parser workers should be a Deployment", s.who));
                }
                match at(&s.doc.value, &["spec", "replicas"]).and_then(Yaml::as_i64) {
                    None => p.add(file, format!("{}: no spec.replicas", s.who)),
                    Some(r) if r > i64::from(s.config.kafka.partitions) => p.add(
                        file,
                        format!(
                            "{}: replicas {r} exceeds kafka.partitions {} (idle members)",
                            s.who, s.config.kafka.partitions
                        ),
                    ),
                    Some(_) => {}
                }
                if !has_partition_comment(&s.doc.text) {
                    p.add(
                        file,
                        format!(
                            "{}: no comment says the partition count of cw.raw.segments bounds the useful replicas",
                            s.who
                        ),
                    );
                }
            }
            "policy" => {
                let token = seq(s.container.get("env"))
                    .iter()
                    .find(|e| str_at(e, &["name"]) == Some("CHAINWATCH__SQL__BEARER_TOKEN"));
                if token.and_then(|e| at(e, &["valueFrom", "secretKeyRef", "name"])).is_none() {
                    p.add(
                        file,
                        format!("{}: CHAINWATCH__SQL__BEARER_TOKEN does not come from a Secret (secretKeyRef)", s.who),
                    );
                }
                if s.config.sql.http_listen.is_none() {
                    p.add(file, format!("{}: the policy engine sets no sql.http_listen", s.who));
                }
            }
            _ => {}
        }
        if s.subcommand != "probe" && kind(s.doc) != "Deployment" {
            p.add(file, format!("{}: `{}` should run as a Deployment", s.who, s.subcommand));
        }
    }
}

fn check_k8s_probe(s: &Stage, p: &mut Problems) {
    let file = &s.doc.file;
    let who = &s.who;
    if kind(s.doc) != "DaemonSet" {
        p.add(file, format!("{who}: the probe must be a DaemonSet (one per node)"));
    }
    if s.pod.get("hostPID").and_then(Yaml::as_bool) != Some(true) {
        p.add(file, format!("{who}: the probe needs hostPID: true"));
    }
    let sc = s.container.get("securityContext");
    if sc.and_then(|c| c.get("privileged")).and_then(Yaml::as_bool) == Some(true) {
        p.add(file, format!("{who}: the probe must not be privileged (add capabilities instead)"));
    }
    let caps: BTreeSet<String> = seq(sc.and_then(|c| at(c, &["capabilities", "add"])))
        .iter()
        .filter_map(Yaml::as_str)
        .map(|c| c.trim_start_matches("CAP_").to_string())
        .collect();
    for cap in PROBE_CAPABILITIES {
        if !caps.contains(cap) {
            p.add(file, format!("{who}: capabilities.add lacks {cap} (has {caps:?})"));
        }
    }
    if caps.contains("SYS_ADMIN") {
        p.add(
            file,
            format!("{who}: capabilities.add has SYS_ADMIN, which the probe avoids (tracefs/bpffs are mounted)"),
        );
    }
    for (host, target, ro) in PROBE_MOUNTS {
        let volume = seq(s.pod.get("volumes")).iter().find(|v| str_at(v, &["hostPath", "path"]) == Some(host));
        let Some(vname) = volume.and_then(|v| str_at(v, &["name"])) else {
            p.add(file, format!("{who}: no hostPath volume {host}"));
            continue;
        };
        let mount = seq(s.container.get("volumeMounts")).iter().find(|m| str_at(m, &["name"]) == Some(vname));
        match mount {
            Some(m) if str_at(m, &["mountPath"]) != Some(target) => p.add(
                file,
                format!(
                    "{who}: hostPath {host} is mounted at {:?}, not {target}",
                    str_at(m, &["mountPath"]).unwrap_or("")
                ),
            ),
            Some(m) if ro && m.get("readOnly").and_then(Yaml::as_bool) != Some(true) => {
                p.add(file, format!("{who}: the mount of {host} at {target} must be readOnly"));
            }
            Some(_) => {}
            None => p.add(file, format!("{who}: hostPath {host} is not mounted (want {target})")),
        }
    }
    let node_id = seq(s.container.get("env")).iter().find(|e| str_at(e, &["name"]) == Some("CHAINWATCH__NODE__ID"));
    if node_id.and_then(|e| str_at(e, &["valueFrom", "fieldRef", "fieldPath"])) != Some("spec.nodeName") {
        p.add(file, format!("{who}: CHAINWATCH__NODE__ID must come from the downward API (fieldRef spec.nodeName)"));
    }
}

/// kustomization.yaml lists every other manifest, and only existing ones.
fn check_kustomization(docs: &[YamlDoc], p: &mut Problems) {
    const FILE: &str = "k8s/kustomization.yaml";
    let Some(k) = docs.iter().find(|d| d.file == FILE) else {
        p.add(FILE, "missing");
        return;
    };
    let listed: BTreeSet<String> =
        seq(k.value.get("resources")).iter().filter_map(Yaml::as_str).map(|r| format!("k8s/{r}")).collect();
    let files: BTreeSet<String> = k8s_files().into_iter().filter(|f| f != FILE).collect();
    for missing in files.difference(&listed) {
        p.add(FILE, format!("does not list `{missing}` in resources"));
    }
    for extra in listed.difference(&files) {
        p.add(FILE, format!("lists `{extra}`, which does not exist"));
    }
}

/// Every namespaced object lives in the Namespace the manifests create.
fn check_namespaces(docs: &[YamlDoc], p: &mut Problems) {
    let namespaces: Vec<&str> = docs.iter().filter(|d| kind(d) == "Namespace").map(name).collect();
    if namespaces.len() != 1 {
        p.add("k8s/", format!("expected one Namespace, found {namespaces:?}"));
        return;
    }
    for d in docs.iter().filter(|d| !matches!(kind(d), "Namespace" | "Kustomization")) {
        let ns = str_at(&d.value, &["metadata", "namespace"]);
        if ns != Some(namespaces[0]) {
            p.add(&d.file, format!("{} {}: namespace {ns:?} is not `{}`", kind(d), name(d), namespaces[0]));
        }
    }
}

// ---------------------------------------------------------------------------------------
// chainwatch.example.toml
// ---------------------------------------------------------------------------------------

/// Every key path of the default config: (dotted key, default value).
fn default_keys(tree: &Json, prefix: &str, out: &mut Vec<(String, Json)>) {
    if let Json::Object(map) = tree {
        for (k, v) in map {
            let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
            match v {
                Json::Object(m) if !m.is_empty() => default_keys(v, &key, out),
                _ => out.push((key, v.clone())),
            }
        }
    }
}

/// Keys documented only as comments (`# key = value`) under a `[section]` header.
fn commented_keys(text: &str) -> BTreeSet<String> {
    let mut section = String::new();
    let mut out = BTreeSet::new();
    for line in text.lines().map(str::trim) {
        if let Some(h) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = h.trim().to_string();
        } else if let Some(c) = line.strip_prefix('#')
            && let Some((k, _)) = c.trim().split_once(" = ")
            && k.chars().all(|ch| ch.is_ascii_lowercase() || ch == '_')
        {
            out.insert(if section.is_empty() { k.to_string() } else { format!("{section}.{k}") });
        }
    }
    out
}

#[test]
fn example_config_loads_and_documents_every_key() {
    const FILE: &str = "chainwatch.example.toml";
    let mut p = Problems::default();
    let text = read(FILE);
    match load_from_str(&text) {
        Ok(cfg) if cfg == ChainwatchConfig::default() => {}
        Ok(cfg) => {
            let mut loaded = Vec::new();
            default_keys(&serde_json::to_value(&cfg).unwrap_or_default(), "", &mut loaded);
            let mut defaults = Vec::new();
            default_keys(&default_tree(), "", &mut defaults);
            let defaults: BTreeMap<String, Json> = defaults.into_iter().collect();
            for (key, value) in loaded {
                if defaults.get(&key) != Some(&value) {
                    p.add(FILE, format!("sets `{key}` = {value}, not its default {:?}", defaults.get(&key)));
                }
            }
        }
        Err(e) => p.add(FILE, format!("does not load: {e}")),
    }
    let table: toml::Table = text.parse().unwrap_or_else(|e| panic!("{FILE}: does not parse as TOML: {e}"));
    let table = toml::Value::Table(table);
    let commented = commented_keys(&text);
    let mut keys = Vec::new();
    default_keys(&default_tree(), "", &mut keys);
    assert!(keys.len() > 50, "{FILE}: the default config has only {} keys?", keys.len());
    for (key, default) in &keys {
        let set = key.split('.').try_fold(&table, |t, k| t.get(k));
        match (set, default) {
            (Some(_), _) => {}
            (None, Json::Null) if commented.contains(key) => {}
            (None, Json::Null) => {
                p.add(FILE, format!("does not document `{key}` (unset by default: show it as `# {key} = ...`)"))
            }
            (None, _) => p.add(FILE, format!("does not set `{key}` to its default {default}")),
        }
    }
    // Every key line has a comment right above it.
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    for (i, line) in lines.iter().enumerate() {
        if line.is_empty() || line.starts_with('#') || line.starts_with('[') {
            continue;
        }
        let above = i.checked_sub(1).and_then(|j| lines.get(j)).copied().unwrap_or("");
        if !above.starts_with('#') {
            p.add(FILE, format!("line {}: `{line}` has no comment above it", i + 1));
        }
    }
    p.check();
}

// ---------------------------------------------------------------------------------------
// The checks themselves must be able to fail.
// ---------------------------------------------------------------------------------------

#[test]
fn env_names_map_onto_config_keys() {
    let d = default_tree();
    assert_eq!(
        env_key("CHAINWATCH__BUS__MEMORY__PARTITIONS", &d).map(|k| k.0.join(".")),
        Ok("bus.memory.partitions".into())
    );
    assert_eq!(env_key("CHAINWATCH__KAFKA__BROKERS", &d).map(|k| k.0.join(".")), Ok("kafka.brokers".into()));
    assert!(env_key("CHAINWATCH__SQL__BEARER_TOKEN", &d).is_ok());
    assert!(env_key("CHAINWATCH__KAFKA__PROPERTIES__LINGER_MS", &d).is_ok(), "a map takes any key");
    for bad in [
        "CHAINWATCH__KAFKA__BROKERZ",
        "CHAINWATCH__KAFKA",
        "CHAINWATCH_KAFKA_BROKERS",
        "CHAINWATCH__BUS____KIND",
        "CHAINWATCH__NODE__ID__X",
    ] {
        let e = env_key(bad, &d).expect_err(bad);
        assert!(e.contains(bad), "{e}");
    }
}

#[test]
fn bad_manifest_values_are_reported_with_file_and_value() {
    let mut p = Problems::default();
    let env: Env = [
        ("CHAINWATCH__KAFKA__BROKERZ".to_string(), Some("k:9092".to_string())),
        ("CHAINWATCH__BUS__MEMORY__PARTITIONS".to_string(), Some("many".to_string())),
    ]
    .into();
    assert!(effective_config("x.yaml", "pod p", "", &env, &mut p).is_none());
    let bad_value: Env = [("CHAINWATCH__BUS__KIND".to_string(), Some("rabbit".to_string()))].into();
    assert!(effective_config("x.yaml", "pod p", "", &bad_value, &mut p).is_none());
    let all = p.0.join("\n");
    assert!(all.contains("x.yaml: pod p: `CHAINWATCH__KAFKA__BROKERZ`"), "{all}");
    assert!(all.contains("\"many\""), "{all}");
    assert!(all.contains("bus.kind"), "{all}");

    let mut p = Problems::default();
    check_names_in("y.yml", &["--topic cw.raw.segmentz".into(), "group cw-parser".into()], &mut p);
    let all = p.0.join("\n");
    assert!(all.contains("y.yml: topic `cw.raw.segmentz`"), "{all}");
    assert!(all.contains("`cw-parser`"), "{all}");

    let cli = cli_surface();
    let argv = |s: &str| s.split_whitespace().map(str::to_string).collect::<Vec<_>>();
    assert_eq!(
        chainwatch_subcommand(&argv("chainwatch --config /c probe"), &cli),
        Ok(("probe".into(), Some("/c".into())))
    );
    assert_eq!(
        chainwatch_subcommand(&argv("chainwatch --config=/c parse"), &cli),
        Ok(("parse".into(), Some("/c".into())))
    );
    assert!(chainwatch_subcommand(&argv("chainwatch parser"), &cli).is_err_and(|e| e.contains("parser")));
    assert!(chainwatch_subcommand(&argv("chainwatch --conf /c probe"), &cli).is_err_and(|e| e.contains("--conf")));
    assert!(chainwatch_subcommand(&argv("/bin/sh -c x"), &cli).is_err());
    assert!(chainwatch_subcommand(&[], &cli).is_err());
    let mut p = Problems::default();
    let env: Env = [("CHAINWATCH_NODE_ID".to_string(), Some("n".to_string()))].into();
    check_env_names("z.yaml", "pod q", &env, &cli, &mut p);
    assert!(p.0.join("\n").contains("z.yaml: pod q: `CHAINWATCH_NODE_ID`"), "{:?}", p.0);
}

#[test]
fn word_scanner_finds_topics_in_scripts_and_toml() {
    let text = "raw_segments = \"cw.raw.segments\"\n--topic cw.chains --config x; see cw.violations.";
    assert_eq!(words_with_prefix(text, "cw."), ["cw.raw.segments", "cw.chains", "cw.violations"]);
    assert!(words_with_prefix("xcw.foo", "cw.").is_empty());
    assert_eq!(compose_interpolate("${A:-b}"), Some("b".into()));
    assert_eq!(listen_port("0.0.0.0:8181"), Some(8181));
    assert_eq!(kebab("Probe"), "probe");
    assert_eq!(kebab("ListTopics"), "list-topics");
    assert_eq!(kebab("bearer_token"), "bearer-token");
    assert_eq!(compose_container_port(&Yaml::String("127.0.0.1:8181:8181/tcp".into())), Some(8181));
}
