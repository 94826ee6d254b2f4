//! Issue #8 end to end: the seed scenario (tests/scenario) live, watched by the real eBPF probe.
//!
//! `distributed_pipeline_flags_the_exfiltration_and_not_its_benign_twin`: a tansu broker, then
//! `chainwatch probe` (scoped by comm to the agent's wrapper and its descendants), two
//! `chainwatch parse` workers in group cw-parsers, one `chainwatch chain` and one
//! `chainwatch policy`, each a separate process; PostgreSQL and the stand-ins of
//! tests/scenario; then the exfiltration agent and its benign twin. The exfiltration's
//! "PII uploaded to an unauthorized external destination" violation must arrive on
//! cw.violations (OCSF JSON) for a 7-step chain (cw.chains, Avro) with the pastebin upload and a
//! PII flow from the PostgreSQL step to the upload step, within 5 s of the agent's exit; the
//! benign twin's chain must close without a violation.
//!
//! `embedded_run_gives_the_same_chain_and_violation`: `chainwatch run --format json --
//! tests/scenario/run-agent-only` against the same servers.
//!
//! Needs root (eBPF, PostgreSQL as the postgres user), `tests/scenario/setup.sh` done, tansu
//! (see chainwatch_testkit::tansu_binary) and the `chainwatch` binary built in the same target
//! dir (`cargo build -p chainwatch`) or named by $CHAINWATCH_BIN. Without them the tests print
//! why and pass, unless CHAINWATCH_REQUIRE_E2E=1, where they fail.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chainwatch_bus::{Bus, KafkaBus};
use chainwatch_config::KafkaConfig;
use chainwatch_schemas::codec::record_name;
use chainwatch_schemas::{AvroRecord, Chain, ChainStatus, JsonRecord, ProcessEvent, SemanticEvent, Violation};

/// The policy the exfiltration must trip, and only it among the scenario's chains.
const EXFIL_TITLE: &str = "PII uploaded to an unauthorized external destination";
/// The scenario's chain: chat, SQL, chat (stream), vector query, Jira, Slack, upload.
const EXFIL_STEPS: usize = 7;
/// Issue #8's acceptance: the violation is on cw.violations within 5 s of the upload.
const LATENCY_BUDGET: Duration = Duration::from_secs(5);
/// The comm the probe selects: the agent's wrapper (a copy of run-agent-only) under a name no
/// other process on this shared machine has. Its python and children are its descendants.
const AGENT_COMM: &str = "cwe2e-agent";
/// The fake OpenAI key of agent.py: it must never leave the parsers.
const FAKE_API_KEY: &str = "sk-test-chainwatch-0000";

/// One test at a time: both watch the scenario and start servers.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

// ---------------------------------------------------------------------------------------------
// Prerequisites
// ---------------------------------------------------------------------------------------------

/// What the tests run.
struct Prereqs {
    chainwatch: PathBuf,
    scenario: PathBuf,
    venv_python: PathBuf,
    pki: PathBuf,
    pg_bin: PathBuf,
}

/// The prerequisites, or `None` after printing why they are missing (and panicking when
/// CHAINWATCH_REQUIRE_E2E=1).
fn prerequisites(test: &str) -> Option<Prereqs> {
    let mut missing = Vec::new();
    if effective_uid() != Some(0) {
        missing.push("not root (the probe loads eBPF programs; PostgreSQL runs as the postgres user)".to_string());
    }
    let chainwatch = chainwatch_binary();
    if let Err(e) = &chainwatch {
        missing.push(e.clone());
    }
    if let Err(e) = chainwatch_testkit::tansu_binary() {
        missing.push(e);
    }
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenario");
    let cache = PathBuf::from(std::env::var("CW_SCENARIO_CACHE").unwrap_or_else(|_| "/var/cache/chainwatch".into()));
    let venv = std::env::var("CW_SCENARIO_VENV").map(PathBuf::from).unwrap_or_else(|_| cache.join("scenario-venv"));
    let pki = std::env::var("CW_SCENARIO_PKI").map(PathBuf::from).unwrap_or_else(|_| cache.join("scenario-pki"));
    let venv_python = venv.join("bin/python3");
    if !venv_python.is_file() {
        missing.push(format!("no scenario venv ({}): run tests/scenario/setup.sh as root", venv_python.display()));
    }
    if !pki.join("server.pem").is_file() || !pki.join("ca.pem").is_file() {
        missing.push(format!("no scenario PKI in {}: run tests/scenario/setup.sh as root", pki.display()));
    }
    let pg_bin = postgres_bin();
    if pg_bin.is_none() {
        missing.push(
            "no PostgreSQL server binaries (/usr/lib/postgresql/*/bin/initdb): run tests/scenario/setup.sh".into(),
        );
    }
    for tool in ["curl", "gzip", "runuser"] {
        if !on_path(tool) {
            missing.push(format!("`{tool}` is not on PATH"));
        }
    }
    if missing.is_empty() {
        return Some(Prereqs {
            chainwatch: chainwatch.unwrap_or_default(),
            scenario,
            venv_python,
            pki,
            pg_bin: pg_bin.unwrap_or_default(),
        });
    }
    let why = missing.join("\n  - ");
    if std::env::var("CHAINWATCH_REQUIRE_E2E").as_deref() == Ok("1") {
        panic!("{test}: CHAINWATCH_REQUIRE_E2E=1 but prerequisites are missing:\n  - {why}");
    }
    // Straight to stderr, past the test harness's capture: a skip must be visible.
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED {test}: prerequisites missing (set CHAINWATCH_REQUIRE_E2E=1 to fail instead):\n  - {why}"
    );
    None
}

