//! Child processes of the end-to-end harness: each in its own process group with its output in
//! a log file, stopped (SIGINT, then SIGKILL) when dropped; and small process helpers.

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A child in its own process group, its output in a log file; stopped (SIGINT to the group,
/// then SIGKILL) when dropped.
pub struct Proc {
    pub name: String,
    pub child: Child,
    pub log: PathBuf,
    pub stopped: Option<ExitStatus>,
}

impl Proc {
    pub fn spawn(name: &str, mut cmd: Command, log: PathBuf) -> Proc {
        let out = fs::File::create(&log).unwrap_or_else(|e| panic!("{}: {e}", log.display()));
        let err = out.try_clone().unwrap();
        cmd.stdin(Stdio::null()).stdout(out).stderr(err).process_group(0);
        let child = cmd.spawn().unwrap_or_else(|e| panic!("spawning {name}: {e}"));
        Proc { name: name.to_string(), child, log, stopped: None }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Still running? (Panics with its log when it died.)
    pub fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("{} exited early with {status}:\n{}", self.name, tail(&self.log, 40));
        }
    }

    /// SIGINT to the group, up to `grace` to exit, then SIGKILL. Returns the exit status.
    pub fn stop(&mut self, grace: Duration) -> ExitStatus {
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
pub fn signal_group(pgid: u32, sig: &str) {
    let _ = Command::new("kill")
        .args([format!("-{sig}"), "--".into(), format!("-{pgid}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Is any process of group `pgid` alive?
pub fn group_alive(pgid: u32) -> bool {
    Command::new("kill")
        .args(["-0", "--", &format!("-{pgid}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

pub fn tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_else(|e| format!("({}: {e})", path.display()));
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

pub fn run_checked(what: &str, cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}