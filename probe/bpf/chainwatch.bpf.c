// SPDX-License-Identifier: GPL-2.0-only OR Apache-2.0
/*
 * chainwatch.bpf.c: the kernel side of the chainwatch probe.
 *
 * - raw tracepoints sched_process_{fork,exec,exit}: process events and the
 *   watched-tgid set (children of watched processes are watched);
 * - the socket calls (connect, accept, accept4, read, write, readv, writev,
 *   recv(from), send(to), recvmsg, sendmsg, close), hooked one of two ways with
 *   the same bodies: syscall tracepoints (global), or uprobes on libc's
 *   wrappers attached per watched process by userspace: TCP payload of
 *   watched processes, tuple read from the fd (files->fdt->fd[fd]->private_data);
 * - uprobes/uretprobes on libssl (SSL_read/_ex, SSL_write/_ex, handshake and
 *   shutdown), attached per watched process by userspace: plaintext, paired
 *   with the socket fd of the syscalls made while the SSL call is running.
 *
 * Everything goes through one ring buffer; every loss is counted per CPU.
 * Built with: clang -target bpf -g -O2 -D__TARGET_ARCH_x86 (see build.rs).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>
#include "chainwatch.h"

char LICENSE[] SEC("license") = "GPL";

#define CW_AF_INET 2
#define CW_AF_INET6 10
#define CW_S_IFMT 00170000
#define CW_S_IFSOCK 0140000
#define CW_EINPROGRESS 115
#define CW_SIGSTOP 19
#define CW_SIGNAL_GROUP_EXIT 0x00000004
#define CW_TCP_ESTABLISHED 1
#define CW_TCP_SYN_SENT 2

/* ---------------------------------------------------------------- maps */

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 16 * 1024 * 1024);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct cw_config);
} cw_config_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, CW_LOSS_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} loss SEC(".maps");

/* tgid -> 1: processes whose syscalls and SSL calls are captured */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 32768);
	__type(key, __u32);
	__type(value, __u8);
} watched SEC(".maps");

/* cgroup id -> 1: processes exec'ing or forking in these cgroups become watched */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, __u8);
} watched_cgroups SEC(".maps");

/* comm (16 bytes, NUL padded) -> 1: processes exec'ing with this comm become watched */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, char[CW_COMM_LEN]);
	__type(value, __u8);
} watched_comms SEC(".maps");

/* port -> 1: with cw_config.port_filter, only connections with one of these ports are tracked */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u16);
	__type(value, __u8);
} watched_ports SEC(".maps");

/* tgid -> ktime of the SIGSTOP sent at exec (userspace continues it) */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, __u64);
} held SEC(".maps");

/* syscall arguments saved at enter (the thread's call in flight, see cw_task_calls) */
struct cw_call_args {
	__u64 buf;    /* buffer, or iovec array */
	__u64 count;  /* iovec count when is_iov */
	__s32 fd;
	__u8 is_iov;
	__u8 direction;
	__u8 reserved[2];
};

/* per-connection state, keyed by (tgid, fd); reset on connect/accept/close */
struct cw_conn_state {
	__u64 start_ns;
	__u64 pos[2];     /* socket stream positions (egress, ingress) */
	__u64 tls_pos[2]; /* plaintext stream positions once TLS */
	__u8 tls;
	__u8 role;
	__u8 reserved[6];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct cw_conn_key);
	__type(value, struct cw_conn_state);
} conns SEC(".maps");

/* an SSL call on the stack of a thread, keyed by pid_tgid */
struct cw_ssl_call {
	__u64 ssl;
	__u64 buf;
	__u64 len_ptr;  /* _ex variants: where the byte count is written */
	__s32 fd;       /* socket fd seen during the call, -1 until then */
	__u8 direction; /* egress for writes, ingress for reads */
	__u8 is_data;   /* read/write (1) or handshake/shutdown (0) */
	__u8 depth;     /* nesting (SSL_connect calls SSL_do_handshake) */
	__u8 reserved;
};

/*
 * The calls in flight on one thread: a socket call between its enter and exit, and an SSL
 * call (with the socket fd its syscalls used). Task-local storage rather than a hash map
 * keyed by pid_tgid: a lookup is a pointer walk from the task with no hashing or bucket lock,
 * "done" is a flag rather than a delete, and the storage dies with the thread (no entries of
 * dead threads). Measured on the overhead benchmark: these saves and lookups run on every
 * watched read/write/SSL call, so they are most of the per-call cost.
 */
struct cw_task_calls {
	struct cw_call_args sys;
	struct cw_ssl_call ssl;
	__u8 sys_active;
	__u8 ssl_active;
	__u8 reserved[6];
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct cw_task_calls);
} task_calls SEC(".maps");

/* The current thread's calls in flight; created on first use when `create`. */
static __always_inline struct cw_task_calls *current_calls(bool create)
{
	struct task_struct *task = bpf_get_current_task_btf();
	return bpf_task_storage_get(&task_calls, task, 0, create ? BPF_LOCAL_STORAGE_GET_F_CREATE : 0);
}

struct cw_ssl_key {
	__u32 tgid;
	__u32 reserved;
	__u64 ssl;
};

