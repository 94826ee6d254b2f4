#!/bin/sh
# build.sh: rebuild the committed eBPF object and record the hash of its sources.
# Run after changing chainwatch.bpf.c, chainwatch.h or vmlinux.h, and commit all three outputs:
#   chainwatch.bpf.o        the object machines without clang embed
#   chainwatch.bpf.o.sha256 sha256 of chainwatch.h + chainwatch.bpf.c + vmlinux.h (in that order)
#   empty.bpf.o, empty.bpf.o.sha256  the benchmark's empty programs and the sha256 of empty.bpf.c
# Needs clang-19 (Debian: clang-19) and libbpf-dev (the bpf/*.h headers).
# To regenerate vmlinux.h: bpftool btf dump file /sys/kernel/btf/vmlinux format c > vmlinux.h
set -eu
cd "$(dirname "$0")"
CLANG="${CHAINWATCH_CLANG:-clang-19}"
"$CLANG" -target bpf -g -O2 -D__TARGET_ARCH_x86 -I/usr/include/x86_64-linux-gnu -I. -Wall -Werror -fdebug-compilation-dir=. \
	-c chainwatch.bpf.c -o chainwatch.bpf.o
cat chainwatch.h chainwatch.bpf.c vmlinux.h | sha256sum | cut -d' ' -f1 > chainwatch.bpf.o.sha256
echo "wrote chainwatch.bpf.o and chainwatch.bpf.o.sha256 ($(cat chainwatch.bpf.o.sha256))"
# empty.bpf.o: the do-nothing programs of the overhead benchmark (probe/benches/overhead.rs)
"$CLANG" -target bpf -g -O2 -D__TARGET_ARCH_x86 -I/usr/include/x86_64-linux-gnu -I. -Wall -Werror -fdebug-compilation-dir=. \
	-c empty.bpf.c -o empty.bpf.o
sha256sum empty.bpf.c | cut -d' ' -f1 > empty.bpf.o.sha256
echo "wrote empty.bpf.o and empty.bpf.o.sha256 ($(cat empty.bpf.o.sha256))"
