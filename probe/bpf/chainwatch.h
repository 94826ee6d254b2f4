/* SPDX-License-Identifier: GPL-2.0-only OR Apache-2.0 */
/*
 * chainwatch.h: the wire layout shared by the kernel programs and the Rust
 * decoder (probe/src/events.rs mirrors every struct here, byte for byte,
 * little endian). Change both together; the decoder tests pin the sizes.
 */
#ifndef CHAINWATCH_H
#define CHAINWATCH_H

#define CW_MAX_CHUNK 16384u        /* payload bytes per data event */
#define CW_DEFAULT_CALL_CAP (256u * 1024u)
#define CW_MAX_CALL_CAP (4u * 1024u * 1024u)
#define CW_MAX_IOV 64u
#define CW_COMM_LEN 16
#define CW_FILENAME_LEN 256
#define CW_ARGV_LEN 1024

/* event kinds (first u32 of every ring-buffer record) */
#define CW_EV_EXEC 1
#define CW_EV_FORK 2
#define CW_EV_EXIT 3
#define CW_EV_CONN_OPEN 4
#define CW_EV_CONN_CLOSE 5
#define CW_EV_DATA 6
#define CW_EV_GAP 7

/* connection roles */
#define CW_ROLE_UNKNOWN 0 /* found on first data: existed before we looked */
#define CW_ROLE_CLIENT 1  /* connect() */
#define CW_ROLE_SERVER 2  /* accept()/accept4() */

/* directions */
#define CW_DIR_EGRESS 0
#define CW_DIR_INGRESS 1

/* gap reasons */
#define CW_GAP_CALL_CAP 1   /* the per-call cap was reached */
#define CW_GAP_READ_FAULT 2 /* user memory could not be read */

/* loss counter slots (per-CPU array, u64 each) */
#define CW_LOSS_RING_FULL 0         /* events the ring buffer refused */
#define CW_LOSS_RING_FULL_BYTES 1   /* payload bytes inside those events */
#define CW_LOSS_TRUNCATED_CALLS 2   /* calls longer than the per-call cap */
#define CW_LOSS_TRUNCATED_BYTES 3   /* bytes reported as GAP because of the cap */
#define CW_LOSS_MAP_FULL 4          /* map updates that failed */
#define CW_LOSS_UNPAIRED_SSL 5      /* SSL calls whose socket fd was never seen */
#define CW_LOSS_UNPAIRED_SSL_BYTES 6
#define CW_LOSS_READ_FAULT 7        /* user/kernel reads that failed */
#define CW_LOSS_SLOTS 8

struct cw_header {
	__u32 kind;
	__u32 tgid;
	__u32 tid;
	__u32 reserved;
	__u64 ts_ns; /* bpf_ktime_get_ns(): CLOCK_MONOTONIC */
}; /* 24 bytes */

/* EXEC, FORK, EXIT; the subject process is header.tgid (for FORK: the child) */
struct cw_proc_event {
	struct cw_header h;
	__u32 ppid;
	__u32 uid;
	__u64 start_ns;        /* task->group_leader->start_boottime (CLOCK_BOOTTIME ns) */
	__u64 parent_start_ns;
	__u64 cgroup_id;
	__s32 exit_code;       /* EXIT: wait(2)-style status */
	__u32 argv_len;        /* bytes of argv captured (NUL-separated) */
	__u32 argv_truncated;  /* 1 when argv was longer than CW_ARGV_LEN */
	__u32 watched;         /* 1 when the subject was in the watched set when the event was made */
	char comm[CW_COMM_LEN];
	char filename[CW_FILENAME_LEN];
	char argv[CW_ARGV_LEN];
};

/* CONN_OPEN, CONN_CLOSE */
struct cw_conn_event {
	struct cw_header h;
	__s32 fd;
	__u16 family; /* AF_INET=2, AF_INET6=10 */
	__u16 role;
	__u64 conn_start_ns;
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 sport;
	__u16 dport;
	__u32 tls;
	__u64 bytes_egress;  /* CLOSE: totals of the socket streams */
	__u64 bytes_ingress;
};

/* DATA (payload follows the header) and GAP (no payload) */
struct cw_data_event {
	struct cw_header h;
	__s32 fd;
	__u8 direction;
	__u8 tls;
	__u8 gap_reason;
	__u8 reserved;
	__u64 conn_start_ns;
	__u64 position;     /* stream offset of the first byte (of the gap) */
	__u64 call_len;     /* bytes the whole call moved */
	__u32 captured_len; /* payload bytes following (0 for GAP) */
	__u32 reserved2;
	__u64 gap_len;      /* GAP: exact number of bytes not captured */
};

struct cw_config {
	__u32 self_tgid;          /* never captured */
	__u32 watch_all;          /* capture every process but self */
	__u32 per_call_cap;       /* bytes captured per call (0 = default) */
	__u32 hold_exec;          /* SIGSTOP a watched process at exec until userspace attached uprobes */
	__u32 all_process_events; /* emit exec/fork/exit for every process (selectors decide in userspace) */
	__u32 exit_has_group_dead; /* sched_process_exit(task, group_dead) (6.16+); else signal->live is read */
	__u32 port_filter;         /* only connections with a local or remote port in watched_ports */
	__u32 reserved;
};

struct cw_conn_key {
	__u32 tgid;
	__s32 fd;
};

#endif