/* (tgid, SSL*) -> socket fd; LRU: an evicted entry is re-learned on the next syscall */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct cw_ssl_key);
	__type(value, __s32);
} ssl_fds SEC(".maps");

/* per-CPU scratch space for events too big for the BPF stack */
struct cw_data_scratch {
	struct cw_data_event ev;
	__u8 data[CW_MAX_CHUNK];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct cw_data_scratch);
} data_scratch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct cw_proc_event);
} proc_scratch SEC(".maps");

/* the state of one payload emission, shared with the bpf_loop callback */

/*
 * Kept in a per-CPU map rather than on the stack so the verifier sees unknown
 * scalars in the loop callback and converges. Tracepoint and uprobe programs
 * do not nest on one CPU (bpf_prog_active), so one slot per CPU is enough.
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct cw_emit_ctx);
} emit_state SEC(".maps");

/* ------------------------------------------------------------- helpers */

static __always_inline void count_loss(__u32 slot, __u64 n)
{
	__u64 *v = bpf_map_lookup_elem(&loss, &slot);
	if (v)
		*v += n;
}

static __always_inline struct cw_config *get_config(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&cw_config_map, &zero);
}

/* The first thing every syscall program asks: one hash lookup for watched tgids. */
static __always_inline bool is_watched(__u32 tgid)
{
	if (bpf_map_lookup_elem(&watched, &tgid))
		return true;
	struct cw_config *cfg = get_config();
	return cfg && cfg->watch_all && tgid != cfg->self_tgid;
}

static __always_inline void fill_header(struct cw_header *h, __u32 kind)
{
	__u64 id = bpf_get_current_pid_tgid();
	h->kind = kind;
	h->tgid = id >> 32;
	h->tid = (__u32)id;
	h->reserved = 0;
	h->ts_ns = bpf_ktime_get_ns();
}

/* The TCP socket behind fd of the current task, or NULL. */
static __always_inline struct sock *tcp_sock_of_fd(int fd)
{
	if (fd < 0)
		return NULL;
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	if (!fdt)
		return NULL;
	unsigned int max_fds = BPF_CORE_READ(fdt, max_fds);
	if ((unsigned int)fd >= max_fds)
		return NULL;
	struct file **fds = BPF_CORE_READ(fdt, fd);
	struct file *file = NULL;
	if (bpf_probe_read_kernel(&file, sizeof(file), &fds[fd]) || !file)
		return NULL;
	umode_t mode = BPF_CORE_READ(file, f_inode, i_mode);
	if ((mode & CW_S_IFMT) != CW_S_IFSOCK)
		return NULL;
	struct socket *sock = (struct socket *)BPF_CORE_READ(file, private_data);
	if (!sock)
		return NULL;
	struct sock *sk = BPF_CORE_READ(sock, sk);
	if (!sk)
		return NULL;
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
	if (family != CW_AF_INET && family != CW_AF_INET6)
		return NULL;
	if (BPF_CORE_READ(sk, sk_type) != SOCK_STREAM || BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP)
		return NULL;
	return sk;
}

static __always_inline void emit_conn_event(__u32 kind, struct sock *sk, int fd,
					    struct cw_conn_state *st)
{
	struct cw_conn_event ev = {};
	fill_header(&ev.h, kind);
	ev.fd = fd;
	ev.role = st->role;
	ev.conn_start_ns = st->start_ns;
	ev.tls = st->tls;
	ev.bytes_egress = st->pos[CW_DIR_EGRESS];
	ev.bytes_ingress = st->pos[CW_DIR_INGRESS];
	if (sk) {
		__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
		ev.family = family;
		if (family == CW_AF_INET) {
			__be32 s = BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr);
			__be32 d = BPF_CORE_READ(sk, __sk_common.skc_daddr);
			__builtin_memcpy(ev.saddr, &s, 4);
			__builtin_memcpy(ev.daddr, &d, 4);
		} else {
			BPF_CORE_READ_INTO(&ev.saddr, sk, __sk_common.skc_v6_rcv_saddr);
			BPF_CORE_READ_INTO(&ev.daddr, sk, __sk_common.skc_v6_daddr);
		}
		ev.sport = BPF_CORE_READ(sk, __sk_common.skc_num);
		ev.dport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	}
	if (bpf_ringbuf_output(&events, &ev, sizeof(ev), 0))
		count_loss(CW_LOSS_RING_FULL, 1);
}

/* Start tracking (tgid, fd) as a new connection and announce it. */
static __always_inline struct cw_conn_state *open_conn(__u32 tgid, int fd, __u8 role)
{
	struct sock *sk = tcp_sock_of_fd(fd);
	if (!sk)
		return NULL;
	struct cw_config *cfg = get_config();
	if (cfg && cfg->port_filter) {
		__u16 lport = BPF_CORE_READ(sk, __sk_common.skc_num);
		__u16 rport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
		if (!bpf_map_lookup_elem(&watched_ports, &lport) && !bpf_map_lookup_elem(&watched_ports, &rport))
			return NULL;
	}
	struct cw_conn_key key = {.tgid = tgid, .fd = fd};
	struct cw_conn_state st = {};
	st.start_ns = bpf_ktime_get_ns();
	st.role = role;
	if (bpf_map_update_elem(&conns, &key, &st, BPF_ANY)) {
		count_loss(CW_LOSS_MAP_FULL, 1);
		return NULL;
	}
	emit_conn_event(CW_EV_CONN_OPEN, sk, fd, &st);
	return bpf_map_lookup_elem(&conns, &key);
}

