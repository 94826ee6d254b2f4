//! Overhead benchmark (issue 3, last acceptance point): nginx (1 worker, 84 bytes of JSON over
//! loopback TLS, keep-alive) loaded by `wrk -t1 -c10 -d10s`, measured in one run, as root:
//! unprobed; the floor (empty programs on chainwatch's attach points); chainwatch watching the
//! load; chainwatch watching another process while the load runs unwatched; plus other ways
//! to hook the syscalls (empty perf tracepoints alone, raw_syscalls raw tracepoints, fentry/fexit,
//! chainwatch in tracepoints mode). Chainwatch runs with its default socket-call hooks
//! (`SyscallHooks::Auto`, which is libc uprobes when watching a process tree); the floor uses
//! the attach points of that mode; every configuration prints its hook mode.
//!
//! Run: `cargo bench -p chainwatch-probe --bench overhead` (needs root, nginx-light, wrk, openssl).
//! Each configuration runs `OVERHEAD_ROUNDS` times (default 3), interleaved, and the median is
//! printed. Exits non-zero only when the setup fails; targets print PASS or MISS.
//! `OVERHEAD_UPROBE_EVENTS=0` makes chainwatch attach its per-process uprobes with aya instead
//! of through named uprobe events (`ProbeConfig::uprobe_events`), to compare the two.

use std::io::{BufRead, BufReader};
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aya::programs::uprobe::{UProbeAttachLocation, UProbeScope};
use aya::programs::{FEntry, FExit, RawTracePoint, TracePoint, UProbe};
use aya::{Btf, Ebpf};
use chainwatch_probe::ebpf::{
    enable_bpf_stats, symbol_offsets, HookedLibrary, LossCounters, Probe, ProbeConfig, SyscallHooks, LIBC, LIBSSL,
};
use chainwatch_probe::records::RecordMapper;
use chainwatch_probe::selectors::Selector;
use chainwatch_schemas::{Direction, JsonRecord, SegmentKind, SegmentSource};

/// The 84-byte JSON body nginx serves.
const BODY: &str = r#"{"status":"ok","service":"chainwatch-bench","items":[1,2,3,4,5],"message":"hello!!"}"#;

/// The syscall tracepoints chainwatch attaches (probe/src/ebpf/kernel.rs, SYSCALL_PROGRAMS).
const SYSCALL_TRACEPOINTS: [&str; 23] = [
    "sys_enter_write",
    "sys_exit_write",
    "sys_enter_read",
    "sys_exit_read",
    "sys_enter_sendto",
    "sys_exit_sendto",
    "sys_enter_recvfrom",
    "sys_exit_recvfrom",
    "sys_enter_writev",
    "sys_exit_writev",
    "sys_enter_readv",
    "sys_exit_readv",
    "sys_enter_sendmsg",
    "sys_exit_sendmsg",
    "sys_enter_recvmsg",
    "sys_exit_recvmsg",
    "sys_enter_connect",
    "sys_exit_connect",
    "sys_enter_accept",
    "sys_exit_accept",
    "sys_enter_accept4",
    "sys_exit_accept4",
    "sys_enter_close",
];

/// The sched raw tracepoints chainwatch attaches.
const SCHED_TRACEPOINTS: [&str; 3] = ["sched_process_fork", "sched_process_exec", "sched_process_exit"];

/// The option-study configurations (run unless OVERHEAD_OPTIONS=0), in the order printed.
const OPTION_CONFIGS: [Config; 6] = [
    Config::WatchedTracepoints,
    Config::UnwatchedTracepoints,
    Config::EmptyTracepoints,
    Config::EmptyOneTracepoint,
    Config::EmptyRawSyscalls,
    Config::EmptyFentry,
];

/// The syscalls of the fentry/fexit option (empty.bpf.c).
const FENTRY_SYSCALLS: [&str; 12] =
    ["read", "write", "readv", "writev", "sendto", "recvfrom", "sendmsg", "recvmsg", "connect", "accept", "accept4", "close"];

fn empty_object() -> &'static [u8] {
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/empty.bpf.o"))
}

type Setup<T> = Result<T, String>;

