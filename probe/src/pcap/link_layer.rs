//! Link-layer decoding: strips Ethernet (with 802.1Q/802.1ad VLAN tags), Linux cooked SLL and
//! SLL2, BSD loopback (NULL/LOOP, 4-byte address family) and raw-IP framing, leaving the IP
//! packet.

/// pcap LINKTYPE_* values this reader decodes.
pub(crate) mod linktype {
    pub const NULL: u32 = 0;
    pub const ETHERNET: u32 = 1;
    /// DLT_RAW as written by some BSDs / old libpcap.
    pub const RAW_12: u32 = 12;
    pub const RAW_14: u32 = 14;
    pub const RAW: u32 = 101;
    pub const LOOP: u32 = 108;
    pub const LINUX_SLL: u32 = 113;
    pub const IPV4: u32 = 228;
    pub const IPV6: u32 = 229;
    pub const LINUX_SLL2: u32 = 276;
}

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const ETHERTYPE_VLAN: u16 = 0x8100;
const ETHERTYPE_QINQ: u16 = 0x88a8;
const ETHERTYPE_QINQ_OLD: u16 = 0x9100;
/// More stacked VLAN tags than this is treated as malformed.
const MAX_VLAN_TAGS: usize = 8;

/// What the link layer carried.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum LinkPayload<'a> {
    /// An IPv4 or IPv6 packet (the version is in its first nibble).
    Ip(&'a [u8]),
    /// Something that is not IP (ARP, LLDP, ...).
    NotIp,
    /// The frame is shorter than its link header.
    Malformed,
    /// A link type this reader does not decode.
    UnsupportedLinkType,
}

fn be16(data: &[u8], at: usize) -> Option<u16> {
    let bytes = data.get(at..at.checked_add(2)?)?;
    Some(u16::from_be_bytes([*bytes.first()?, *bytes.get(1)?]))
}

fn by_ethertype(ethertype: u16, rest: &[u8]) -> LinkPayload<'_> {
    match ethertype {
        ETHERTYPE_IPV4 | ETHERTYPE_IPV6 => LinkPayload::Ip(rest),
        _ => LinkPayload::NotIp,
    }
}

fn ethernet(frame: &[u8]) -> LinkPayload<'_> {
    let Some(mut ethertype) = be16(frame, 12) else {
        return LinkPayload::Malformed;
    };
    let mut at = 14usize;
    let mut tags = 0;
    while matches!(
        ethertype,
        ETHERTYPE_VLAN | ETHERTYPE_QINQ | ETHERTYPE_QINQ_OLD
    ) {
        tags += 1;
        if tags > MAX_VLAN_TAGS {
            return LinkPayload::Malformed;
        }
        // 2 bytes TCI, then the inner ethertype.
        let Some(inner) = be16(frame, at + 2) else {
            return LinkPayload::Malformed;
        };
        ethertype = inner;
        at += 4;
    }
    match frame.get(at..) {
        Some(rest) => by_ethertype(ethertype, rest),
        None => LinkPayload::Malformed,
    }
}

/// Loopback: a 4-byte address family in the capturing host's byte order (NULL) or network
/// order (LOOP). AF_INET is 2 everywhere; AF_INET6 is 10 (Linux), 24, 28 or 30 (BSDs, macOS).
fn loopback(frame: &[u8]) -> LinkPayload<'_> {
    let (Some(family), Some(rest)) = (frame.get(..4), frame.get(4..)) else {
        return LinkPayload::Malformed;
    };
    let Ok(family) = <[u8; 4]>::try_from(family) else {
        return LinkPayload::Malformed;
    };
    let le = u32::from_le_bytes(family);
    let be = u32::from_be_bytes(family);
    let known = |f: u32| matches!(f, 2 | 10 | 24 | 28 | 30);
    if known(le) || known(be) {
        LinkPayload::Ip(rest)
    } else {
        LinkPayload::NotIp
    }
}

/// Strips the link header of a frame of the given LINKTYPE.
pub(crate) fn decode_link(linktype: u32, frame: &[u8]) -> LinkPayload<'_> {
    match linktype {
        linktype::ETHERNET => ethernet(frame),
        linktype::NULL | linktype::LOOP => loopback(frame),
        linktype::RAW | linktype::RAW_12 | linktype::RAW_14 | linktype::IPV4 | linktype::IPV6 => {
            LinkPayload::Ip(frame)
        }
        linktype::LINUX_SLL => match (be16(frame, 14), frame.get(16..)) {
            (Some(protocol), Some(rest)) => by_ethertype(protocol, rest),
            _ => LinkPayload::Malformed,
        },
        linktype::LINUX_SLL2 => match (be16(frame, 0), frame.get(20..)) {
            (Some(protocol), Some(rest)) => by_ethertype(protocol, rest),
            _ => LinkPayload::Malformed,
        },
        _ => LinkPayload::UnsupportedLinkType,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vlan_tags_are_skipped() {
        let mut frame = vec![0u8; 12];
        frame.extend_from_slice(&[0x81, 0x00, 0x00, 0x05, 0x88, 0xa8, 0x00, 0x06, 0x08, 0x00]);
        frame.extend_from_slice(&[0x45, 0x00]);
        assert_eq!(
            decode_link(linktype::ETHERNET, &frame),
            LinkPayload::Ip(&[0x45, 0x00])
        );
    }

    #[test]
    fn short_frames_are_malformed_not_panics() {
        for lt in [0, 1, 108, 113, 276] {
            for len in 0..4 {
                let frame = vec![0x81u8; len];
                let _ = decode_link(lt, &frame);
            }
        }
        assert_eq!(
            decode_link(linktype::ETHERNET, &[0; 13]),
            LinkPayload::Malformed
        );
        assert_eq!(decode_link(147, &[0; 40]), LinkPayload::UnsupportedLinkType);
    }

    #[test]
    fn loopback_families() {
        assert_eq!(
            decode_link(linktype::NULL, &[2, 0, 0, 0, 0x45]),
            LinkPayload::Ip(&[0x45])
        );
        assert_eq!(
            decode_link(linktype::LOOP, &[0, 0, 0, 30, 0x60]),
            LinkPayload::Ip(&[0x60])
        );
        assert_eq!(
            decode_link(linktype::NULL, &[7, 0, 0, 0, 0x45]),
            LinkPayload::NotIp
        );
    }
}