/* The state of (tgid, fd), discovering connections that predate us. */
static __always_inline struct cw_conn_state *conn_of(__u32 tgid, int fd)
{
	struct cw_conn_key key = {.tgid = tgid, .fd = fd};
	struct cw_conn_state *st = bpf_map_lookup_elem(&conns, &key);
	if (st)
		return st;
	return open_conn(tgid, fd, CW_ROLE_UNKNOWN);
}

/* ------------------------------------------------------ payload emission */

struct cw_emit_ctx {
	__u64 ptr;       /* buffer, or iovec array */
	__u64 iovcnt;
	__u64 iov_idx;
	__u64 cur_base;  /* current segment */
	__u64 cur_len;
	__u64 cur_off;
	__u64 budget;    /* bytes still allowed (min of call length and cap) */
	__u64 emitted;   /* bytes sent so far */
	__u64 position;  /* stream position of the first byte of the call */
	__u64 call_len;
	__u64 conn_start_ns;
	__s32 fd;
	__u8 direction;
	__u8 tls;
	__u8 is_iov;
	__u8 failed;     /* a user read faulted: the rest is a gap */
};

static __always_inline struct cw_emit_ctx *get_emit_ctx(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&emit_state, &zero);
}

/*
 * Data events do not wake the reader one by one: a wakeup is an irq_work (a self-IPI, a VM
 * exit under virtualisation) per event. The reader is woken once the ring holds a batch, and
 * polls every few milliseconds anyway; process and connection events still wake it at once.
 */
#define CW_WAKEUP_BYTES (64 * 1024)
static __always_inline __u64 data_wakeup_flags(void)
{
	return bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= CW_WAKEUP_BYTES ? BPF_RB_FORCE_WAKEUP
										: BPF_RB_NO_WAKEUP;
}

static long emit_step(__u32 index, void *unused)
{
	struct cw_emit_ctx *c = get_emit_ctx();
	if (!c || c->budget == 0)
		return 1;
	if (c->cur_off >= c->cur_len) {
		if (!c->is_iov || c->iov_idx >= c->iovcnt || c->iov_idx >= CW_MAX_IOV)
			return 1;
		struct iovec iov = {};
		if (bpf_probe_read_user(&iov, sizeof(iov),
					(void *)(c->ptr + c->iov_idx * sizeof(struct iovec)))) {
			count_loss(CW_LOSS_READ_FAULT, 1);
			c->failed = 1;
			return 1;
		}
		c->iov_idx++;
		c->cur_base = (__u64)iov.iov_base;
		c->cur_len = iov.iov_len;
		c->cur_off = 0;
		return 0;
	}
	__u64 n = c->cur_len - c->cur_off;
	if (n > c->budget)
		n = c->budget;
	if (n > CW_MAX_CHUNK)
		n = CW_MAX_CHUNK;
	__u32 zero = 0;
	struct cw_data_scratch *s = bpf_map_lookup_elem(&data_scratch, &zero);
	if (!s)
		return 1;
	__u32 len = n;
	asm volatile("" : "+r"(len)); /* keep the bound check below in the object */
	if (len > CW_MAX_CHUNK)
		len = CW_MAX_CHUNK;
	if (bpf_probe_read_user(s->data, len, (void *)(c->cur_base + c->cur_off))) {
		count_loss(CW_LOSS_READ_FAULT, 1);
		c->failed = 1;
		return 1;
	}
	fill_header(&s->ev.h, CW_EV_DATA);
	s->ev.fd = c->fd;
	s->ev.direction = c->direction;
	s->ev.tls = c->tls;
	s->ev.gap_reason = 0;
	s->ev.reserved = 0;
	s->ev.conn_start_ns = c->conn_start_ns;
	s->ev.position = c->position + c->emitted;
	s->ev.call_len = c->call_len;
	s->ev.captured_len = len;
	s->ev.reserved2 = 0;
	s->ev.gap_len = 0;
	if (bpf_ringbuf_output(&events, s, sizeof(struct cw_data_event) + len, data_wakeup_flags())) {
		count_loss(CW_LOSS_RING_FULL, 1);
		count_loss(CW_LOSS_RING_FULL_BYTES, len);
	}
	c->emitted += len;
	c->cur_off += len;
	c->budget -= len;
	return 0;
}

static __always_inline void emit_gap(struct cw_emit_ctx *c, __u64 gap, __u8 reason)
{
	struct cw_data_event ev = {};
	fill_header(&ev.h, CW_EV_GAP);
	ev.fd = c->fd;
	ev.direction = c->direction;
	ev.tls = c->tls;
	ev.gap_reason = reason;
	ev.conn_start_ns = c->conn_start_ns;
	ev.position = c->position + c->emitted;
	ev.call_len = c->call_len;
	ev.gap_len = gap;
	if (bpf_ringbuf_output(&events, &ev, sizeof(ev), data_wakeup_flags()))
		count_loss(CW_LOSS_RING_FULL, 1);
}

/*
 * Emit `len` bytes moved by one call (from a buffer or an iovec array) as
 * chunks of at most CW_MAX_CHUNK, up to the per-call cap; the rest is one GAP.
 * Advances the stream position by the whole length.
 */