/// The effective uid, from /proc/self/status (`Uid: real effective saved fs`).
fn effective_uid() -> Option<u32> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// `$CHAINWATCH_BIN`, else `chainwatch` next to this test's `deps/` directory (the same target
/// dir and profile), else one level further up.
fn chainwatch_binary() -> Result<PathBuf, String> {
    if let Ok(p) = std::env::var("CHAINWATCH_BIN") {
        let p = PathBuf::from(p);
        return if p.is_file() { Ok(p) } else { Err(format!("CHAINWATCH_BIN={} is not a file", p.display())) };
    }
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let candidates: Vec<PathBuf> = exe.ancestors().skip(1).take(3).map(|d| d.join("chainwatch")).collect();
    candidates.iter().find(|p| p.is_file()).cloned().ok_or_else(|| {
        format!(
            "the chainwatch binary is not built next to this test (looked at {}): run `cargo build -p chainwatch` with the same CARGO_TARGET_DIR, or set CHAINWATCH_BIN",
            candidates.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
        )
    })
}

fn postgres_bin() -> Option<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((v, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, b)| b)
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
}

// ---------------------------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------------------------

/// A child in its own process group, its output in a log file; stopped (SIGINT to the group,
/// then SIGKILL) when dropped.
struct Proc {
    name: String,
    child: Child,
    log: PathBuf,
    stopped: Option<ExitStatus>,
}

impl Proc {
    fn spawn(name: &str, mut cmd: Command, log: PathBuf) -> Proc {
        let out = fs::File::create(&log).unwrap_or_else(|e| panic!("{}: {e}", log.display()));
        let err = out.try_clone().unwrap();
        cmd.stdin(Stdio::null()).stdout(out).stderr(err).process_group(0);
        let child = cmd.spawn().unwrap_or_else(|e| panic!("spawning {name}: {e}"));
        Proc { name: name.to_string(), child, log, stopped: None }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Still running? (Panics with its log when it died.)
    fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("{} exited early with {status}:\n{}", self.name, tail(&self.log, 40));
        }
    }

    /// SIGINT to the group, up to `grace` to exit, then SIGKILL. Returns the exit status.
    fn stop(&mut self, grace: Duration) -> ExitStatus {
        if let Some(s) = self.stopped {
            return s;
        }
        let pgid = self.pid();
        if matches!(self.child.try_wait(), Ok(None)) {
            signal_group(pgid, "INT");
        }
        let asked = Instant::now();
        let deadline = asked + grace;
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(s)) => break s,
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
                _ => {
                    eprintln!("{} did not stop within {grace:?} of SIGINT: SIGKILL", self.name);
                    signal_group(pgid, "KILL");
                    break self.child.wait().unwrap();
                }
            }
        };
        // Whatever else is left in its group (it has none normally).
        signal_group(pgid, "KILL");
        println!("{} stopped in {} ms ({status})", self.name, asked.elapsed().as_millis());
        self.stopped = Some(status);
        status
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(10));
    }
}