/// What is loaded while wrk runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Config {
    Unprobed,
    Floor,
    Watched,
    Unwatched,
    /// Option study: chainwatch with the syscall tracepoints (its mode for `all`), load unwatched.
    UnwatchedTracepoints,
    /// Option study: chainwatch with the syscall tracepoints, load watched (what a watched
    /// process pays in that mode, against the libc uprobes of the default).
    WatchedTracepoints,
    /// Option study: only the 23 empty syscall tracepoints (what every unwatched process pays).
    EmptyTracepoints,
    /// Option study: ONE empty tracepoint on a syscall nginx and wrk never make under load
    /// (sys_enter_connect): what the syscall slow path alone costs every task.
    EmptyOneTracepoint,
    /// Option study: empty raw_tp on raw_syscalls sys_enter + sys_exit.
    EmptyRawSyscalls,
    /// Option study: empty fentry + fexit on the 12 syscall functions.
    EmptyFentry,
}

impl Config {
    fn label(self) -> &'static str {
        match self {
            Config::Unprobed => "unprobed",
            Config::Floor => "floor (empty progs, same attach points)",
            Config::Watched => "chainwatch, load watched",
            Config::Unwatched => "chainwatch, load unwatched",
            Config::UnwatchedTracepoints => "option: chainwatch tracepoints, unwatched",
            Config::WatchedTracepoints => "option: chainwatch tracepoints, watched",
            Config::EmptyTracepoints => "option: 23 empty syscall tracepoints",
            Config::EmptyOneTracepoint => "option: 1 empty tracepoint (sys_enter_connect)",
            Config::EmptyRawSyscalls => "option: empty raw_tp sys_enter+sys_exit",
            Config::EmptyFentry => "option: empty fentry+fexit on 12 syscalls",
        }
    }

    /// How this configuration hooks the socket calls (chainwatch's mode, or what the empty
    /// programs stand in for).
    fn hooks(self) -> &'static str {
        match self {
            Config::Unprobed => "none",
            Config::Floor | Config::Watched | Config::Unwatched => CHAINWATCH_HOOKS.as_str(),
            Config::UnwatchedTracepoints
            | Config::WatchedTracepoints
            | Config::EmptyTracepoints
            | Config::EmptyOneTracepoint => "tracepoints",
            Config::EmptyRawSyscalls => "raw_syscalls",
            Config::EmptyFentry => "fentry",
        }
    }
}

/// The socket-call hooks of the chainwatch configurations: the default for a process tree.
const CHAINWATCH_HOOKS: SyscallHooks = SyscallHooks::Libc;

/// One wrk run's result and, for chainwatch runs, the probe's accounting.
#[derive(Debug, Clone, Default)]
struct Sample {
    rps: f64,
    wrk_requests: u64,
    captured_requests: u64,
    lost_events: u64,
    bpf_ns: u64,
    /// Per program: (name, runs, run time ns) during the wrk run.
    programs: Vec<(String, u64, u64)>,
    user_cpu_ns: u64,
    loss: LossCounters,
}

fn main() {
    match run() {
        Ok(()) => {}
        Err(e) => {
            eprintln!("overhead bench: setup error: {e}");
            std::process::exit(1);
        }
    }
}

fn run() -> Setup<()> {
    // cargo bench passes `--bench`; a filter argument is not supported
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err("must run as root (loads eBPF programs)".into());
    }
    for tool in ["nginx", "wrk", "openssl"] {
        if which(tool).is_none() {
            return Err(format!("{tool} not found (Debian packages: nginx-light, wrk, openssl)"));
        }
    }
    let rounds: usize = std::env::var("OVERHEAD_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(3).max(1);
    let duration: u64 = std::env::var("OVERHEAD_SECONDS").ok().and_then(|v| v.parse().ok()).unwrap_or(10).max(1);
    let configs: Vec<Config> = {
        let mut c = vec![Config::Unprobed, Config::Floor, Config::Watched, Config::Unwatched];
        if std::env::var("OVERHEAD_OPTIONS").map(|v| v != "0").unwrap_or(true) {
            c.extend(OPTION_CONFIGS);
        }
        c
    };

    let mut configs = configs;
    let mut notes = Vec::new();
    if configs.contains(&Config::EmptyFentry) {
        // fentry needs ftrace function hooks, which some kernels or sandboxes refuse
        if let Err(e) = load_empty(Config::EmptyFentry, 1) {
            notes.push(format!("{}: unavailable here ({e})", Config::EmptyFentry.label()));
            configs.retain(|c| *c != Config::EmptyFentry);
        }
    }

    let dir = TempDir::new()?;
    let nginx = Nginx::start(&dir.0)?;
    let url = format!("https://127.0.0.1:{}/", nginx.port);
    let worker = nginx.worker_pid()?;
    eprintln!("nginx master {} worker {worker} on {url}; rounds {rounds} x {duration}s", nginx.master_pid());
    // the body must come back (and warm up the worker)
    check_response(&url)?;
    let _ = wrk(&url, 2)?;

    // BPF run-time statistics on for the whole run, so every probed configuration pays the same
    let _stats = enable_bpf_stats().map_err(|e| e.to_string())?;

    let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); configs.len()];
    for round in 0..rounds {
        // each round starts at a different configuration, so no configuration always follows
        // the same one (teardown of one run must not bias the next)
        let n = configs.len();
        for i in (0..n).map(|k| (k + round) % n) {
            let cfg = &configs[i];
            let s = measure(*cfg, &url, duration, &nginx, worker)?;
            eprintln!("round {} {:<45} [{}] {:>9.0} req/s", round + 1, cfg.label(), cfg.hooks(), s.rps);
            samples[i].push(s);
        }
    }
    report(&configs, &samples);
    for n in notes {
        println!("{n}");
    }
    drop(nginx);
    Ok(())
}