static __noinline int emit_payload(void)
{
	struct cw_emit_ctx *c = get_emit_ctx();
	if (!c)
		return 0;
	struct cw_config *cfg = get_config();
	__u64 cap = CW_DEFAULT_CALL_CAP;
	if (cfg && cfg->per_call_cap)
		cap = cfg->per_call_cap;
	if (cap > CW_MAX_CALL_CAP)
		cap = CW_MAX_CALL_CAP;
	c->budget = c->call_len < cap ? c->call_len : cap;
	/* chunks + iovec loads + slack */
	bpf_loop(CW_MAX_CALL_CAP / CW_MAX_CHUNK + 2 * CW_MAX_IOV + 2, emit_step, NULL, 0);
	if (c->emitted < c->call_len) {
		__u64 gap = c->call_len - c->emitted;
		if (c->failed) {
			emit_gap(c, gap, CW_GAP_READ_FAULT);
		} else {
			count_loss(CW_LOSS_TRUNCATED_CALLS, 1);
			count_loss(CW_LOSS_TRUNCATED_BYTES, gap);
			emit_gap(c, gap, CW_GAP_CALL_CAP);
		}
	}
	return 0;
}

/* A zeroed emission context for the caller to fill. */
static __always_inline struct cw_emit_ctx *new_emit_ctx(void)
{
	struct cw_emit_ctx *c = get_emit_ctx();
	if (c)
		__builtin_memset(c, 0, sizeof(*c));
	return c;
}

/* ------------------------------------------------------- syscall programs */

static __always_inline int save_call(int fd, __u64 buf, __u64 count, __u8 is_iov, __u8 direction)
{
	__u64 id = bpf_get_current_pid_tgid();
	if (!is_watched(id >> 32))
		return 0;
	struct cw_task_calls *t = current_calls(true);
	if (!t) {
		count_loss(CW_LOSS_MAP_FULL, 1);
		return 0;
	}
	t->sys.buf = buf;
	t->sys.count = count;
	t->sys.fd = fd;
	t->sys.is_iov = is_iov;
	t->sys.direction = direction;
	t->sys_active = 1;
	return 0;
}

/* The current thread's saved socket call, taken (NULL when none is in flight). */
static __always_inline struct cw_task_calls *take_call(void)
{
	struct cw_task_calls *t = current_calls(false);
	if (!t || !t->sys_active)
		return NULL;
	t->sys_active = 0;
	return t;
}

static __always_inline int finish_call(long ret)
{
	struct cw_task_calls *t = take_call();
	if (!t)
		return 0;
	struct cw_call_args a = t->sys;
	if (ret <= 0)
		return 0;
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct cw_conn_state *st = conn_of(tgid, a.fd);
	if (!st)
		return 0;

	/* A syscall under an SSL call: pair SSL* with this fd; ciphertext is not data. */
	if (t->ssl_active) {
		struct cw_ssl_call *sc = &t->ssl;
		if (sc->fd != a.fd) {
			/* first syscall of this SSL call: learn SSL* -> fd unless already known (an
			 * LRU update takes a lock; most SSL calls reuse a known pairing) */
			sc->fd = a.fd;
			struct cw_ssl_key k = {.tgid = tgid, .ssl = sc->ssl};
			__s32 *known = bpf_map_lookup_elem(&ssl_fds, &k);
			if (!known || *known != a.fd) {
				__s32 fd = a.fd;
				if (bpf_map_update_elem(&ssl_fds, &k, &fd, BPF_ANY))
					count_loss(CW_LOSS_MAP_FULL, 1);
			}
		}
		st->tls = 1;
		st->pos[a.direction & 1] += ret;
		return 0;
	}
	if (st->tls) {
		st->pos[a.direction & 1] += ret;
		return 0;
	}

	__u8 dir = a.direction & 1;
	struct cw_emit_ctx *c = new_emit_ctx();
	if (c) {
		c->is_iov = a.is_iov;
		c->ptr = a.buf;
		if (a.is_iov) {
			c->iovcnt = a.count;
		} else {
			c->cur_base = a.buf;
			c->cur_len = ret;
		}
		c->call_len = ret;
		c->fd = a.fd;
		c->direction = dir;
		c->tls = 0;
		c->conn_start_ns = st->start_ns;
		c->position = st->pos[dir];
		emit_payload();
	}
	st->pos[dir] += ret;
	return 0;
}

static __always_inline int save_msg_call(int fd, __u64 msg_ptr, __u8 direction)
{
	__u64 id = bpf_get_current_pid_tgid();
	if (!is_watched(id >> 32))
		return 0;
	struct user_msghdr msg = {};
	if (bpf_probe_read_user(&msg, sizeof(msg), (void *)msg_ptr)) {
		count_loss(CW_LOSS_READ_FAULT, 1);
		return 0;
	}
	return save_call(fd, (__u64)msg.msg_iov, msg.msg_iovlen, 1, direction);
}

/* connect/accept: remember the fd (connect) at enter, open the connection at exit */
static __always_inline int save_fd(int fd)
{
	return save_call(fd, 0, 0, 0, 0);
}

