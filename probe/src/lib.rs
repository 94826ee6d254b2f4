//! Layer 1: capture. eBPF programs (`bpf/`, loaded by `ebpf`) watch sockets, TLS plaintext and
//! processes; `records` turns their events into bus records; `pcap` replays capture files.
pub mod pcap;
pub mod capture;
pub mod ebpf;
pub mod events;
pub mod procfs;
pub mod selectors;
pub mod records;