fn measure(cfg: Config, url: &str, duration: u64, nginx: &Nginx, worker: u32) -> Setup<Sample> {
    match cfg {
        Config::Unprobed => Ok(Sample { rps: wrk(url, duration)?.0, ..Sample::default() }),
        Config::Floor
        | Config::EmptyTracepoints
        | Config::EmptyOneTracepoint
        | Config::EmptyRawSyscalls
        | Config::EmptyFentry => {
            let _ebpf = load_empty(cfg, worker)?;
            std::thread::sleep(Duration::from_millis(300));
            let (rps, n) = wrk(url, duration)?;
            Ok(Sample { rps, wrk_requests: n, ..Sample::default() })
        }
        Config::Watched => run_chainwatch(url, duration, nginx.master_pid(), true, SyscallHooks::Auto),
        Config::WatchedTracepoints => run_chainwatch(url, duration, nginx.master_pid(), true, SyscallHooks::Tracepoints),
        Config::Unwatched | Config::UnwatchedTracepoints => {
            let mut sleeper = Command::new("sleep")
                .arg("600")
                .stdin(Stdio::null())
                .spawn()
                .map_err(|e| format!("spawning sleep: {e}"))?;
            let hooks = if cfg == Config::Unwatched { SyscallHooks::Auto } else { SyscallHooks::Tracepoints };
            let r = run_chainwatch(url, duration, sleeper.id(), false, hooks);
            let _ = sleeper.kill();
            let _ = sleeper.wait();
            r
        }
    }
}