/*
 * connect() returned: 0, or -EINPROGRESS from the syscall. libc's wrapper returns -1 and
 * leaves the reason in errno, which a uretprobe cannot see: then the socket's state tells a
 * connect in progress (SYN sent, or already established) from a refused one.
 */
static __always_inline int finish_connect(long ret, bool libc)
{
	struct cw_task_calls *t = take_call();
	if (!t)
		return 0;
	int fd = t->sys.fd;
	bool ok = ret == 0 || ret == -CW_EINPROGRESS;
	if (!ok && libc && ret == -1) {
		struct sock *sk = tcp_sock_of_fd(fd);
		if (sk) {
			__u8 state = BPF_CORE_READ(sk, __sk_common.skc_state);
			ok = state == CW_TCP_SYN_SENT || state == CW_TCP_ESTABLISHED;
		}
	}
	if (ok)
		open_conn(bpf_get_current_pid_tgid() >> 32, fd, CW_ROLE_CLIENT);
	return 0;
}

static __always_inline int finish_accept(long ret)
{
	if (!take_call())
		return 0;
	if (ret >= 0)
		open_conn(bpf_get_current_pid_tgid() >> 32, (int)ret, CW_ROLE_SERVER);
	return 0;
}

/* close(fd) is entered: report the connection closed with its totals and forget it */
static __always_inline int close_fd(int fd)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tgid = id >> 32;
	if (!is_watched(tgid))
		return 0;
	struct cw_conn_key key = {.tgid = tgid, .fd = fd};
	struct cw_conn_state *st = bpf_map_lookup_elem(&conns, &key);
	if (!st)
		return 0;
	struct cw_conn_state copy = *st;
	bpf_map_delete_elem(&conns, &key);
	emit_conn_event(CW_EV_CONN_CLOSE, tcp_sock_of_fd(key.fd), key.fd, &copy);
	return 0;
}

/*
 * Hook kind 1 (probe.syscall_hooks = "tracepoints"): the syscall tracepoints. They are global:
 * once one is attached every task on the host takes the traced syscall path, watched or not.
 */
#define SYS_ENTER(name) SEC("tracepoint/syscalls/sys_enter_" #name) int tp_enter_##name(struct trace_event_raw_sys_enter *ctx)
#define SYS_EXIT(name) SEC("tracepoint/syscalls/sys_exit_" #name) int tp_exit_##name(struct trace_event_raw_sys_exit *ctx)

SYS_ENTER(write) { return save_call(ctx->args[0], ctx->args[1], 0, 0, CW_DIR_EGRESS); }
SYS_EXIT(write) { return finish_call(ctx->ret); }
SYS_ENTER(read) { return save_call(ctx->args[0], ctx->args[1], 0, 0, CW_DIR_INGRESS); }
SYS_EXIT(read) { return finish_call(ctx->ret); }
SYS_ENTER(sendto) { return save_call(ctx->args[0], ctx->args[1], 0, 0, CW_DIR_EGRESS); }
SYS_EXIT(sendto) { return finish_call(ctx->ret); }
SYS_ENTER(recvfrom) { return save_call(ctx->args[0], ctx->args[1], 0, 0, CW_DIR_INGRESS); }
SYS_EXIT(recvfrom) { return finish_call(ctx->ret); }
SYS_ENTER(writev) { return save_call(ctx->args[0], ctx->args[1], ctx->args[2], 1, CW_DIR_EGRESS); }
SYS_EXIT(writev) { return finish_call(ctx->ret); }
SYS_ENTER(readv) { return save_call(ctx->args[0], ctx->args[1], ctx->args[2], 1, CW_DIR_INGRESS); }
SYS_EXIT(readv) { return finish_call(ctx->ret); }
SYS_ENTER(sendmsg) { return save_msg_call(ctx->args[0], ctx->args[1], CW_DIR_EGRESS); }
SYS_EXIT(sendmsg) { return finish_call(ctx->ret); }
SYS_ENTER(recvmsg) { return save_msg_call(ctx->args[0], ctx->args[1], CW_DIR_INGRESS); }
SYS_EXIT(recvmsg) { return finish_call(ctx->ret); }
SYS_ENTER(connect) { return save_fd(ctx->args[0]); }
SYS_EXIT(connect) { return finish_connect(ctx->ret, false); }
SYS_ENTER(accept) { return save_fd(-1); }
SYS_EXIT(accept) { return finish_accept(ctx->ret); }
SYS_ENTER(accept4) { return save_fd(-1); }
SYS_EXIT(accept4) { return finish_accept(ctx->ret); }
SYS_ENTER(close) { return close_fd(ctx->args[0]); }

/*
 * Hook kind 2 (probe.syscall_hooks = "libc"): uprobes and uretprobes on libc's wrappers,
 * attached per watched process by userspace (UProbeScope::OneProcess), so nobody else pays.
 * Arguments per the x86-64 C ABI, the return value in rax (-1 and errno on failure). One
 * program serves every wrapper with the same argument layout (userspace: uprobes.rs, LIBC).
 * Raw syscalls (static binaries, Go, io_uring) bypass these: use the tracepoints for those.
 */
/* write, send, sendto: (fd, buf, len, ...) */
SEC("uprobe/write")
int BPF_KPROBE(libc_enter_send_buf, int fd, void *buf)
{
	return save_call(fd, (__u64)buf, 0, 0, CW_DIR_EGRESS);
}