/// `kill -SIG -- -PGID` (no error when the group is gone).
fn signal_group(pgid: u32, sig: &str) {
    let _ = Command::new("kill")
        .args([format!("-{sig}"), "--".into(), format!("-{pgid}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Is any process of group `pgid` alive?
fn group_alive(pgid: u32) -> bool {
    Command::new("kill")
        .args(["-0", "--", &format!("-{pgid}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_else(|e| format!("({}: {e})", path.display()));
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn run_checked(what: &str, cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

// ---------------------------------------------------------------------------------------------
// The scenario's servers
// ---------------------------------------------------------------------------------------------

/// Loopback ports of the stand-ins and PostgreSQL, free ones (not common.sh's fixed defaults,
/// so a scenario run elsewhere on the machine does not collide).
struct Ports(Vec<(&'static str, u16)>);

impl Ports {
    fn free() -> Ports {
        let names =
            ["CW_PORT_LLM", "CW_PORT_JIRA", "CW_PORT_SLACK", "CW_PORT_PASTEBIN", "CW_PORT_VECTOR", "CW_PORT_PG"];
        let mut used = BTreeSet::new();
        let mut ports = Vec::new();
        for n in names {
            let mut p = chainwatch_testkit::free_port();
            while !used.insert(p) {
                p = chainwatch_testkit::free_port();
            }
            ports.push((n, p));
        }
        Ports(ports)
    }

    fn get(&self, name: &str) -> u16 {
        self.0.iter().find(|(n, _)| *n == name).map(|(_, p)| *p).unwrap()
    }
}

/// A throwaway PostgreSQL seeded with seed.sql and the stand-ins of servers.py, as run.sh
/// starts them, in a work directory that also holds the agent's files. Stopped when dropped.
struct ScenarioServers {
    work: PathBuf,
    pgdata: PathBuf,
    pg_ctl: PathBuf,
    servers: Option<Proc>,
    ports: Ports,
    env: Vec<(String, String)>,
}

impl ScenarioServers {
    fn start(p: &Prereqs, work: &Path) -> ScenarioServers {
        let ports = Ports::free();
        fs::create_dir_all(work).unwrap();
        set_mode(work, "755");
        for f in ["agent.py", "common.sh", "run-agent-only"] {
            fs::copy(p.scenario.join(f), work.join(f)).unwrap_or_else(|e| panic!("copying {f}: {e}"));
        }
        fs::copy(p.pki.join("ca.pem"), work.join("ca.pem")).unwrap();
        let logs = work.join("logs");
        let pgdata = work.join("pgdata");
        let pgsock = work.join("pgsock");
        for d in [&logs, &pgdata, &pgsock] {
            fs::create_dir_all(d).unwrap();
        }
        run_checked("chown postgres", Command::new("chown").arg("postgres:").args([&pgdata, &pgsock, &logs]));
        set_mode(&pgdata, "700");

        let mut env: Vec<(String, String)> = ports.0.iter().map(|(n, p)| (n.to_string(), p.to_string())).collect();
        env.push(("CW_SCENARIO_WORKDIR".into(), work.display().to_string()));
        env.push((
            "CW_SCENARIO_VENV".into(),
            p.venv_python.parent().and_then(Path::parent).unwrap().display().to_string(),
        ));
        env.push(("CW_SCENARIO_PKI".into(), p.pki.display().to_string()));

        let pg_ctl = p.pg_bin.join("pg_ctl");
        let mut servers = ScenarioServers {
            work: work.to_path_buf(),
            pgdata: pgdata.clone(),
            pg_ctl: pg_ctl.clone(),
            servers: None,
            ports,
            env,
        };
        let pg_port = servers.ports.get("CW_PORT_PG").to_string();
        run_checked(
            "initdb",
            Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(p.pg_bin.join("initdb"))
                .arg("-D")
                .arg(&pgdata)
                .args(["-U", "postgres", "--auth-local=trust", "--auth-host=scram-sha-256"]),
        );
        run_checked(
            "pg_ctl start",
            Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(&pg_ctl)
                .arg("-D")
                .arg(&pgdata)
                .arg("-l")
                .arg(logs.join("postgres.log"))
                .args(["-w", "-t", "30", "-o"])
                .arg(format!("-c listen_addresses=127.0.0.1 -p {pg_port} -k {} -c ssl=off", pgsock.display()))
                .arg("start")
                .stdout(Stdio::null()),
        );
        run_checked(
            "seeding PostgreSQL",
            Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(p.pg_bin.join("psql"))
                .args(["-q", "-v", "ON_ERROR_STOP=1", "-h"])
                .arg(&pgsock)
                .args(["-p", &pg_port, "-U", "postgres", "-d", "postgres", "-f"])
                .arg(p.scenario.join("seed.sql")),
        );

        let mut cmd = Command::new(&p.venv_python);
        cmd.arg("-u").arg(p.scenario.join("servers.py")).envs(servers.env.iter().map(|(k, v)| (k, v)));
        let out_log = logs.join("servers.out");
        let proc = Proc::spawn("servers.py", cmd, out_log.clone());
        servers.servers = Some(proc);
        let deadline = Instant::now() + Duration::from_secs(20);
        while !fs::read_to_string(&out_log).unwrap_or_default().lines().any(|l| l.starts_with("ready")) {
            servers.servers.as_mut().unwrap().assert_running();
            assert!(Instant::now() < deadline, "servers.py not ready within 20 s:\n{}", tail(&out_log, 40));
            std::thread::sleep(Duration::from_millis(100));
        }
        servers
    }

    /// The agent's wrapper, started as `exe` (a copy of run-agent-only, or the original), with
    /// the scenario's environment; waits for it (at most 120 s) and returns its pid, its exit
    /// time and its stderr (one line per step).
    fn run_agent(&self, exe: &Path, benign: bool) -> AgentRun {
        let mut cmd = Command::new(exe);
        if benign {
            cmd.arg("--benign");
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        let log = self.work.join("logs").join(if benign { "agent-benign.log" } else { "agent.log" });
        let mut proc = Proc::spawn("agent", cmd, log.clone());
        let pid = proc.pid();
        let deadline = Instant::now() + Duration::from_secs(120);
        let status = loop {
            if let Ok(Some(s)) = proc.child.try_wait() {
                break s;
            }
            assert!(Instant::now() < deadline, "the agent did not finish within 120 s:\n{}", tail(&log, 40));
            std::thread::sleep(Duration::from_millis(10));
        };
        let exited = Instant::now();
        proc.stopped = Some(status);
        let output = fs::read_to_string(&log).unwrap_or_default();
        assert!(status.success(), "the agent failed ({status}):\n{output}");
        AgentRun { pid, exited, output }
    }

    /// Stop servers.py and PostgreSQL, and check nothing is left.
    fn stop(&mut self) {
        if let Some(mut s) = self.servers.take() {
            let pgid = s.pid();
            s.stop(Duration::from_secs(10));
            assert!(!group_alive(pgid), "servers.py left processes behind");
        }
        if self.pgdata.join("postmaster.pid").exists() {
            let _ = Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(&self.pg_ctl)
                .arg("-D")
                .arg(&self.pgdata)
                .args(["-m", "fast", "-w", "stop"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        assert!(!self.pgdata.join("postmaster.pid").exists(), "PostgreSQL did not stop ({})", self.pgdata.display());
        let _ = fs::remove_dir_all(&self.pgdata);
    }
}

impl Drop for ScenarioServers {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // Stop without asserting (a second panic would abort); keep the logs.
            if let Some(mut s) = self.servers.take() {
                s.stop(Duration::from_secs(5));
            }
            let _ = Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(&self.pg_ctl)
                .arg("-D")
                .arg(&self.pgdata)
                .args(["-m", "fast", "-w", "stop"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            eprintln!("scenario work dir and logs kept in {}", self.work.display());
        } else {
            self.stop();
        }
    }
}

struct AgentRun {
    pid: u32,
    exited: Instant,
    output: String,
}

fn set_mode(path: &Path, mode: &str) {
    run_checked("chmod", Command::new("chmod").arg(mode).arg(path));
}

/// A fresh directory for one test run (under /tmp, traversable by the postgres user).
fn run_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cw-e2e-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    set_mode(&dir, "755");
    dir
}

// ---------------------------------------------------------------------------------------------
// What the pipeline publishes, as the observer saw it
// ---------------------------------------------------------------------------------------------

/// One record seen on the broker, and when it arrived here.
#[derive(Clone)]
struct Seen {
    at: Instant,
    /// Wall-clock arrival, ns since the epoch (records carry wall-clock times).
    wall_ns: i64,
    topic: String,
    value: Vec<u8>,
}

/// A consumer (its own group) of cw.violations, cw.chains, cw.proc.events and
/// cw.semantic.events, in a thread, that timestamps every record on arrival.
struct Observer {
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Observer {
    fn start(bootstrap: String) -> Observer {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (seen2, stop2) = (seen.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
            rt.block_on(async move {
                let bus = KafkaBus::new(KafkaConfig { brokers: bootstrap, ..KafkaConfig::default() }).unwrap();
                let topics = [
                    chainwatch_schemas::topics::VIOLATIONS,
                    chainwatch_schemas::topics::CHAINS,
                    chainwatch_schemas::topics::PROC_EVENTS,
                    chainwatch_schemas::topics::SEMANTIC_EVENTS,
                ];
                let mut c = bus.consumer("cw-e2e-observer", &topics).await.unwrap();
                while !stop2.load(Ordering::Relaxed) {
                    match c.poll(Duration::from_millis(50)).await {
                        Ok(Some(r)) => {
                            let (at, wall_ns) = (Instant::now(), wall_clock_ns());
                            seen2.lock().unwrap().push(Seen { at, wall_ns, topic: r.topic, value: r.value });
                        }
                        Ok(None) => {}
                        Err(e) => eprintln!("observer: {e}"),
                    }
                }
                let _ = c.close().await;
            });
        });
        Observer { seen, stop, thread: Some(thread) }
    }

    fn snapshot(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Wait (at most `limit`) until `done` holds on what was seen; returns whether it did.
    fn wait_for(&self, limit: Duration, mut done: impl FnMut(&[Seen]) -> bool) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            if done(&self.snapshot()) {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Observer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A violation as it came off cw.violations (OCSF Detection Finding JSON).
#[derive(Debug, Clone)]
struct OcsfViolation {
    at: Instant,
    wall_ns: i64,
    uid: String,
    title: String,
    chain_id: String,
    evidence_steps: Vec<i64>,
    json: serde_json::Value,
}

fn violations(seen: &[Seen]) -> Vec<OcsfViolation> {
    seen.iter()
        .filter(|s| s.topic == chainwatch_schemas::topics::VIOLATIONS)
        .map(|s| {
            let json: serde_json::Value = serde_json::from_slice(&s.value).unwrap_or_else(|e| {
                panic!("cw.violations record is not JSON ({e}): {}", String::from_utf8_lossy(&s.value))
            });
            let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
            OcsfViolation {
                at: s.at,
                wall_ns: s.wall_ns,
                uid: text(&json["finding_info"]["uid"]),
                title: text(&json["finding_info"]["title"]),
                chain_id: text(&json["unmapped"]["chain_id"]),
                evidence_steps: json["unmapped"]["evidence_steps"]
                    .as_array()
                    .map(|a| a.iter().filter_map(|v| v.as_i64()).collect())
                    .unwrap_or_default(),
                json,
            }
        })
        .collect()
}

/// The latest version of every chain on cw.chains.
fn latest_chains(seen: &[Seen]) -> BTreeMap<String, Chain> {
    let mut out: BTreeMap<String, Chain> = BTreeMap::new();
    for s in seen.iter().filter(|s| s.topic == chainwatch_schemas::topics::CHAINS) {
        let c = Chain::decode(&s.value).unwrap_or_else(|e| panic!("cw.chains record is not an Avro Chain: {e}"));
        if out.get(&c.chain_id).is_none_or(|old| old.version <= c.version) {
            out.insert(c.chain_id.clone(), c);
        }
    }
    out
}

fn wall_clock_ns() -> i64 {
    let d = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

fn process_events(seen: &[Seen]) -> Vec<ProcessEvent> {
    seen.iter()
        .filter(|s| s.topic == chainwatch_schemas::topics::PROC_EVENTS)
        .filter(|s| record_name(&s.value).is_ok_and(|n| n == ProcessEvent::NAME))
        .filter_map(|s| ProcessEvent::decode(&s.value).ok())
        .collect()
}

/// One line per step, for failure messages and the log.
fn describe(c: &Chain) -> String {
    let mut flows: BTreeMap<(i32, i32), BTreeSet<&str>> = BTreeMap::new();
    for f in &c.pii_flows {
        flows.entry((f.from_step, f.to_step)).or_default().insert(f.pii_type.as_str());
    }
    let flows: Vec<String> = flows.iter().map(|((a, b), t)| format!("[{a}]->[{b}] {t:?}")).collect();
    let mut s = format!(
        "chain {} v{} {:?} agent {} ({} steps, destinations {:?}, {} pii flows: {})\n",
        c.chain_id,
        c.version,
        c.status,
        c.agent.agent_key,
        c.steps.len(),
        c.destinations,
        c.pii_flows.len(),
        flows.join(", ")
    );
    for st in &c.steps {
        s.push_str(&format!(
            "  [{}] {} {} {} {:?} pii {:?} ({})\n",
            st.index, st.kind, st.protocol, st.comm, st.destination, st.pii_types, st.summary
        ));
    }
    s
}

/// The checks issue #8 makes on the exfiltration chain, whichever mode produced it.
fn assert_exfiltration_chain(c: &Chain, evidence_steps: &[i64]) {
    let why = describe(c);
    assert_eq!(c.steps.len(), EXFIL_STEPS, "the exfiltration chain has {EXFIL_STEPS} steps:\n{why}");
    assert!(c.destinations.iter().any(|d| d.starts_with("personal-pastebin.com")), "no pastebin destination:\n{why}");
    let step = |i: i64| c.steps.iter().find(|s| i64::from(s.index) == i);
    let upload = c.steps.iter().find(|s| s.kind == "upload").unwrap_or_else(|| panic!("no upload step:\n{why}"));
    assert!(
        upload.destination.as_deref().is_some_and(|d| d.starts_with("personal-pastebin.com")),
        "the upload goes to the pastebin:\n{why}"
    );
    let postgres =
        c.steps.iter().find(|s| s.protocol == "postgres").unwrap_or_else(|| panic!("no PostgreSQL step:\n{why}"));
    assert!(
        c.pii_flows.iter().any(|f| f.from_step == postgres.index && f.to_step == upload.index),
        "no PII flow from the PostgreSQL step [{}] to the upload step [{}]:\n{why}",
        postgres.index,
        upload.index
    );
    assert!(
        evidence_steps.iter().any(|&i| step(i).is_some_and(|s| s.protocol == "postgres")),
        "evidence {evidence_steps:?}:\n{why}"
    );
    assert!(
        evidence_steps.iter().any(|&i| step(i).is_some_and(|s| s.kind == "upload")),
        "evidence {evidence_steps:?}:\n{why}"
    );
}

// ---------------------------------------------------------------------------------------------
// The distributed pipeline
// ---------------------------------------------------------------------------------------------

/// chainwatch.toml for every stage: the broker with tansu's producer workaround (one record per
/// batch, see bus/tests/tansu.rs), the agent's comm, a short idle gap and a short policy batch.
/// The idle gap only decides when chains close (the violation fires on an open chain's upsert);
/// 2 s split the chain on a loaded machine (the pause before gzip and curl exceeded it), 8 s
/// does not.
fn distributed_config(dir: &Path, bootstrap: &str) -> PathBuf {
    let path = dir.join("chainwatch.toml");
    let text = format!(
        r#"# written by tests/tests/distributed_scenario.rs
[node]
id = "e2e-node"

[bus]
kind = "kafka"

[kafka]
brokers = "{bootstrap}"
partitions = 4
session_timeout_ms = 6000
message_timeout_ms = 300000

[kafka.properties]
"batch.num.messages" = "1"

[probe]
watch_comm = ["{AGENT_COMM}"]

[parser]
commit_every = 100

[chain]
idle_gap_secs = 8
allowed_lateness_secs = 2

[policy]
batch_interval_ms = 100

[storage]
data_dir = "{data}"
"#,
        data = dir.join("data").display()
    );
    fs::write(&path, text).unwrap();
    path
}

fn stage(p: &Prereqs, config: &Path, dir: &Path, name: &str, args: &[&str]) -> Proc {
    let mut cmd = Command::new(&p.chainwatch);
    cmd.arg("--config").arg(config).args(["--log", "info"]).args(args).current_dir(dir);
    // The file says everything; the environment must not override it.
    for (k, _) in std::env::vars() {
        if k.starts_with("CHAINWATCH__") {
            cmd.env_remove(k);
        }
    }
    Proc::spawn(name, cmd, dir.join(format!("{name}.log")))
}

#[test]
fn distributed_pipeline_flags_the_exfiltration_and_not_its_benign_twin() {
    let _serial = serial();
    let Some(p) = prerequisites("distributed_pipeline_flags_the_exfiltration_and_not_its_benign_twin") else { return };
    let dir = run_dir("distributed");
    println!("run dir {} (logs of every stage)", dir.display());

    // 1. The broker and the topics.
    let broker = chainwatch_testkit::TansuBroker::start();
    let config = distributed_config(&dir, &broker.bootstrap());
    run_checked("chainwatch topics", Command::new(&p.chainwatch).arg("--config").arg(&config).arg("topics"));

    // 2. The stages, each its own process (and process group).
    let observer = Observer::start(broker.bootstrap());
    let mut stages = vec![
        stage(&p, &config, &dir, "parse-1", &["parse"]),
        stage(&p, &config, &dir, "parse-2", &["parse"]),
        stage(&p, &config, &dir, "chain", &["chain"]),
        stage(&p, &config, &dir, "policy", &["policy"]),
        stage(&p, &config, &dir, "probe", &["probe"]),
    ];

    // 3. PostgreSQL and the stand-ins (not watched: only the agent's tree is).
    let mut servers = ScenarioServers::start(&p, &dir.join("scenario"));
    let agent = servers.work.join(AGENT_COMM);
    fs::copy(servers.work.join("run-agent-only"), &agent).unwrap();

    // Readiness: a curl under the agent's comm until its exec reaches cw.proc.events (the probe
    // is attached) and a chain of it reaches cw.chains (parsers and chain builder are in).
    let warmup_dir = dir.join("warmup");
    fs::create_dir_all(&warmup_dir).unwrap();
    let warmup = warmup_dir.join(AGENT_COMM);
    fs::copy("/usr/bin/curl", &warmup).unwrap();
    let llm = servers.ports.get("CW_PORT_LLM");
    let ready_by = Instant::now() + Duration::from_secs(90);
    let mut warmup_pids = BTreeSet::new();
    loop {
        for s in stages.iter_mut() {
            s.assert_running();
        }
        let st = Command::new(&warmup)
            .args(["-sS", "-o", "/dev/null", "--cacert"])
            .arg(servers.work.join("ca.pem"))
            .args([
                "--resolve",
                &format!("llm.internal.test:{llm}:127.0.0.1"),
                &format!("https://llm.internal.test:{llm}/v1/models"),
            ])
            .spawn()
            .and_then(|mut c| {
                warmup_pids.insert(c.id() as i32);
                c.wait()
            })
            .unwrap();
        assert!(st.success() || st.code() == Some(22), "the warm-up curl failed: {st}");
        let ok = observer.wait_for(Duration::from_secs(3), |seen| {
            process_events(seen).iter().any(|e| warmup_pids.contains(&e.tgid))
                && latest_chains(seen).values().any(|c| warmup_pids.contains(&c.agent.tgid))
        });
        if ok {
            break;
        }
        assert!(
            Instant::now() < ready_by,
            "the pipeline did not carry the warm-up curl within 90 s; stage logs in {}",
            dir.display()
        );
    }
    println!("pipeline ready (warm-up curls: {warmup_pids:?})");

    // 4. The exfiltration scenario.
    let exfil = servers.run_agent(&agent, false);
    println!("agent (pid {}) finished:\n{}", exfil.pid, exfil.output);
    let got =
        observer.wait_for(Duration::from_secs(30), |seen| violations(seen).iter().any(|v| v.title == EXFIL_TITLE));
    let seen = observer.snapshot();
    assert!(got, "no {EXFIL_TITLE:?} violation within 30 s of the agent's exit; chains:\n{}", chains_text(&seen));
    let first = violations(&seen).into_iter().filter(|v| v.title == EXFIL_TITLE).min_by_key(|v| v.at).unwrap();
    // Signed: the violation may come before the agent's exit (an open chain's upsert).
    let after_exit_ms = if first.at >= exfil.exited {
        i128::try_from(first.at.duration_since(exfil.exited).as_millis()).unwrap_or(i128::MAX)
    } else {
        -i128::try_from(exfil.exited.duration_since(first.at).as_millis()).unwrap_or(i128::MAX)
    };

    // The chain: wait until it closed (idle gap), then check its last version.
    let closed = observer.wait_for(Duration::from_secs(30), |seen| {
        latest_chains(seen).get(&first.chain_id).is_some_and(|c| c.status == ChainStatus::Closed)
    });
    let seen = observer.snapshot();
    let chains = latest_chains(&seen);
    let chain = chains.get(&first.chain_id).unwrap_or_else(|| {
        panic!("the violation's chain {} is not on cw.chains:\n{}", first.chain_id, chains_text(&seen))
    });
    println!("{}", describe(chain));
    assert!(closed, "the exfiltration chain did not close within 30 s:\n{}", describe(chain));
    // The upload step's end is wall-clock time stamped by the probe (the response's last byte).
    let upload_end_ns =
        chain.steps.iter().filter(|s| s.kind == "upload").map(|s| s.ts_end_ns).max().unwrap_or(i64::MAX);
    let after_upload_ms = (i128::from(first.wall_ns) - i128::from(upload_end_ns)) / 1_000_000;
    println!(
        "LATENCY: the violation arrived on cw.violations {after_upload_ms} ms after the upload's last byte, {after_exit_ms} ms after the agent's exit"
    );
    println!("LATENCY by stage (ms after the upload's last byte): {}", stage_arrivals(&seen, chain, upload_end_ns));
    assert_eq!(chain.agent.tgid, exfil.pid as i32, "the chain belongs to the agent process:\n{}", describe(chain));
    assert_exfiltration_chain(chain, &first.evidence_steps);

    // 5. The benign twin.
    let benign = servers.run_agent(&agent, true);
    println!("benign agent (pid {}) finished:\n{}", benign.pid, benign.output);
    let closed = observer.wait_for(Duration::from_secs(30), |seen| {
        latest_chains(seen).values().any(|c| c.agent.tgid == benign.pid as i32 && c.status == ChainStatus::Closed)
    });
    assert!(closed, "the benign twin's chain did not close within 30 s:\n{}", chains_text(&observer.snapshot()));
    // A few seconds more for a late violation.
    std::thread::sleep(Duration::from_secs(4));
    let seen = observer.snapshot();
    let chains = latest_chains(&seen);
    let benign_chains: Vec<&Chain> = chains.values().filter(|c| c.agent.tgid == benign.pid as i32).collect();
    for c in &benign_chains {
        println!("{}", describe(c));
        assert!(!c.steps.iter().any(|s| s.kind == "upload"), "the benign twin uploads nothing:\n{}", describe(c));
    }
    let all = violations(&seen);
    let on_benign: Vec<&OcsfViolation> =
        all.iter().filter(|v| benign_chains.iter().any(|c| c.chain_id == v.chain_id)).collect();
    assert!(
        on_benign.is_empty(),
        "the benign twin raised violations: {:#?}",
        on_benign.iter().map(|v| &v.json).collect::<Vec<_>>()
    );

    // Exactly one exfiltration violation over everything (versions of it may repeat).
    let exfil_ids: BTreeSet<&str> = all.iter().filter(|v| v.title == EXFIL_TITLE).map(|v| v.uid.as_str()).collect();
    assert_eq!(
        exfil_ids.len(),
        1,
        "one {EXFIL_TITLE:?} violation: {:#?}",
        all.iter().map(|v| &v.json).collect::<Vec<_>>()
    );
    assert!(
        all.iter().filter(|v| v.title == EXFIL_TITLE).all(|v| v.chain_id == first.chain_id),
        "every version of it is on the exfiltration chain"
    );
    // The fake API key never reaches the chains or the violations.
    for s in seen.iter().filter(|s| s.topic != chainwatch_schemas::topics::PROC_EVENTS) {
        assert!(!contains(&s.value, FAKE_API_KEY.as_bytes()), "the fake API key leaked to {}", s.topic);
    }

    // 6. Everything down, cleanly.
    drop(observer);
    let mut failures = Vec::new();
    // The probe first (it feeds the rest), then the workers.
    for s in stages.iter_mut().rev() {
        let pgid = s.pid();
        let status = s.stop(Duration::from_secs(60));
        if !status.success() {
            failures.push(format!("{} exited with {status} on SIGINT:\n{}", s.name, tail(&s.log, 20)));
        }
        if group_alive(pgid) {
            failures.push(format!("{} left processes behind", s.name));
        }
        println!("{}: {}", s.name, tail(&s.log, 1));
    }
    servers.stop();
    drop(servers);
    drop(broker);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // The latency budget last, after everything else held (the figures are printed above).
    let budget = i128::try_from(LATENCY_BUDGET.as_millis()).unwrap_or(i128::MAX);
    assert!(
        after_upload_ms < budget && after_exit_ms < budget,
        "the violation came {after_upload_ms} ms after the upload, {after_exit_ms} ms after the agent's exit (budget {LATENCY_BUDGET:?})"
    );
    let _ = fs::remove_dir_all(&dir);
}

/// When the upload reached each topic: its SemanticEvent on cw.semantic.events, the first
/// version of its chain with the upload step on cw.chains, the violation on cw.violations.
fn stage_arrivals(seen: &[Seen], chain: &Chain, upload_end_ns: i64) -> String {
    let ms = |ns: i64| (i128::from(ns) - i128::from(upload_end_ns)) / 1_000_000;
    let upload_ids: BTreeSet<&str> =
        chain.steps.iter().filter(|s| s.kind == "upload").map(|s| s.event_id.as_str()).collect();
    let event = seen
        .iter()
        .filter(|s| s.topic == chainwatch_schemas::topics::SEMANTIC_EVENTS)
        .filter(|s| SemanticEvent::decode(&s.value).is_ok_and(|e| upload_ids.contains(e.event_id.as_str())))
        .map(|s| s.wall_ns)
        .min();
    let chain_at = seen
        .iter()
        .filter(|s| s.topic == chainwatch_schemas::topics::CHAINS)
        .filter(|s| {
            Chain::decode(&s.value)
                .is_ok_and(|c| c.chain_id == chain.chain_id && c.steps.iter().any(|st| st.kind == "upload"))
        })
        .map(|s| s.wall_ns)
        .min();
    let violation = violations(seen)
        .iter()
        .filter(|v| v.chain_id == chain.chain_id && v.title == EXFIL_TITLE)
        .map(|v| v.wall_ns)
        .min();
    let show = |t: Option<i64>| t.map(|t| ms(t).to_string()).unwrap_or_else(|| "not seen".into());
    let versions: Vec<String> = seen
        .iter()
        .filter(|s| s.topic == chainwatch_schemas::topics::CHAINS)
        .filter_map(|s| Chain::decode(&s.value).ok().filter(|c| c.chain_id == chain.chain_id).map(|c| (s.wall_ns, c)))
        .map(|(t, c)| format!("v{} {:?} {} steps at {}", c.version, c.status, c.steps.len(), ms(t)))
        .collect();
    let step_ids: BTreeSet<&str> = chain.steps.iter().map(|s| s.event_id.as_str()).collect();
    let events: Vec<String> = seen
        .iter()
        .filter(|s| s.topic == chainwatch_schemas::topics::SEMANTIC_EVENTS)
        .filter_map(|s| SemanticEvent::decode(&s.value).ok().map(|e| (s.wall_ns, e)))
        .filter(|(_, e)| step_ids.contains(e.event_id.as_str()))
        .map(|(t, e)| format!("{} ended {} arrived {}", e.kind, ms(e.ts_end_ns), ms(t)))
        .collect();
    format!(
        "semantic event {}, chain {}, violation {} (versions of the chain: {}; its events: {})",
        show(event),
        show(chain_at),
        show(violation),
        versions.join("; "),
        events.join("; ")
    )
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn chains_text(seen: &[Seen]) -> String {
    latest_chains(seen).values().map(describe).collect::<Vec<_>>().join("")
}

// ---------------------------------------------------------------------------------------------
// The embedded pipeline
// ---------------------------------------------------------------------------------------------

#[test]
fn embedded_run_gives_the_same_chain_and_violation() {
    let _serial = serial();
    let Some(p) = prerequisites("embedded_run_gives_the_same_chain_and_violation") else { return };
    let dir = run_dir("embedded");
    let mut servers = ScenarioServers::start(&p, &dir.join("scenario"));

    // No chainwatch.toml in the run dir: the defaults (embedded bus), data in ./chainwatch-data.
    let mut cmd = Command::new(&p.chainwatch);
    cmd.args(["run", "--format", "json", "--"]).arg(p.scenario.join("run-agent-only")).current_dir(&dir);
    cmd.envs(servers.env.iter().map(|(k, v)| (k, v)));
    for (k, _) in std::env::vars() {
        if k.starts_with("CHAINWATCH__") {
            cmd.env_remove(k);
        }
    }
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "chainwatch run failed ({}):\n{stderr}", out.status);
    println!("{stderr}");

    let mut chains = Vec::new();
    let mut found = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines().filter(|l| !l.trim().is_empty()) {
        match JsonRecord::from_line(line) {
            Ok(JsonRecord::Chain(c)) => chains.push(c),
            Ok(JsonRecord::Violation(v)) => found.push(v),
            other => panic!("unexpected line from chainwatch run: {line}: {other:?}"),
        }
    }
    for c in &chains {
        println!("{}", describe(c));
    }
    let exfil: Vec<&Violation> = found.iter().filter(|v| v.policy_title == EXFIL_TITLE).collect();
    assert_eq!(exfil.len(), 1, "{found:#?}");
    let v = exfil[0];
    let chain = chains
        .iter()
        .find(|c| c.chain_id == v.chain_id)
        .unwrap_or_else(|| panic!("the violation's chain {} was not printed", v.chain_id));
    let evidence: Vec<i64> = v.evidence_steps.iter().map(|&i| i64::from(i)).collect();
    assert_exfiltration_chain(chain, &evidence);
    assert!(!String::from_utf8_lossy(&out.stdout).contains(FAKE_API_KEY), "the fake API key leaked into the output");
    assert!(dir.join("chainwatch-data").is_dir(), "chainwatch run left no data directory");

    servers.stop();
    drop(servers);
    let _ = fs::remove_dir_all(&dir);
    let _ = std::io::stdout().flush();
}