/// Load the empty programs for one configuration; dropping the `Ebpf` detaches them.
fn load_empty(cfg: Config, worker: u32) -> Setup<Ebpf> {
    let mut ebpf = Ebpf::load(empty_object()).map_err(|e| format!("loading empty.bpf.o: {e}"))?;
    let floor_tracepoints = cfg == Config::Floor && CHAINWATCH_HOOKS == SyscallHooks::Tracepoints;
    let tracepoints = floor_tracepoints || cfg == Config::EmptyTracepoints;
    if tracepoints {
        let p: &mut TracePoint = prog(&mut ebpf, "empty_tp")?;
        p.load().map_err(|e| format!("loading empty_tp: {e}"))?;
        for tp in SYSCALL_TRACEPOINTS {
            p.attach("syscalls", tp).map_err(|e| format!("attaching empty_tp to {tp}: {e}"))?;
        }
    }
    if cfg == Config::EmptyOneTracepoint {
        let p: &mut TracePoint = prog(&mut ebpf, "empty_tp")?;
        p.load().map_err(|e| format!("loading empty_tp: {e}"))?;
        p.attach("syscalls", "sys_enter_connect").map_err(|e| format!("attaching empty_tp to sys_enter_connect: {e}"))?;
    }
    if cfg == Config::Floor || cfg == Config::EmptyRawSyscalls {
        let p: &mut RawTracePoint = prog(&mut ebpf, "empty_raw_tp")?;
        p.load().map_err(|e| format!("loading empty_raw_tp: {e}"))?;
        let points: &[&str] = if cfg == Config::Floor { &SCHED_TRACEPOINTS } else { &["sys_enter", "sys_exit"] };
        for tp in points {
            p.attach(tp).map_err(|e| format!("attaching empty_raw_tp to {tp}: {e}"))?;
        }
    }
    if cfg == Config::Floor {
        // chainwatch's uprobes on the worker: every libssl attach point and, in libc mode, every
        // libc one (an entry program where chainwatch has one, a return program likewise)
        let pid = NonZeroU32::new(worker).ok_or("nginx worker pid 0")?;
        for name in ["empty_uprobe", "empty_uretprobe"] {
            let p: &mut UProbe = prog(&mut ebpf, name)?;
            p.load().map_err(|e| format!("loading {name}: {e}"))?;
        }
        let mut libraries: Vec<&HookedLibrary> = vec![&LIBSSL];
        if CHAINWATCH_HOOKS == SyscallHooks::Libc {
            libraries.push(&LIBC);
        }
        for library in libraries {
            let libs = chainwatch_probe::procfs::library_candidates(worker, library.maps_needle, library.file_names);
            let lib = libs.first().ok_or_else(|| format!("no {} found for the nginx worker", library.name))?.clone();
            // the offsets chainwatch attaches at (past glibc's single-thread check)
            let symbols: Vec<&'static str> = library.attach_points.iter().map(|(_, s)| *s).collect();
            let offsets = symbol_offsets(&lib, &symbols, library.skip_single_thread_check);
            for (chainwatch_prog, symbol) in library.attach_points {
                let name = if chainwatch_prog.contains("exit") { "empty_uretprobe" } else { "empty_uprobe" };
                let offset = *offsets.get(symbol).ok_or_else(|| format!("{symbol} not found in {}", lib.display()))?;
                let p: &mut UProbe = prog(&mut ebpf, name)?;
                p.attach(UProbeAttachLocation::AbsoluteOffset(offset), &lib, UProbeScope::OneProcess(pid))
                    .map_err(|e| format!("attaching {name} to {symbol} in {}: {e}", lib.display()))?;
            }
        }
    }
    if cfg == Config::EmptyFentry {
        let btf = Btf::from_sys_fs().map_err(|e| format!("kernel BTF: {e}"))?;
        for sc in FENTRY_SYSCALLS {
            let target = format!("__x64_sys_{sc}");
            let name = format!("fentry_{sc}");
            let p: &mut FEntry = prog(&mut ebpf, &name)?;
            p.load(&target, &btf).map_err(|e| format!("loading {name}: {e}"))?;
            p.attach().map_err(|e| format!("attaching {name}: {e}"))?;
            let name = format!("fexit_{sc}");
            let p: &mut FExit = prog(&mut ebpf, &name)?;
            p.load(&target, &btf).map_err(|e| format!("loading {name}: {e}"))?;
            p.attach().map_err(|e| format!("attaching {name}: {e}"))?;
        }
    }
    Ok(ebpf)
}

fn prog<'a, T>(ebpf: &'a mut Ebpf, name: &str) -> Setup<&'a mut T>
where
    &'a mut T: TryFrom<&'a mut aya::programs::Program, Error = aya::programs::ProgramError>,
{
    let p = ebpf.program_mut(name).ok_or_else(|| format!("empty.bpf.o has no program {name}"))?;
    p.try_into().map_err(|e| format!("program {name}: {e}"))
}