/* read, recv, recvfrom: (fd, buf, len, ...) */
SEC("uprobe/read")
int BPF_KPROBE(libc_enter_recv_buf, int fd, void *buf)
{
	return save_call(fd, (__u64)buf, 0, 0, CW_DIR_INGRESS);
}

SEC("uprobe/writev")
int BPF_KPROBE(libc_enter_writev, int fd, void *iov, int iovcnt)
{
	return save_call(fd, (__u64)iov, (__u32)iovcnt, 1, CW_DIR_EGRESS);
}

SEC("uprobe/readv")
int BPF_KPROBE(libc_enter_readv, int fd, void *iov, int iovcnt)
{
	return save_call(fd, (__u64)iov, (__u32)iovcnt, 1, CW_DIR_INGRESS);
}

SEC("uprobe/sendmsg")
int BPF_KPROBE(libc_enter_sendmsg, int fd, void *msg)
{
	return save_msg_call(fd, (__u64)msg, CW_DIR_EGRESS);
}

SEC("uprobe/recvmsg")
int BPF_KPROBE(libc_enter_recvmsg, int fd, void *msg)
{
	return save_msg_call(fd, (__u64)msg, CW_DIR_INGRESS);
}

/* every data wrapper above returns ssize_t */
SEC("uretprobe/read")
int BPF_KRETPROBE(libc_exit_data, long ret)
{
	return finish_call(ret);
}

SEC("uprobe/connect")
int BPF_KPROBE(libc_enter_connect, int fd)
{
	return save_fd(fd);
}

SEC("uretprobe/connect")
int BPF_KRETPROBE(libc_exit_connect, int ret)
{
	return finish_connect(ret, true);
}

/* accept, accept4 */
SEC("uprobe/accept")
int BPF_KPROBE(libc_enter_accept)
{
	return save_fd(-1);
}

SEC("uretprobe/accept")
int BPF_KRETPROBE(libc_exit_accept, int ret)
{
	return finish_accept(ret);
}

SEC("uprobe/close")
int BPF_KPROBE(libc_enter_close, int fd)
{
	return close_fd(fd);
}

/* ------------------------------------------------------ process programs */

static __always_inline struct cw_proc_event *proc_event(__u32 kind, struct task_struct *p)
{
	__u32 zero = 0;
	struct cw_proc_event *ev = bpf_map_lookup_elem(&proc_scratch, &zero);
	if (!ev)
		return NULL;
	fill_header(&ev->h, kind);
	ev->h.tgid = BPF_CORE_READ(p, tgid);
	ev->h.tid = BPF_CORE_READ(p, pid);
	ev->ppid = BPF_CORE_READ(p, real_parent, tgid);
	ev->uid = BPF_CORE_READ(p, cred, uid.val);
	/* boot-time start, as /proc/PID/stat reports it (userspace truncates both to clock ticks) */
	ev->start_ns = BPF_CORE_READ(p, group_leader, start_boottime);
	ev->parent_start_ns = BPF_CORE_READ(p, real_parent, group_leader, start_boottime);
	ev->cgroup_id = 0;
	ev->exit_code = 0;
	ev->argv_len = 0;
	ev->argv_truncated = 0;
	ev->watched = 0;
	BPF_CORE_READ_INTO(&ev->comm, p, comm);
	ev->filename[0] = 0;
	ev->argv[0] = 0;
	return ev;
}

static __always_inline void send_proc_event(struct cw_proc_event *ev)
{
	if (bpf_ringbuf_output(&events, ev, sizeof(*ev), 0))
		count_loss(CW_LOSS_RING_FULL, 1);
}

/* raw tracepoint argument i, read without a CO-RE relocation (args[] is a flexible array) */
static __always_inline __u64 raw_arg(void *ctx, int i)
{
	return ((__u64 *)ctx)[i];
}

static __always_inline void watch(__u32 tgid)
{
	__u8 one = 1;
	if (bpf_map_update_elem(&watched, &tgid, &one, BPF_ANY))
		count_loss(CW_LOSS_MAP_FULL, 1);
}

SEC("raw_tp/sched_process_fork")
int raw_fork(void *ctx)
{
	struct task_struct *parent = (struct task_struct *)raw_arg(ctx, 0);
	struct task_struct *child = (struct task_struct *)raw_arg(ctx, 1);
	__u32 child_pid = BPF_CORE_READ(child, pid);
	__u32 child_tgid = BPF_CORE_READ(child, tgid);
	if (child_pid != child_tgid)
		return 0; /* a thread, not a process */
	__u32 parent_tgid = BPF_CORE_READ(parent, tgid);
	struct cw_config *cfg = get_config();
	if (!cfg || parent_tgid == cfg->self_tgid)
		return 0;
	bool w = bpf_map_lookup_elem(&watched, &parent_tgid) != NULL;
	if (w)
		watch(child_tgid);
	if (!w && !cfg->all_process_events && !cfg->watch_all)
		return 0;
	struct cw_proc_event *ev = proc_event(CW_EV_FORK, child);
	if (!ev)
		return 0;
	ev->cgroup_id = bpf_get_current_cgroup_id();
	ev->watched = w;
	send_proc_event(ev);
	return 0;
}

