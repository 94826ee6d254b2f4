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
    println!("cargo:rerun-if-env-changed=CHAINWATCH_CLANG");
    println!("cargo:rerun-if-env-changed=CHAINWATCH_BPF_USE_COMMITTED");

    let use_committed = std::env::var("CHAINWATCH_BPF_USE_COMMITTED").is_ok_and(|v| v == "1");
    let clang = if use_committed { None } else { find_clang() };
    let origin = build_object(&bpf_dir, &out_dir, "chainwatch", &SOURCES, clang.as_deref());
    println!("cargo:rustc-env=CHAINWATCH_BPF_ORIGIN={origin}");
    build_object(&bpf_dir, &out_dir, "empty", &["empty.bpf.c"], clang.as_deref());
}

/// bpf/NAME.bpf.c -> OUT_DIR/NAME.bpf.o: compiled by `clang` when there is one, else the
/// committed bpf/NAME.bpf.o, with a warning when its recorded hash (bpf/NAME.bpf.o.sha256, over
/// `sources` in order, as build.sh writes it) no longer matches. Returns where it came from.
fn build_object(bpf_dir: &Path, out_dir: &Path, name: &str, sources: &[&str], clang: Option<&str>) -> String {
    let (src, obj, sha) = (format!("{name}.bpf.c"), format!("{name}.bpf.o"), format!("{name}.bpf.o.sha256"));
    for f in sources.iter().chain([&obj.as_str(), &sha.as_str()]) {
        println!("cargo:rerun-if-changed=bpf/{f}");
    }
    let out_obj = out_dir.join(&obj);
    match clang {
        Some(clang) => {
            let status = Command::new(clang)
                .args(["-target", "bpf", "-g", "-O2", "-D__TARGET_ARCH_x86"])
                .arg("-I/usr/include/x86_64-linux-gnu")
                .arg(format!("-I{}", bpf_dir.display()))
                .args(["-Wall", "-c"])
                .arg(bpf_dir.join(&src))
                .arg("-o")
                .arg(&out_obj)
                .status();
            match status {
                Ok(s) if s.success() => format!("clang:{clang}"),
                Ok(s) => panic!("{clang} failed to compile bpf/{src} ({s}); is libbpf-dev installed?"),
                Err(e) => panic!("could not run {clang}: {e}"),
            }
        }
        None => {
            let committed = bpf_dir.join(&obj);
            std::fs::copy(&committed, &out_obj)
                .unwrap_or_else(|e| panic!("no clang and no committed object {}: {e}", committed.display()));
            let recorded = std::fs::read_to_string(bpf_dir.join(&sha)).unwrap_or_default();
            if recorded.trim() != source_hash(bpf_dir, sources) {
                println!(
                    "cargo:warning=probe/bpf/{obj} is older than its sources; run probe/bpf/build.sh on a machine with clang-19"
                );
            }
            "committed".into()
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
fn source_hash(bpf_dir: &Path, sources: &[&str]) -> String {
    let mut h = Sha256::new();
    for f in sources {
        h.update(std::fs::read(bpf_dir.join(f)).unwrap_or_default());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}
