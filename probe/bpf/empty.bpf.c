// SPDX-License-Identifier: GPL-2.0
/* empty.bpf.c: programs that do nothing, for the overhead benchmark (probe/benches/overhead.rs).
 * Attached to the same points as chainwatch.bpf.c they measure the floor: the cost of the traps
 * alone. The raw_tp/sys_* and fentry/fexit programs measure cheaper ways to hook the syscalls. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

/* one perf-event tracepoint program, attached to every syscall tracepoint chainwatch uses */
SEC("tracepoint/syscalls/sys_enter_read")
int empty_tp(void *ctx)
{
	return 0;
}

/* one raw tracepoint program: the sched tracepoints, or raw_syscalls sys_enter/sys_exit */
SEC("raw_tp/sched_process_fork")
int empty_raw_tp(void *ctx)
{
	return 0;
}

SEC("uprobe")
int empty_uprobe(void *ctx)
{
	return 0;
}

SEC("uretprobe")
int empty_uretprobe(void *ctx)
{
	return 0;
}

/* fentry/fexit on the syscall functions themselves: no syscall slow path for every task,
 * only a trampoline call on these functions */
#define EMPTY_FENTRY(name)                                          \
	SEC("fentry/__x64_sys_" #name) int fentry_##name(void *ctx) \
	{                                                           \
		return 0;                                           \
	}                                                           \
	SEC("fexit/__x64_sys_" #name) int fexit_##name(void *ctx)   \
	{                                                           \
		return 0;                                           \
	}

EMPTY_FENTRY(read)
EMPTY_FENTRY(write)
EMPTY_FENTRY(readv)
EMPTY_FENTRY(writev)
EMPTY_FENTRY(sendto)
EMPTY_FENTRY(recvfrom)
EMPTY_FENTRY(sendmsg)
EMPTY_FENTRY(recvmsg)
EMPTY_FENTRY(connect)
EMPTY_FENTRY(accept)
EMPTY_FENTRY(accept4)
EMPTY_FENTRY(close)
