//! Layer 1: capture. The eBPF programs and their loader arrive with the probe issue; the pcap source lives in `pcap`.
pub mod pcap;
pub mod capture;
pub mod ebpf;
pub mod events;
pub mod procfs;
pub mod selectors;
