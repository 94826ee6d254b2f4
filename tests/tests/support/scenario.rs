//! The seed scenario's prerequisites and servers: the binaries and files a live run needs, a
//! throwaway PostgreSQL and the stand-ins of tests/scenario/servers.py on free loopback ports,
//! and running the agent against them.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::procs::{Proc, group_alive, run_checked, tail};

/// What the tests run.
pub struct Prereqs {
    pub chainwatch: PathBuf,
    pub scenario: PathBuf,
    pub venv_python: PathBuf,
    pub pki: PathBuf,
    pub pg_bin: PathBuf,
}

/// The prerequisites, or `None` after printing why they are missing (and panicking when
/// CHAINWATCH_REQUIRE_E2E=1).
pub fn prerequisites(test: &str) -> Option<Prereqs> {
    let mut missing = Vec::new();
    if super::effective_uid() != Some(0) {
        missing.push("not root (the probe loads eBPF programs; PostgreSQL runs as the postgres user)".to_string());
    }
    let chainwatch = super::chainwatch_binary();
    if let Err(e) = &chainwatch {
        missing.push(e.clone());
    }
    if let Err(e) = chainwatch_testkit::tansu_binary() {
        missing.push(e);
    }
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenario");
    let venv_python = super::scenario_venv_python();
    let pki = super::scenario_pki();
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
        if !super::on_path(tool) {
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
    super::skip_or_fail(test, &missing);
    None
}

pub fn postgres_bin() -> Option<PathBuf> {
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


/// Loopback ports of the stand-ins and PostgreSQL, free ones (not common.sh's fixed defaults,
/// so a scenario run elsewhere on the machine does not collide).
pub struct Ports(pub Vec<(&'static str, u16)>);

impl Ports {
    pub fn free() -> Ports {
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

    pub fn get(&self, name: &str) -> u16 {
        self.0.iter().find(|(n, _)| *n == name).map(|(_, p)| *p).unwrap()
    }
}

/// A throwaway PostgreSQL seeded with seed.sql and the stand-ins of servers.py, as run.sh
/// starts them, in a work directory that also holds the agent's files. Stopped when dropped.
pub struct ScenarioServers {
    pub work: PathBuf,
    pub pgdata: PathBuf,
    pub pg_ctl: PathBuf,
    pub servers: Option<Proc>,
    pub ports: Ports,
    pub env: Vec<(String, String)>,
}

impl ScenarioServers {
    pub fn start(p: &Prereqs, work: &Path) -> ScenarioServers {
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
    pub fn run_agent(&self, exe: &Path, benign: bool) -> AgentRun {
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

    /// `pg_ctl stop -m fast`, as the postgres user; the outcome is checked by the caller.
    fn stop_postgres(&self) {
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

    /// Stop servers.py and PostgreSQL, and check nothing is left.
    pub fn stop(&mut self) {
        if let Some(mut s) = self.servers.take() {
            let pgid = s.pid();
            s.stop(Duration::from_secs(10));
            assert!(!group_alive(pgid), "servers.py left processes behind");
        }
        if self.pgdata.join("postmaster.pid").exists() {
            self.stop_postgres();
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
            self.stop_postgres();
            eprintln!("scenario work dir and logs kept in {}", self.work.display());
        } else {
            self.stop();
        }
    }
}

pub struct AgentRun {
    pub pid: u32,
    pub exited: Instant,
    pub output: String,
}

pub fn set_mode(path: &Path, mode: &str) {
    run_checked("chmod", Command::new("chmod").arg(mode).arg(path));
}

/// A fresh directory for one test run (under /tmp, traversable by the postgres user).
pub fn run_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cw-e2e-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    set_mode(&dir, "755");
    dir
}