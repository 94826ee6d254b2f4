//! Build script: compiles probe/bpf/chainwatch.bpf.c with clang when clang is
//! present, otherwise embeds the committed probe/bpf/chainwatch.bpf.o. Either
//! way the object lands in OUT_DIR/chainwatch.bpf.o for `include_bytes_aligned!`.
//! The same for probe/bpf/empty.bpf.c -> OUT_DIR/empty.bpf.o, the do-nothing programs of the
//! overhead benchmark (benches/overhead.rs).
//!
//! Environment:
//! - `CHAINWATCH_CLANG`: the clang to use (default: `clang-19`, then `clang`);
//! - `CHAINWATCH_BPF_USE_COMMITTED=1`: skip clang and embed the committed object.

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;

const SOURCES: [&str; 3] = ["chainwatch.h", "chainwatch.bpf.c", "vmlinux.h"];

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
    let bpf_dir = manifest.join("bpf");
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").unwrap_or_default());
    let out_obj = out_dir.join("chainwatch.bpf.o");
    for f in SOURCES.iter().chain(["chainwatch.bpf.o", "chainwatch.bpf.o.sha256"].iter()) {
        println!("cargo:rerun-if-changed=bpf/{f}");
    }
    println!("cargo:rerun-if-env-changed=CHAINWATCH_CLANG");
    println!("cargo:rerun-if-env-changed=CHAINWATCH_BPF_USE_COMMITTED");

    let use_committed = std::env::var("CHAINWATCH_BPF_USE_COMMITTED").is_ok_and(|v| v == "1");
    let clang = if use_committed { None } else { find_clang() };
    match clang {
        Some(clang) => {
            let status = Command::new(&clang)
                .args(["-target", "bpf", "-g", "-O2", "-D__TARGET_ARCH_x86"])
                .arg("-I/usr/include/x86_64-linux-gnu")
                .arg(format!("-I{}", bpf_dir.display()))
                .args(["-Wall", "-c"])
                .arg(bpf_dir.join("chainwatch.bpf.c"))
                .arg("-o")
                .arg(&out_obj)
                .status();
            match status {
                Ok(s) if s.success() => {
                    println!("cargo:rustc-env=CHAINWATCH_BPF_ORIGIN=clang:{clang}");
                }
                Ok(s) => panic!("{clang} failed to compile bpf/chainwatch.bpf.c ({s}); is libbpf-dev installed?"),
                Err(e) => panic!("could not run {clang}: {e}"),
            }
        }
        None => {
            let committed = bpf_dir.join("chainwatch.bpf.o");
            std::fs::copy(&committed, &out_obj)
                .unwrap_or_else(|e| panic!("no clang and no committed object {}: {e}", committed.display()));
            let recorded = std::fs::read_to_string(bpf_dir.join("chainwatch.bpf.o.sha256")).unwrap_or_default();
            if recorded.trim() != source_hash(&bpf_dir) {
                println!(
                    "cargo:warning=probe/bpf/chainwatch.bpf.o is older than its sources; run probe/bpf/build.sh on a machine with clang-19"
                );
            }
            println!("cargo:rustc-env=CHAINWATCH_BPF_ORIGIN=committed");
        }
    }
    build_empty_object(&bpf_dir, &out_dir, use_committed);
}

/// The benchmark's empty programs: compiled like the main object, or the committed
/// bpf/empty.bpf.o (hash of empty.bpf.c in bpf/empty.bpf.o.sha256).
fn build_empty_object(bpf_dir: &Path, out_dir: &Path, use_committed: bool) {
    for f in ["empty.bpf.c", "empty.bpf.o", "empty.bpf.o.sha256"] {
        println!("cargo:rerun-if-changed=bpf/{f}");
    }
    let out_obj = out_dir.join("empty.bpf.o");
    let clang = if use_committed { None } else { find_clang() };
    match clang {
        Some(clang) => {
            let status = Command::new(&clang)
                .args(["-target", "bpf", "-g", "-O2", "-D__TARGET_ARCH_x86"])
                .arg("-I/usr/include/x86_64-linux-gnu")
                .arg(format!("-I{}", bpf_dir.display()))
                .args(["-Wall", "-c"])
                .arg(bpf_dir.join("empty.bpf.c"))
                .arg("-o")
                .arg(&out_obj)
                .status();
            match status {
                Ok(s) if s.success() => {}
                Ok(s) => panic!("{clang} failed to compile bpf/empty.bpf.c ({s}); is libbpf-dev installed?"),
                Err(e) => panic!("could not run {clang}: {e}"),
            }
        }
        None => {
            let committed = bpf_dir.join("empty.bpf.o");
            std::fs::copy(&committed, &out_obj)
                .unwrap_or_else(|e| panic!("no clang and no committed object {}: {e}", committed.display()));
            let recorded = std::fs::read_to_string(bpf_dir.join("empty.bpf.o.sha256")).unwrap_or_default();
            let mut h = Sha256::new();
            h.update(std::fs::read(bpf_dir.join("empty.bpf.c")).unwrap_or_default());
            let current: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
            if recorded.trim() != current {
                println!("cargo:warning=probe/bpf/empty.bpf.o is older than empty.bpf.c; run probe/bpf/build.sh on a machine with clang-19");
            }
        }
    }
}

/// clang-19 first (an older clang made objects the verifier refused), then plain clang.
fn find_clang() -> Option<String> {
    let candidates: Vec<String> = match std::env::var("CHAINWATCH_CLANG") {
        Ok(c) if !c.is_empty() => vec![c],
        _ => vec!["clang-19".into(), "clang".into()],
    };
    candidates.into_iter().find(|c| {
        Command::new(c)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

/// sha256 of the sources in a fixed order, as `probe/bpf/build.sh` records it.
fn source_hash(bpf_dir: &Path) -> String {
    let mut h = Sha256::new();
    for f in SOURCES {
        h.update(std::fs::read(bpf_dir.join(f)).unwrap_or_default());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}
