//! A plain HTTP server (Python's http.server) on a free loopback port, serving a directory:
//! traffic for capture tests. Killed when dropped.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct HttpServer {
    child: Child,
    pub port: u16,
}

impl HttpServer {
    /// Serve `dir` and wait (up to 5 s) until the port accepts connections.
    pub fn start(dir: &Path) -> HttpServer {
        let port = crate::free_port();
        let child = Command::new("python3")
            .args(["-m", "http.server", &port.to_string(), "--bind", "127.0.0.1"])
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start python3 -m http.server: {e}"));
        let server = HttpServer { child, port };
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return server;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("http.server did not listen on 127.0.0.1:{port} within 5 s");
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
