//! Test helper (shared by the `pcap_*` tests through `#[path]`): builds small pcap and pcapng
//! captures by hand (Ethernet/IPv4/IPv6/TCP frames and both file formats), so tests control
//! every byte.
#![allow(dead_code)]

use std::net::{IpAddr, SocketAddr};

pub const FIN: u8 = 0x01;
pub const SYN: u8 = 0x02;
pub const RST: u8 = 0x04;
pub const PSH: u8 = 0x08;
pub const ACK: u8 = 0x10;

pub fn addr(s: &str) -> SocketAddr {
    s.parse().expect("socket address")
}

/// An IPv4 or IPv6 packet carrying one TCP segment.
pub fn ip_tcp(src: SocketAddr, dst: SocketAddr, seq: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut tcp = Vec::new();
    tcp.extend_from_slice(&src.port().to_be_bytes());
    tcp.extend_from_slice(&dst.port().to_be_bytes());
    tcp.extend_from_slice(&seq.to_be_bytes());
    tcp.extend_from_slice(&0u32.to_be_bytes());
    tcp.extend_from_slice(&[0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    tcp.extend_from_slice(payload);
    match (src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let total = (20 + tcp.len()) as u16;
            let mut p = vec![0x45, 0];
            p.extend_from_slice(&total.to_be_bytes());
            p.extend_from_slice(&[0, 1, 0x40, 0, 64, 6, 0, 0]);
            p.extend_from_slice(&s.octets());
            p.extend_from_slice(&d.octets());
            p.extend_from_slice(&tcp);
            p
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let mut p = vec![0x60, 0, 0, 0];
            p.extend_from_slice(&(tcp.len() as u16).to_be_bytes());
            p.extend_from_slice(&[6, 64]);
            p.extend_from_slice(&s.octets());
            p.extend_from_slice(&d.octets());
            p.extend_from_slice(&tcp);
            p
        }
        _ => panic!("mixed address families"),
    }
}

/// Ethernet II framing (IPv4 or IPv6 by the packet's version nibble).
pub fn ethernet(ip: &[u8]) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2];
    f.extend_from_slice(if ip[0] >> 4 == 6 {
        &[0x86, 0xdd]
    } else {
        &[0x08, 0x00]
    });
    f.extend_from_slice(ip);
    f
}

/// One frame of a capture: timestamp in ns, captured bytes, original length.
#[derive(Clone)]
pub struct Frame {
    pub ts_ns: u64,
    pub data: Vec<u8>,
    pub orig_len: u32,
}

impl Frame {
    pub fn new(ts_ns: u64, data: Vec<u8>) -> Self {
        let orig_len = data.len() as u32;
        Frame {
            ts_ns,
            data,
            orig_len,
        }
    }
    /// Keeps only the first `caplen` bytes (as a snap length would).
    pub fn cut(mut self, caplen: usize) -> Self {
        self.data.truncate(caplen);
        self
    }
}