/// Start chainwatch watching the tree of `root`, drain its events through a RecordMapper while
/// wrk runs, and account requests, losses and CPU.
fn run_chainwatch(url: &str, duration: u64, root: u32, count_requests: bool, hooks: SyscallHooks) -> Setup<Sample> {
    let config = ProbeConfig {
        selectors: vec![Selector::PidTree(root)],
        hold_exec: false,
        syscall_hooks: hooks,
        uprobe_events: std::env::var("OVERHEAD_UPROBE_EVENTS").map(|v| v != "0").unwrap_or(true),
        ..ProbeConfig::default()
    };
    let mut probe = Probe::start(config).map_err(|e| format!("starting chainwatch: {e}"))?;
    let used = probe.syscall_hooks().map_err(|e| e.to_string())?;
    let expected = if hooks == SyscallHooks::Auto { CHAINWATCH_HOOKS } else { hooks };
    if used != expected {
        return Err(format!("chainwatch hooks the socket calls with {} where {} was expected", used.as_str(), expected.as_str()));
    }
    let rx = probe.events().ok_or("probe events already taken")?;
    let counter = Arc::new(RequestCounter::default());
    let consumer = {
        let counter = counter.clone();
        let node = probe.node().to_string();
        std::thread::Builder::new()
            .name("overhead-consumer".into())
            .spawn(move || consume(rx, node, &counter))
            .map_err(|e| format!("spawning the consumer: {e}"))?
    };
    std::thread::sleep(Duration::from_millis(500));
    let loss0 = probe.loss_counters().map_err(|e| e.to_string())?;
    let stats0 = probe.program_stats().map_err(|e| e.to_string())?;
    let bpf0 = bpf_ns(&probe)?;
    let cpu0 = self_cpu_ns();
    counter.counting.store(count_requests, Ordering::SeqCst);
    let (rps, n) = wrk(url, duration)?;
    // let the reader drain what the last requests produced
    let mut last = counter.events.load(Ordering::SeqCst);
    for _ in 0..50 {
        std::thread::sleep(Duration::from_millis(100));
        let now = counter.events.load(Ordering::SeqCst);
        if now == last {
            break;
        }
        last = now;
    }
    counter.counting.store(false, Ordering::SeqCst);
    let cpu1 = self_cpu_ns();
    let bpf1 = bpf_ns(&probe)?;
    let stats1 = probe.program_stats().map_err(|e| e.to_string())?;
    let programs = stats1
        .iter()
        .map(|s1| {
            let s0 = stats0.iter().find(|s0| s0.name == s1.name);
            (
                s1.name.clone(),
                s1.run_count.saturating_sub(s0.map_or(0, |s| s.run_count)),
                s1.run_time_ns.saturating_sub(s0.map_or(0, |s| s.run_time_ns)),
            )
        })
        .collect();
    let loss1 = probe.loss_counters().map_err(|e| e.to_string())?;
    drop(probe); // closes the event channel: the consumer ends
    let _ = consumer.join();
    let loss = diff_loss(&loss1, &loss0);
    Ok(Sample {
        rps,
        wrk_requests: n,
        captured_requests: counter.requests.load(Ordering::SeqCst),
        lost_events: loss.ring_full_events + loss.map_full + loss.unpaired_ssl_calls + loss.read_faults + loss.undecodable,
        bpf_ns: bpf1.saturating_sub(bpf0),
        programs,
        user_cpu_ns: cpu1.saturating_sub(cpu0),
        loss,
    })
}

#[derive(Default)]
struct RequestCounter {
    counting: AtomicBool,
    requests: AtomicU64,
    events: AtomicU64,
}

/// The consumer: every event becomes a record; requests are counted in the TLS plaintext the
/// nginx worker read (one `GET ` per request: wrk does not pipeline).
fn consume(mut rx: tokio::sync::mpsc::Receiver<chainwatch_probe::events::ProbeEvent>, node: String, counter: &RequestCounter) {
    let mut mapper = RecordMapper::new(node);
    while let Some(ev) = rx.blocking_recv() {
        counter.events.fetch_add(1, Ordering::Relaxed);
        let record = mapper.map(&ev);
        if let JsonRecord::RawSegment(s) = &record
            && s.source == SegmentSource::Tls
            && s.kind == SegmentKind::Data
            && s.direction == Direction::Ingress
            && counter.counting.load(Ordering::Relaxed)
        {
            let n = s.payload.windows(4).filter(|w| *w == b"GET ").count() as u64;
            counter.requests.fetch_add(n, Ordering::Relaxed);
        }
    }
}

fn bpf_ns(probe: &Probe) -> Setup<u64> {
    Ok(probe.program_stats().map_err(|e| e.to_string())?.iter().map(|s| s.run_time_ns).sum())
}