SEC("raw_tp/sched_process_exec")
int raw_exec(void *ctx)
{
	struct task_struct *p = (struct task_struct *)raw_arg(ctx, 0);
	struct linux_binprm *bprm = (struct linux_binprm *)raw_arg(ctx, 2);
	__u32 tgid = BPF_CORE_READ(p, tgid);
	struct cw_config *cfg = get_config();
	if (!cfg || tgid == cfg->self_tgid)
		return 0;
	__u64 cgroup_id = bpf_get_current_cgroup_id();
	bool w = bpf_map_lookup_elem(&watched, &tgid) != NULL;
	if (!w && bpf_map_lookup_elem(&watched_cgroups, &cgroup_id))
		w = true;
	if (!w) {
		char comm[CW_COMM_LEN] = {};
		BPF_CORE_READ_INTO(&comm, p, comm);
		if (bpf_map_lookup_elem(&watched_comms, &comm))
			w = true;
	}
	if (w)
		watch(tgid);
	if (!w && !cfg->all_process_events && !cfg->watch_all)
		return 0;
	struct cw_proc_event *ev = proc_event(CW_EV_EXEC, p);
	if (!ev)
		return 0;
	ev->cgroup_id = cgroup_id;
	/* the process may exit (and leave `watched`) before userspace reads this: say it here */
	ev->watched = w;
	const char *filename = BPF_CORE_READ(bprm, filename);
	if (bpf_probe_read_kernel_str(ev->filename, sizeof(ev->filename), filename) < 0)
		count_loss(CW_LOSS_READ_FAULT, 1);
	__u64 arg_start = BPF_CORE_READ(p, mm, arg_start);
	__u64 arg_end = BPF_CORE_READ(p, mm, arg_end);
	__u64 n = arg_end > arg_start ? arg_end - arg_start : 0;
	if (n > CW_ARGV_LEN) {
		n = CW_ARGV_LEN;
		ev->argv_truncated = 1;
	}
	__u32 len = n & (2 * CW_ARGV_LEN - 1);
	if (len > CW_ARGV_LEN)
		len = CW_ARGV_LEN;
	if (len && bpf_probe_read_user(ev->argv, len, (void *)arg_start) == 0)
		ev->argv_len = len;
	else if (len)
		count_loss(CW_LOSS_READ_FAULT, 1);
	if (w && cfg->hold_exec) {
		/* stop before the first user instruction; userspace attaches the uprobes, then SIGCONT.
		 * Held and stopped before the record goes out: userspace may answer the record at once
		 * (nothing to attach), and a SIGCONT sent before this SIGSTOP would leave the process
		 * stopped for good, with no `held` entry left for the timeout to find. */
		__u64 now = bpf_ktime_get_ns();
		if (bpf_map_update_elem(&held, &tgid, &now, BPF_ANY) == 0)
			bpf_send_signal(CW_SIGSTOP);
		else
			count_loss(CW_LOSS_MAP_FULL, 1);
	}
	send_proc_event(ev);
	return 0;
}

SEC("raw_tp/sched_process_exit")
int raw_exit(void *ctx)
{
	struct task_struct *p = (struct task_struct *)raw_arg(ctx, 0);
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tgid = id >> 32;
	bool w = bpf_map_lookup_elem(&watched, &tgid) != NULL;
	if (w) {
		/* this thread's half-done calls (the storage itself goes with the task) */
		struct cw_task_calls *t = current_calls(false);
		if (t) {
			t->sys_active = 0;
			t->ssl_active = 0;
		}
	}
	struct cw_config *cfg = get_config();
	if (!cfg || tgid == cfg->self_tgid)
		return 0;
	bool group_dead;
	if (cfg->exit_has_group_dead)
		group_dead = raw_arg(ctx, 1) & 1;
	else
		group_dead = BPF_CORE_READ(p, signal, live.counter) == 0;
	if (!group_dead)
		return 0; /* other threads of the process are still running */
	if (!w && !cfg->all_process_events && !cfg->watch_all)
		return 0;
	struct cw_proc_event *ev = proc_event(CW_EV_EXIT, p);
	if (!ev)
		return 0;
	ev->cgroup_id = bpf_get_current_cgroup_id();
	ev->watched = w;
	unsigned int sflags = BPF_CORE_READ(p, signal, flags);
	if (sflags & CW_SIGNAL_GROUP_EXIT)
		ev->exit_code = BPF_CORE_READ(p, signal, group_exit_code);
	else
		ev->exit_code = BPF_CORE_READ(p, exit_code);
	send_proc_event(ev);
	if (w) {
		bpf_map_delete_elem(&watched, &tgid);
		bpf_map_delete_elem(&held, &tgid);
	}
	return 0;
}

/* ----------------------------------------------------------- SSL uprobes */

