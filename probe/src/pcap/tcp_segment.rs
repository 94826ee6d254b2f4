//! IP and TCP header decoding: IPv4 (options, fragments detected), IPv6 (extension headers
//! skipped, fragments detected) and the TCP header, giving one borrowed `TcpSegment`.
//! Trailing link padding is cut off using the IP length; bytes the IP length promises but the
//! capture lacks (snap length) are reported as `missing_tail`, never invented.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

const PROTO_TCP: u8 = 6;
/// More IPv6 extension headers than this is treated as malformed.
const MAX_IPV6_EXTENSION_HEADERS: usize = 16;

pub(crate) const FLAG_FIN: u8 = 0x01;
pub(crate) const FLAG_SYN: u8 = 0x02;
pub(crate) const FLAG_RST: u8 = 0x04;
pub(crate) const FLAG_ACK: u8 = 0x10;

/// One TCP segment as captured.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct TcpSegment<'a> {
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub seq: u32,
    pub flags: u8,
    /// Captured payload bytes.
    pub payload: &'a [u8],
    /// Payload bytes the IP length declares beyond `payload` that the capture cut off.
    pub missing_tail: u32,
}

impl TcpSegment<'_> {
    pub fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }
}

/// What an IP packet turned out to be.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum IpDecode<'a> {
    Tcp(TcpSegment<'a>),
    /// Intact, but the TCP payload was cut by the snap length (`missing_tail > 0`).
    TcpTruncated(TcpSegment<'a>),
    NotTcp,
    Fragment,
    /// Headers cut by the snap length: nothing usable.
    HeaderTruncated,
    Malformed,
}

fn be16(data: &[u8], at: usize) -> Option<u16> {
    let b = data.get(at..at.checked_add(2)?)?;
    Some(u16::from_be_bytes([*b.first()?, *b.get(1)?]))
}

fn be32(data: &[u8], at: usize) -> Option<u32> {
    let b = data.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([
        *b.first()?,
        *b.get(1)?,
        *b.get(2)?,
        *b.get(3)?,
    ]))
}

/// Decodes an IPv4 or IPv6 packet carrying TCP.
pub(crate) fn decode_ip(packet: &[u8]) -> IpDecode<'_> {
    match packet.first().map(|b| b >> 4) {
        Some(4) => decode_ipv4(packet),
        Some(6) => decode_ipv6(packet),
        Some(_) => IpDecode::Malformed,
        None => IpDecode::HeaderTruncated,
    }
}

fn decode_ipv4(packet: &[u8]) -> IpDecode<'_> {
    let Some(&first) = packet.first() else {
        return IpDecode::HeaderTruncated;
    };
    let header_len = usize::from(first & 0x0f) * 4;
    if header_len < 20 {
        return IpDecode::Malformed;
    }
    if packet.len() < header_len {
        return IpDecode::HeaderTruncated;
    }
    let (Some(total_len), Some(frag), Some(&proto), Some(src), Some(dst)) = (
        be16(packet, 2),
        be16(packet, 6),
        packet.get(9),
        be32(packet, 12),
        be32(packet, 16),
    ) else {
        return IpDecode::HeaderTruncated;
    };
    let total_len = usize::from(total_len);
    if total_len < header_len {
        return IpDecode::Malformed;
    }
    let more_fragments = frag & 0x2000 != 0;
    let fragment_offset = frag & 0x1fff;
    if more_fragments || fragment_offset != 0 {
        return IpDecode::Fragment;
    }
    if proto != PROTO_TCP {
        return IpDecode::NotTcp;
    }
    let captured_end = total_len.min(packet.len());
    let Some(l4) = packet.get(header_len..captured_end) else {
        return IpDecode::HeaderTruncated;
    };
    let declared = total_len - header_len;
    decode_tcp(
        IpAddr::V4(Ipv4Addr::from(src)),
        IpAddr::V4(Ipv4Addr::from(dst)),
        l4,
        declared,
    )
}

fn decode_ipv6(packet: &[u8]) -> IpDecode<'_> {
    let (Some(payload_len), Some(&first_next), Some(src), Some(dst)) = (
        be16(packet, 4),
        packet.get(6),
        packet.get(8..24),
        packet.get(24..40),
    ) else {
        return IpDecode::HeaderTruncated;
    };
    let (Ok(src), Ok(dst)) = (<[u8; 16]>::try_from(src), <[u8; 16]>::try_from(dst)) else {
        return IpDecode::Malformed;
    };
    // Payload length 0 means a jumbogram (hop-by-hop option): take what was captured.
    let end = if payload_len == 0 {
        packet.len()
    } else {
        40 + usize::from(payload_len)
    };
    let declared_total = end - 40;
    let mut next = first_next;
    let mut at = 40usize;
    let mut headers = 0;
    loop {
        match next {
            PROTO_TCP => break,
            // hop-by-hop, routing, destination options: (len + 1) * 8 bytes.
            0 | 43 | 60 => {
                let (Some(&nh), Some(&len)) = (packet.get(at), packet.get(at + 1)) else {
                    return IpDecode::HeaderTruncated;
                };
                next = nh;
                at += (usize::from(len) + 1) * 8;
            }
            // fragment header: 8 bytes; only an atomic fragment (offset 0, no M flag) is whole.
            44 => {
                let (Some(&nh), Some(frag)) = (packet.get(at), be16(packet, at + 2)) else {
                    return IpDecode::HeaderTruncated;
                };
                if frag & 0xfff9 != 0 {
                    return IpDecode::Fragment;
                }
                next = nh;
                at += 8;
            }
            // authentication header: (len + 2) * 4 bytes.
            51 => {
                let (Some(&nh), Some(&len)) = (packet.get(at), packet.get(at + 1)) else {
                    return IpDecode::HeaderTruncated;
                };
                next = nh;
                at += (usize::from(len) + 2) * 4;
            }
            _ => return IpDecode::NotTcp,
        }
        headers += 1;
        if headers > MAX_IPV6_EXTENSION_HEADERS {
            return IpDecode::Malformed;
        }
    }
    if at > end {
        return IpDecode::Malformed;
    }
    let captured_end = end.min(packet.len());
    let Some(l4) = packet.get(at..captured_end) else {
        return IpDecode::HeaderTruncated;
    };
    let declared = declared_total - (at - 40);
    decode_tcp(
        IpAddr::V6(Ipv6Addr::from(src)),
        IpAddr::V6(Ipv6Addr::from(dst)),
        l4,
        declared,
    )
}