/// User + system CPU of this process (all threads), from getrusage.
fn self_cpu_ns() -> u64 {
    // SAFETY: getrusage writes one rusage into the pointer we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above; RUSAGE_SELF is valid.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return 0;
    }
    let tv = |t: libc::timeval| (t.tv_sec as u64) * 1_000_000_000 + (t.tv_usec as u64) * 1_000;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn diff_loss(a: &LossCounters, b: &LossCounters) -> LossCounters {
    LossCounters {
        ring_full_events: a.ring_full_events.saturating_sub(b.ring_full_events),
        ring_full_bytes: a.ring_full_bytes.saturating_sub(b.ring_full_bytes),
        truncated_calls: a.truncated_calls.saturating_sub(b.truncated_calls),
        truncated_bytes: a.truncated_bytes.saturating_sub(b.truncated_bytes),
        map_full: a.map_full.saturating_sub(b.map_full),
        unpaired_ssl_calls: a.unpaired_ssl_calls.saturating_sub(b.unpaired_ssl_calls),
        unpaired_ssl_bytes: a.unpaired_ssl_bytes.saturating_sub(b.unpaired_ssl_bytes),
        read_faults: a.read_faults.saturating_sub(b.read_faults),
        undecodable: a.undecodable.saturating_sub(b.undecodable),
        uprobe_attach_failures: a.uprobe_attach_failures.saturating_sub(b.uprobe_attach_failures),
        seed_events_dropped: a.seed_events_dropped.saturating_sub(b.seed_events_dropped),
        holds_timed_out: a.holds_timed_out.saturating_sub(b.holds_timed_out),
        uprobe_attaches_deferred: a.uprobe_attaches_deferred.saturating_sub(b.uprobe_attaches_deferred),
    }
}

/// Run wrk; (requests/s, requests completed).
fn wrk(url: &str, seconds: u64) -> Setup<(f64, u64)> {
    let out = Command::new("wrk")
        .args(["-t1", "-c10", &format!("-d{seconds}s"), url])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("running wrk: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!("wrk failed ({}): {text}{}", out.status, String::from_utf8_lossy(&out.stderr)));
    }
    parse_wrk(&text).ok_or_else(|| format!("could not parse wrk output:\n{text}"))
}