/// A legacy pcap file.
pub fn pcap(linktype: u32, big_endian: bool, nanos: bool, frames: &[Frame]) -> Vec<u8> {
    let u32b = |v: u32| {
        if big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let u16b = |v: u16| {
        if big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let mut out = Vec::new();
    out.extend_from_slice(&u32b(if nanos { 0xa1b2_3c4d } else { 0xa1b2_c3d4 }));
    out.extend_from_slice(&u16b(2));
    out.extend_from_slice(&u16b(4));
    out.extend_from_slice(&u32b(0));
    out.extend_from_slice(&u32b(0));
    out.extend_from_slice(&u32b(262_144));
    out.extend_from_slice(&u32b(linktype));
    for f in frames {
        let sec = (f.ts_ns / 1_000_000_000) as u32;
        let frac = if nanos {
            (f.ts_ns % 1_000_000_000) as u32
        } else {
            ((f.ts_ns % 1_000_000_000) / 1000) as u32
        };
        out.extend_from_slice(&u32b(sec));
        out.extend_from_slice(&u32b(frac));
        out.extend_from_slice(&u32b(f.data.len() as u32));
        out.extend_from_slice(&u32b(f.orig_len));
        out.extend_from_slice(&f.data);
    }
    out
}

/// Ethernet pcap, little-endian, microseconds.
pub fn eth_pcap(packets: &[(u64, Vec<u8>)]) -> Vec<u8> {
    let frames: Vec<Frame> = packets
        .iter()
        .map(|(ts, ip)| Frame::new(*ts, ethernet(ip)))
        .collect();
    pcap(1, false, false, &frames)
}

fn pad4(v: &mut Vec<u8>) {
    while !v.len().is_multiple_of(4) {
        v.push(0);
    }
}

/// Byte order of a hand-made pcapng section.
#[derive(Clone, Copy)]
pub struct Endian {
    pub big: bool,
}

impl Endian {
    fn u16(self, v: u16) -> [u8; 2] {
        if self.big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    }
    fn u32(self, v: u32) -> [u8; 4] {
        if self.big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    }
    fn i64(self, v: i64) -> [u8; 8] {
        if self.big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    }
}

fn ng_block(e: Endian, block_type: u32, body: &[u8]) -> Vec<u8> {
    let len = (12 + body.len()) as u32;
    let mut b = Vec::new();
    b.extend_from_slice(&e.u32(block_type));
    b.extend_from_slice(&e.u32(len));
    b.extend_from_slice(body);
    b.extend_from_slice(&e.u32(len));
    b
}

/// A pcapng interface: link type and `if_tsresol` (None: default microseconds).
pub struct NgInterface {
    pub linktype: u16,
    pub tsresol: Option<u8>,
}

/// A pcapng packet: `if_id` None makes a Simple Packet Block (interface 0, no timestamp);
/// `ts_units` is in the interface's resolution.
pub struct NgPacket {
    pub if_id: Option<u32>,
    pub ts_units: u64,
    pub data: Vec<u8>,
}

/// A little-endian pcapng file with one section.
pub fn pcapng(interfaces: &[NgInterface], packets: &[NgPacket]) -> Vec<u8> {
    pcapng_section(Endian { big: false }, interfaces, packets)
}

/// One pcapng section (SHB, IDBs, packets) in the given byte order; sections can be
/// concatenated.
pub fn pcapng_section(e: Endian, interfaces: &[NgInterface], packets: &[NgPacket]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut shb = Vec::new();
    shb.extend_from_slice(&e.u32(0x1a2b_3c4d));
    shb.extend_from_slice(&e.u16(1));
    shb.extend_from_slice(&e.u16(0));
    shb.extend_from_slice(&e.i64(-1));
    out.extend(ng_block(e, 0x0a0d_0d0a, &shb));
    for iface in interfaces {
        let mut idb = Vec::new();
        idb.extend_from_slice(&e.u16(iface.linktype));
        idb.extend_from_slice(&e.u16(0));
        idb.extend_from_slice(&e.u32(0));
        if let Some(res) = iface.tsresol {
            idb.extend_from_slice(&e.u16(9));
            idb.extend_from_slice(&e.u16(1));
            idb.push(res);
            pad4(&mut idb);
            idb.extend_from_slice(&[0, 0, 0, 0]); // opt_endofopt
        }
        out.extend(ng_block(e, 1, &idb));
    }
    for p in packets {
        match p.if_id {
            Some(if_id) => {
                let mut epb = Vec::new();
                epb.extend_from_slice(&e.u32(if_id));
                epb.extend_from_slice(&e.u32((p.ts_units >> 32) as u32));
                epb.extend_from_slice(&e.u32(p.ts_units as u32));
                epb.extend_from_slice(&e.u32(p.data.len() as u32));
                epb.extend_from_slice(&e.u32(p.data.len() as u32));
                epb.extend_from_slice(&p.data);
                pad4(&mut epb);
                out.extend(ng_block(e, 6, &epb));
            }
            None => {
                let mut spb = Vec::new();
                spb.extend_from_slice(&e.u32(p.data.len() as u32));
                spb.extend_from_slice(&p.data);
                pad4(&mut spb);
                out.extend(ng_block(e, 3, &spb));
            }
        }
    }
    out
}
