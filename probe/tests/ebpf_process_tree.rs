//! Integration test (root, real eBPF): sh -> python3 -> curl gives the right process tree
//! from sched_process_fork/exec/exit, with identities (tgid, start_ns), exe, argv and exit codes.

mod ebpf_support;

use chainwatch_probe::events::{ProbeEvent, ProcessEvent, ProcessEventKind};
use ebpf_support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sh_python_curl_tree() {
    require_root();
    let server = start_server(PYTHON, &["-c", HTTP_SERVER]);
    let url = format!("http://127.0.0.1:{}/tree", server.port);
    let py = format!(
        "import subprocess, sys; sys.exit(subprocess.run(['curl', '-sS', '-o', '/dev/null', '-d', 'x=1', '{url}']).returncode)"
    );
    // `; exit $?` keeps dash from exec'ing python in place of itself
    let script = format!("{PYTHON} -c \"{py}\"; exit $?");
    let (events, root, status, _loss) = capture(&["/bin/sh", "-c", &script], config()).await;
    assert_eq!(status.map(|s| s >> 8), Some(0), "tree failed: {status:?}");

    let procs: Vec<&ProcessEvent> = events
        .iter()
        .filter_map(|e| match e {
            ProbeEvent::Process(p) => Some(p),
            _ => None,
        })
        .collect();
    let of = |kind: ProcessEventKind, pred: &dyn Fn(&ProcessEvent) -> bool| -> Vec<&ProcessEvent> {
        procs.iter().copied().filter(|p| p.kind == kind && pred(p)).collect()
    };

    let sh_exec = of(ProcessEventKind::Exec, &|p| p.tgid == root);
    assert_eq!(sh_exec.len(), 1, "one exec of sh: {procs:#?}");
    let sh = sh_exec[0];
    assert_eq!(sh.exe, "/bin/sh");
    assert_eq!(sh.argv.first().map(String::as_str), Some("/bin/sh"));
    assert_eq!(sh.argv.get(1).map(String::as_str), Some("-c"));

    let py_exec = of(ProcessEventKind::Exec, &|p| p.exe == PYTHON);
    assert_eq!(py_exec.len(), 1, "one exec of python3: {procs:#?}");
    let py = py_exec[0];
    assert_eq!((py.ppid, py.parent_start_ns), (sh.tgid, sh.start_ns), "python3's parent is sh");
    assert_eq!(py.argv.get(1).map(String::as_str), Some("-c"));
    let py_fork = of(ProcessEventKind::Fork, &|p| p.tgid == py.tgid);
    assert_eq!(py_fork.len(), 1, "python3 was forked by sh");
    assert_eq!((py_fork[0].ppid, py_fork[0].start_ns), (sh.tgid, py.start_ns), "identity survives exec");

    let curl_exec = of(ProcessEventKind::Exec, &|p| p.exe.ends_with("/curl"));
    assert_eq!(curl_exec.len(), 1, "one exec of curl: {procs:#?}");
    let curl = curl_exec[0];
    assert_eq!((curl.ppid, curl.parent_start_ns), (py.tgid, py.start_ns), "curl's parent is python3");
    assert_eq!(curl.comm, "curl");
    assert!(curl.argv.iter().any(|a| a == &url), "argv of curl: {:?}", curl.argv);

    for p in [sh, py, curl] {
        let exits = of(ProcessEventKind::Exit, &|e| e.tgid == p.tgid);
        assert_eq!(exits.len(), 1, "one exit of {}: {procs:#?}", p.exe);
        assert_eq!(exits[0].start_ns, p.start_ns);
        assert_eq!(exits[0].exit_status, Some(0), "{} exit status", p.exe);
    }
    // children exit before parents
    let pos = |t: u32| {
        events.iter().position(|e| matches!(e, ProbeEvent::Process(p) if p.kind == ProcessEventKind::Exit && p.tgid == t))
    };
    assert!(pos(curl.tgid) < pos(py.tgid) && pos(py.tgid) < pos(sh.tgid));
    // and curl's connection is attributed to curl
    assert!(opens(&events, curl.tgid).iter().any(|c| c.tuple.is_some_and(|t| t.remote.port() == server.port)));
}