/// `l4` is the captured TCP header + payload, `declared` its length according to IP.
fn decode_tcp(src: IpAddr, dst: IpAddr, l4: &[u8], declared: usize) -> IpDecode<'_> {
    let (Some(sport), Some(dport), Some(seq), Some(&offset_byte), Some(&flags)) = (
        be16(l4, 0),
        be16(l4, 2),
        be32(l4, 4),
        l4.get(12),
        l4.get(13),
    ) else {
        return IpDecode::HeaderTruncated;
    };
    let header_len = usize::from(offset_byte >> 4) * 4;
    if header_len < 20 || header_len > declared {
        return IpDecode::Malformed;
    }
    let Some(payload) = l4.get(header_len..) else {
        return IpDecode::HeaderTruncated;
    };
    let declared_payload = declared - header_len;
    let missing_tail = declared_payload.saturating_sub(payload.len());
    let segment = TcpSegment {
        src: SocketAddr::new(src, sport),
        dst: SocketAddr::new(dst, dport),
        seq,
        flags,
        payload,
        missing_tail: u32::try_from(missing_tail).unwrap_or(u32::MAX),
    };
    if missing_tail > 0 {
        IpDecode::TcpTruncated(segment)
    } else {
        IpDecode::Tcp(segment)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ipv4_tcp(payload: &[u8], options: usize) -> Vec<u8> {
        let ihl = 5 + options / 4;
        let total = ihl * 4 + 20 + payload.len();
        let mut p = vec![0x40 | ihl as u8, 0];
        p.extend_from_slice(&(total as u16).to_be_bytes());
        p.extend_from_slice(&[0, 0, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
        p.extend(std::iter::repeat_n(1u8, options));
        p.extend_from_slice(&[0x30, 0x39, 0x00, 0x50, 0, 0, 0, 100, 0, 0, 0, 0, 0x50, 0x18]);
        p.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
        p.extend_from_slice(payload);
        p
    }

    #[test]
    fn ipv4_with_options_and_padding() {
        let mut p = ipv4_tcp(b"hello", 8);
        p.extend_from_slice(&[0; 6]); // ethernet padding
        let IpDecode::Tcp(seg) = decode_ip(&p) else {
            panic!("not tcp")
        };
        assert_eq!(seg.payload, b"hello");
        assert_eq!(seg.seq, 100);
        assert_eq!(seg.src.port(), 12345);
    }

    #[test]
    fn ipv4_truncated_payload_is_missing_tail() {
        let p = ipv4_tcp(b"hello world", 0);
        let cut = &p[..p.len() - 4];
        let IpDecode::TcpTruncated(seg) = decode_ip(cut) else {
            panic!("expected truncated")
        };
        assert_eq!(seg.payload, b"hello w");
        assert_eq!(seg.missing_tail, 4);
        assert_eq!(decode_ip(&p[..30]), IpDecode::HeaderTruncated);
    }

    #[test]
    fn ipv4_fragment_is_reported() {
        let mut p = ipv4_tcp(b"x", 0);
        p[6] = 0x20; // MF
        assert_eq!(decode_ip(&p), IpDecode::Fragment);
    }

    #[test]
    fn ipv6_with_extension_headers() {
        let payload = b"abc";
        let ext = [6u8, 0, 0, 0, 0, 0, 0, 0]; // destination options -> TCP, 8 bytes
        let plen = ext.len() + 20 + payload.len();
        let mut p = vec![0x60, 0, 0, 0];
        p.extend_from_slice(&(plen as u16).to_be_bytes());
        p.extend_from_slice(&[60, 64]);
        p.extend_from_slice(&[0; 15]);
        p.push(1);
        p.extend_from_slice(&[0; 15]);
        p.push(2);
        p.extend_from_slice(&ext);
        p.extend_from_slice(&[0x01, 0xbb, 0xc0, 0x00, 0, 0, 0, 7, 0, 0, 0, 0, 0x50, 0x18]);
        p.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
        p.extend_from_slice(payload);
        let IpDecode::Tcp(seg) = decode_ip(&p) else {
            panic!("not tcp")
        };
        assert_eq!(seg.payload, b"abc");
        assert_eq!(seg.src.port(), 443);
        assert_eq!(seg.src.ip(), "::1".parse::<IpAddr>().unwrap());
    }
}
