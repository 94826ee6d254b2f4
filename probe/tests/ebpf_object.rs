//! The committed eBPF object (probe/bpf/chainwatch.bpf.o, used by machines without clang)
//! must be built from the committed sources: its recorded source hash must match, and when
//! clang-19 is present a fresh compile must give the same bytes. Plus: the object loads.

mod ebpf_support;

use sha2::{Digest, Sha256};
use std::path::PathBuf;
use std::process::Command;

fn bpf_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("bpf")
}

fn source_hash() -> String {
    let mut h = Sha256::new();
    for f in ["chainwatch.h", "chainwatch.bpf.c", "vmlinux.h"] {
        h.update(std::fs::read(bpf_dir().join(f)).unwrap_or_else(|e| panic!("reading bpf/{f}: {e}")));
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn committed_object_records_the_hash_of_the_current_sources() {
    let recorded = std::fs::read_to_string(bpf_dir().join("chainwatch.bpf.o.sha256")).expect("bpf/chainwatch.bpf.o.sha256");
    assert_eq!(
        recorded.trim(),
        source_hash(),
        "probe/bpf/chainwatch.bpf.o is stale: run probe/bpf/build.sh (needs clang-19) and commit its outputs"
    );
}

#[test]
fn committed_object_is_what_clang_builds_from_the_sources() {
    let clang = std::env::var("CHAINWATCH_CLANG").unwrap_or_else(|_| "clang-19".into());
    if Command::new(&clang).arg("--version").output().is_err() {
        eprintln!("NOTE: {clang} not installed; only the recorded source hash was checked");
        return;
    }
    let out = std::env::temp_dir().join(format!("chainwatch-bpf-check-{}.o", std::process::id()));
    let status = Command::new(&clang)
        .current_dir(bpf_dir())
        .args(["-target", "bpf", "-g", "-O2", "-D__TARGET_ARCH_x86", "-I/usr/include/x86_64-linux-gnu", "-I.", "-Wall", "-Werror", "-fdebug-compilation-dir=."])
        .args(["-c", "chainwatch.bpf.c", "-o"])
        .arg(&out)
        .status()
        .expect("running clang");
    assert!(status.success(), "{clang} could not compile bpf/chainwatch.bpf.c");
    let fresh = std::fs::read(&out).expect("fresh object");
    let _ = std::fs::remove_file(&out);
    let committed = std::fs::read(bpf_dir().join("chainwatch.bpf.o")).expect("committed object");
    assert!(fresh == committed, "probe/bpf/chainwatch.bpf.o differs from what {clang} builds: run probe/bpf/build.sh");
}

#[test]
fn the_programs_load_and_attach() {
    ebpf_support::require_root();
    let probe = chainwatch_probe::ebpf::Probe::start(ebpf_support::config())
        .unwrap_or_else(|e| panic!("loading the eBPF programs failed: {e}"));
    let loss = probe.loss_counters().expect("loss counters");
    assert_eq!(loss.map_full, 0);
    eprintln!("object origin: {}", chainwatch_probe::ebpf::OBJECT_ORIGIN);
}

#[test]
fn a_probe_dropped_while_its_consumer_is_full_still_stops() {
    ebpf_support::require_root();
    let cfg = chainwatch_probe::ebpf::ProbeConfig { channel_capacity: 1, ..ebpf_support::config() };
    let mut probe = chainwatch_probe::ebpf::Probe::start(cfg).expect("probe");
    let rx = probe.events();
    // generate more events than the channel holds, never read them
    let mut child = std::process::Command::new("/bin/sh").args(["-c", "sleep 0.3; for i in 1 2 3; do /bin/true; done"]).spawn().unwrap();
    probe.watch_pid(child.id()).expect("watch");
    // the shell's children are held at exec and their exec records sit unread behind the full
    // channel: the hold timeout must still let them run
    let started = std::time::Instant::now();
    let status = child.wait().expect("wait");
    assert!(status.success(), "{status}");
    assert!(started.elapsed() < std::time::Duration::from_secs(30), "held children took {:?}", started.elapsed());
    let loss = probe.loss_counters().expect("loss counters");
    assert!(loss.holds_timed_out >= 1, "{loss:?}");
    std::thread::sleep(std::time::Duration::from_millis(300));
    drop(probe); // must not hang on the full channel
    drop(rx);
}

#[test]
fn bad_sizes_are_refused_with_a_reason() {
    let cfg = chainwatch_probe::ebpf::ProbeConfig { ring_buffer_bytes: 5000, ..ebpf_support::config() };
    let err = chainwatch_probe::ebpf::Probe::start(cfg).err().expect("refused");
    assert!(err.to_string().contains("power of two"), "{err}");
    let cfg = chainwatch_probe::ebpf::ProbeConfig { per_call_cap: 0, ..ebpf_support::config() };
    assert!(chainwatch_probe::ebpf::Probe::start(cfg).is_err());
}