static __always_inline int ssl_enter(__u64 ssl, __u64 buf, __u64 len_ptr, __u8 direction, __u8 is_data)
{
	__u64 id = bpf_get_current_pid_tgid();
	if (!is_watched(id >> 32))
		return 0;
	struct cw_task_calls *t = current_calls(true);
	if (!t) {
		count_loss(CW_LOSS_MAP_FULL, 1);
		return 0;
	}
	if (t->ssl_active) {
		struct cw_ssl_call *cur = &t->ssl;
		/* nested (SSL_connect -> SSL_do_handshake): keep the outer call, count depth */
		if (cur->depth < 255)
			cur->depth++;
		if (is_data) {
			cur->is_data = 1;
			cur->buf = buf;
			cur->len_ptr = len_ptr;
			cur->direction = direction;
		}
		return 0;
	}
	struct cw_ssl_call *c = &t->ssl;
	c->ssl = ssl;
	c->buf = buf;
	c->len_ptr = len_ptr;
	c->fd = -1;
	c->direction = direction;
	c->is_data = is_data;
	c->depth = 1;
	c->reserved = 0;
	t->ssl_active = 1;
	return 0;
}

/* ret: bytes for SSL_read/SSL_write, or 1/0 for the _ex variants (then *len_ptr) */
static __always_inline int ssl_exit(long ret, bool ex)
{
	struct cw_task_calls *t = current_calls(false);
	if (!t || !t->ssl_active)
		return 0;
	struct cw_ssl_call *cur = &t->ssl;
	struct cw_ssl_call c = *cur;
	if (c.depth > 1) {
		cur->depth--;
	} else {
		t->ssl_active = 0;
	}
	if (!c.is_data)
		return 0;
	if (c.depth > 1)
		cur->is_data = 0; /* the outer call is a handshake again */

	__u64 n = 0;
	if (ex) {
		if (ret != 1 || !c.len_ptr)
			return 0;
		if (bpf_probe_read_user(&n, sizeof(n), (void *)c.len_ptr)) {
			count_loss(CW_LOSS_READ_FAULT, 1);
			return 0;
		}
	} else {
		if (ret <= 0)
			return 0;
		n = ret;
	}
	if (n == 0)
		return 0;

	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	__s32 fd = c.fd;
	if (fd < 0) {
		struct cw_ssl_key k = {.tgid = tgid, .ssl = c.ssl};
		__s32 *cached = bpf_map_lookup_elem(&ssl_fds, &k);
		if (cached)
			fd = *cached;
	}
	if (fd < 0) {
		count_loss(CW_LOSS_UNPAIRED_SSL, 1);
		count_loss(CW_LOSS_UNPAIRED_SSL_BYTES, n);
		return 0;
	}
	struct cw_conn_state *st = conn_of(tgid, fd);
	if (!st) {
		count_loss(CW_LOSS_UNPAIRED_SSL, 1);
		count_loss(CW_LOSS_UNPAIRED_SSL_BYTES, n);
		return 0;
	}
	st->tls = 1;
	__u8 dir = c.direction & 1;
	struct cw_emit_ctx *e = new_emit_ctx();
	if (e) {
		e->ptr = c.buf;
		e->cur_base = c.buf;
		e->cur_len = n;
		e->call_len = n;
		e->fd = fd;
		e->direction = dir;
		e->tls = 1;
		e->conn_start_ns = st->start_ns;
		e->position = st->tls_pos[dir];
		emit_payload();
	}
	st->tls_pos[dir] += n;
	return 0;
}

SEC("uprobe/SSL_write")
int BPF_KPROBE(ssl_write_enter, void *ssl, const void *buf, int num)
{
	return ssl_enter((__u64)ssl, (__u64)buf, 0, CW_DIR_EGRESS, 1);
}

SEC("uretprobe/SSL_write")
int BPF_KRETPROBE(ssl_write_exit, int ret)
{
	return ssl_exit(ret, false);
}

SEC("uprobe/SSL_read")
int BPF_KPROBE(ssl_read_enter, void *ssl, void *buf, int num)
{
	return ssl_enter((__u64)ssl, (__u64)buf, 0, CW_DIR_INGRESS, 1);
}

SEC("uretprobe/SSL_read")
int BPF_KRETPROBE(ssl_read_exit, int ret)
{
	return ssl_exit(ret, false);
}

SEC("uprobe/SSL_write_ex")
int BPF_KPROBE(ssl_write_ex_enter, void *ssl, const void *buf, size_t num, size_t *written)
{
	return ssl_enter((__u64)ssl, (__u64)buf, (__u64)written, CW_DIR_EGRESS, 1);
}

SEC("uretprobe/SSL_write_ex")
int BPF_KRETPROBE(ssl_write_ex_exit, int ret)
{
	return ssl_exit(ret, true);
}

SEC("uprobe/SSL_read_ex")
int BPF_KPROBE(ssl_read_ex_enter, void *ssl, void *buf, size_t num, size_t *readbytes)
{
	return ssl_enter((__u64)ssl, (__u64)buf, (__u64)readbytes, CW_DIR_INGRESS, 1);
}

SEC("uretprobe/SSL_read_ex")
int BPF_KRETPROBE(ssl_read_ex_exit, int ret)
{
	return ssl_exit(ret, true);
}

/* handshake and shutdown: only to pair SSL* with its fd and mark the connection TLS */
SEC("uprobe/SSL_handshake")
int BPF_KPROBE(ssl_handshake_enter, void *ssl)
{
	return ssl_enter((__u64)ssl, 0, 0, CW_DIR_EGRESS, 0);
}

SEC("uretprobe/SSL_handshake")
int BPF_KRETPROBE(ssl_handshake_exit, int ret)
{
	return ssl_exit(ret, false);
}