/// "Requests/sec:  80000.00" and "  800000 requests in 10.00s, ..." from wrk's report; errors
/// reported by wrk ("Non-2xx", "Socket errors") make the run invalid.
fn parse_wrk(text: &str) -> Option<(f64, u64)> {
    if text.contains("Non-2xx") || text.contains("Socket errors") {
        return None;
    }
    let rps = text.lines().find_map(|l| l.trim().strip_prefix("Requests/sec:")).and_then(|v| v.trim().parse().ok())?;
    let n = text
        .lines()
        .find(|l| l.contains(" requests in "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|v| v.parse().ok())?;
    Some((rps, n))
}

fn check_response(url: &str) -> Setup<()> {
    // wrk itself with a 1 s run: a Non-2xx reply or no reply is a setup error
    wrk(url, 1).map(|_| ()).map_err(|e| format!("nginx does not answer {url}: {e}"))?;
    Ok(())
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn report(configs: &[Config], samples: &[Vec<Sample>]) {
    let rps = |c: Config| -> f64 {
        configs.iter().position(|x| *x == c).map(|i| median(samples[i].iter().map(|s| s.rps).collect())).unwrap_or(0.0)
    };
    println!();
    println!("nginx 1 worker, {}-byte JSON over loopback TLS, wrk -t1 -c10, keep-alive; median of {} runs", BODY.len(), samples.first().map_or(0, Vec::len));
    let via = if std::env::var("OVERHEAD_UPROBE_EVENTS").is_ok_and(|v| v == "0") { "aya per-process uprobes" } else { "named uprobe events" };
    println!("chainwatch attaches its per-process uprobes through {via}");
    println!("{:<46} {:<12} {:>12}   runs", "configuration", "hooks", "requests/s");
    for (i, c) in configs.iter().enumerate() {
        let runs: Vec<String> = samples[i].iter().map(|s| format!("{:.0}", s.rps)).collect();
        println!(
            "{:<46} {:<12} {:>12.0}   [{}]",
            c.label(),
            c.hooks(),
            median(samples[i].iter().map(|s| s.rps).collect()),
            runs.join(", ")
        );
    }
    let unprobed = rps(Config::Unprobed);
    let floor = rps(Config::Floor);
    let watched = rps(Config::Watched);
    let unwatched = rps(Config::Unwatched);
    println!();
    if let Some(i) = configs.iter().position(|c| *c == Config::Watched) {
        let per_req = |f: &dyn Fn(&Sample) -> u64| -> f64 {
            median(samples[i].iter().map(|s| f(s) as f64 / s.captured_requests.max(1) as f64).collect())
        };
        let bpf = per_req(&|s| s.bpf_ns);
        let user = per_req(&|s| s.user_cpu_ns);
        println!("probe CPU per captured request (watched): BPF {bpf:.0} ns + userspace {user:.0} ns = {:.0} ns", bpf + user);
        for (r, s) in samples[i].iter().enumerate() {
            let share = (s.captured_requests + s.lost_events) as f64 / s.wrk_requests.max(1) as f64;
            println!(
                "  run {}: wrk {} requests, captured {}, counted lost {} (ring full {}, map full {}, unpaired SSL {}, read faults {}, undecodable {}), captured+lost = {:.2}% of wrk's",
                r + 1,
                s.wrk_requests,
                s.captured_requests,
                s.lost_events,
                s.loss.ring_full_events,
                s.loss.map_full,
                s.loss.unpaired_ssl_calls,
                s.loss.read_faults,
                s.loss.undecodable,
                share * 100.0
            );
        }
    }
    if let Some(s) = configs.iter().position(|c| *c == Config::Watched).and_then(|i| samples[i].last()) {
        let mut progs: Vec<&(String, u64, u64)> = s.programs.iter().filter(|p| p.1 > 0).collect();
        progs.sort_by_key(|p| std::cmp::Reverse(p.2));
        println!("  BPF programs in the last watched run (runs per captured request, ns per run):");
        for (name, runs, ns) in progs.iter().take(10) {
            println!(
                "    {name:<24} {:>6.2} runs/req {:>8.0} ns/run",
                *runs as f64 / s.captured_requests.max(1) as f64,
                *ns as f64 / (*runs).max(1) as f64
            );
        }
    }
    if let Some(i) = configs.iter().position(|c| *c == Config::Unwatched) {
        let bpf = median(samples[i].iter().map(|s| s.bpf_ns as f64 / s.wrk_requests.max(1) as f64).collect());
        println!("unwatched: BPF run time per (unwatched) request {bpf:.0} ns");
    }
    println!();
    let verdict = |ok: bool| if ok { "PASS" } else { "MISS" };
    // the machine is shared: ratios of runs of the same round (minutes apart at most) are less
    // exposed to drifting background load than ratios of medians; the verdict uses both
    let round_ratio = |a: Config, b: Config| -> Option<f64> {
        let ia = configs.iter().position(|c| *c == a)?;
        let ib = configs.iter().position(|c| *c == b)?;
        let r: Vec<f64> = samples[ia]
            .iter()
            .zip(&samples[ib])
            .filter(|(_, y)| y.rps > 0.0)
            .map(|(x, y)| x.rps / y.rps)
            .collect();
        let runs: Vec<String> = r.iter().map(|v| format!("{v:.3}")).collect();
        println!("per-round {:<26} / {:<26} [{}]", a.label(), b.label(), runs.join(", "));
        Some(median(r))
    };
    let wf_round = round_ratio(Config::Watched, Config::Floor).unwrap_or(0.0);
    let uu_round = round_ratio(Config::Unwatched, Config::Unprobed).unwrap_or(0.0);
    let wf = if floor > 0.0 { watched / floor } else { 0.0 };
    let uu = if unprobed > 0.0 { unwatched / unprobed } else { 0.0 };
    println!("median of per-round ratios: watched / floor = {wf_round:.3}, unwatched / unprobed = {uu_round:.3}");
    let wf = wf.min(wf_round);
    let uu = uu.min(uu_round);
    println!("floor / unprobed      = {:.3}", if unprobed > 0.0 { floor / unprobed } else { 0.0 });
    println!("watched / floor       = {wf:.3}  (lower of median ratio and ratio of medians; target >= 0.90)  {}", verdict(wf >= 0.90));
    println!("unwatched / unprobed  = {uu:.3}  (lower of median ratio and ratio of medians; target >= 0.98)  {}", verdict(uu >= 0.98));
    if let Some(i) = configs.iter().position(|c| *c == Config::Watched) {
        // a request neither captured nor counted lost is a silent drop; wrk does not count the
        // up to 10 requests in flight at its cutoff, so captured may exceed wrk's count by that
        let silent: i64 = samples[i]
            .iter()
            .map(|s| s.wrk_requests as i64 - (s.captured_requests + s.lost_events) as i64)
            .max()
            .unwrap_or(0);
        println!("silent drops (max over runs, wrk - captured - lost) = {silent}  (target <= 0)  {}", verdict(silent <= 0));
    }
    let tps = rps(Config::EmptyTracepoints);
    let unwatched_tp = rps(Config::UnwatchedTracepoints);
    if tps > 0.0 && unwatched_tp > 0.0 {
        println!(
            "chainwatch tracepoints, unwatched / 23 empty syscall tracepoints = {:.3}  (tracepoints mode's own cost for unwatched tasks)",
            unwatched_tp / tps
        );
    }
    for c in OPTION_CONFIGS {
        if configs.contains(&c) && unprobed > 0.0 {
            println!("{:<46} / unprobed = {:.3}", c.label(), rps(c) / unprobed);
        }
    }
}

fn which(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join(tool)).find(|p| p.is_file()))
        .unwrap_or(None)
        .or_else(|| ["/usr/sbin", "/sbin"].iter().map(|d| Path::new(d).join(tool)).find(|p| p.is_file()))
}

