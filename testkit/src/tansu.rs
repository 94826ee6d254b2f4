//! Start and stop a tansu broker (in-memory storage) for a test.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where tansu is: `$TANSU_BIN`, the CI cache, `~/.cargo/bin`, or `PATH`.
pub fn tansu_binary() -> Result<PathBuf, String> {
    if let Ok(p) = std::env::var("TANSU_BIN") {
        let p = PathBuf::from(p);
        return if p.is_file() { Ok(p) } else { Err(format!("TANSU_BIN={} is not a file", p.display())) };
    }
    let mut candidates = vec![PathBuf::from("/var/cache/chainwatch/tansu/bin/tansu")];
    if let Ok(home) = std::env::var("HOME") {
        candidates.push(PathBuf::from(home).join(".cargo/bin/tansu"));
    }
    if let Ok(path) = std::env::var("PATH") {
        candidates.extend(std::env::split_paths(&path).map(|d| d.join("tansu")));
    }
    candidates.into_iter().find(|p| p.is_file()).ok_or_else(|| {
        "tansu not found (set TANSU_BIN, or run .ci/run which installs it: \
         cargo install tansu --version 0.6.0 --features dynostore --locked)"
            .to_string()
    })
}

/// A running tansu broker; killed when dropped.
pub struct TansuBroker {
    child: Child,
    pub port: u16,
}

impl TansuBroker {
    /// Start a broker on a free loopback port and wait until it accepts connections.
    /// Panics with the reason when it cannot (a test must fail, not skip).
    pub fn start() -> TansuBroker {
        match Self::try_start() {
            Ok(b) => b,
            Err(e) => panic!("cannot start the tansu broker: {e}"),
        }
    }

    pub fn try_start() -> Result<TansuBroker, String> {
        let bin = tansu_binary()?;
        let port = crate::free_port();
        let url = format!("tcp://127.0.0.1:{port}");
        let log = std::env::temp_dir().join(format!("tansu-{port}.log"));
        let log_file = std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let log_err = log_file.try_clone().map_err(|e| e.to_string())?;
        let child = Command::new(&bin)
            .args(["broker", "--storage-engine", "memory://tansu/", "--listener-url", &url, "--advertised-listener-url", &url])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log_file)
            .stderr(log_err)
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", bin.display()))?;
        let mut broker = TansuBroker { child, port };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(broker);
            }
            if let Ok(Some(status)) = broker.child.try_wait() {
                let out = std::fs::read_to_string(&log).unwrap_or_default();
                return Err(format!("tansu exited with {status}: {out}"));
            }
            if Instant::now() > deadline {
                return Err(format!("tansu did not listen on 127.0.0.1:{port} within 20 s (log: {})", log.display()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// bootstrap.servers for clients.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for TansuBroker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