/// A temp dir removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Setup<TempDir> {
        let p = std::env::temp_dir().join(format!("chainwatch-overhead-{}", std::process::id()));
        std::fs::create_dir_all(&p).map_err(|e| format!("creating {}: {e}", p.display()))?;
        Ok(TempDir(p))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// nginx with 1 worker serving BODY over TLS on 127.0.0.1 (self-signed cert); stopped on drop.
struct Nginx {
    child: Child,
    port: u16,
}

impl Nginx {
    fn start(dir: &Path) -> Setup<Nginx> {
        let key = dir.join("key.pem");
        let cert = dir.join("cert.pem");
        let status = Command::new("openssl")
            .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost", "-keyout"])
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map_err(|e| format!("running openssl: {e}"))?;
        if !status.success() {
            return Err(format!("openssl req failed: {status}"));
        }
        let port = free_port()?;
        let conf = format!(
            "worker_processes 1;\ndaemon off;\nmaster_process on;\npid {dir}/nginx.pid;\nerror_log {dir}/error.log;\n\
             events {{ worker_connections 1024; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {dir}/body;\n  proxy_temp_path {dir}/proxy;\n  \
             fastcgi_temp_path {dir}/fastcgi;\n  uwsgi_temp_path {dir}/uwsgi;\n  scgi_temp_path {dir}/scgi;\n  \
             keepalive_requests 100000000;\n  keepalive_timeout 300s;\n  \
             server {{\n    listen 127.0.0.1:{port} ssl;\n    ssl_certificate {cert};\n    ssl_certificate_key {key};\n    \
             location / {{ default_type application/json; return 200 '{BODY}'; }}\n  }}\n}}\n",
            dir = dir.display(),
            cert = cert.display(),
            key = key.display(),
        );
        let conf_path = dir.join("nginx.conf");
        std::fs::write(&conf_path, conf).map_err(|e| format!("writing nginx.conf: {e}"))?;
        let child = Command::new(which("nginx").ok_or("nginx not found")?)
            .arg("-c")
            .arg(&conf_path)
            .arg("-p")
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("starting nginx: {e}"))?;
        let mut nginx = Nginx { child, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(st)) = nginx.child.try_wait() {
                let mut err = String::new();
                if let Some(e) = nginx.child.stderr.take() {
                    for l in BufReader::new(e).lines().map_while(Result::ok) {
                        err.push_str(&l);
                        err.push('\n');
                    }
                }
                return Err(format!("nginx exited ({st}): {err}"));
            }
            if Instant::now() > deadline {
                return Err("nginx did not listen within 10 s".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(nginx)
    }

    fn master_pid(&self) -> u32 {
        self.child.id()
    }

    /// The single worker: the master's child.
    fn worker_pid(&self) -> Setup<u32> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let children = chainwatch_probe::procfs::process_tree(self.master_pid());
            if let Some(w) = children.into_iter().find(|p| *p != self.master_pid()) {
                return Ok(w);
            }
            if Instant::now() > deadline {
                return Err("nginx has no worker process".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGQUIT: graceful stop of master and worker
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGQUIT) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> Setup<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("finding a free port: {e}"))?;
    l.local_addr().map(|a| a.port()).map_err(|e| format!("finding a free port: {e}"))
}
