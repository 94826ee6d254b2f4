//! Capture file framing: turns a pcap or pcapng byte stream (any `Read`) into link-layer frames
//! with their link type and a nanosecond timestamp. Block parsing is pcap-parser's; this file
//! keeps the per-interface state (link type, timestamp resolution and offset) and maps errors
//! to `PcapError` with the byte offset.

use std::io::{Cursor, Read};

use pcap_parser::traits::{PcapNGPacketBlock, PcapReaderIterator};
use pcap_parser::{Block, LegacyPcapReader, PcapBlockOwned, PcapNGReader};

use super::error::PcapError;
use super::events::PcapStats;

/// One captured frame: the captured bytes (`caplen` of them) and their link type.
#[derive(Debug)]
pub(crate) struct Frame<'a> {
    pub linktype: u32,
    pub ts_ns: u64,
    pub data: &'a [u8],
}

/// Reads until `buf` is full or the input ends, so that pcap-parser's single `read` per
/// refill sees whole records even from pipes and short-reading sources.
struct FillingReader<R> {
    inner: R,
}

impl<R: Read> Read for FillingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let mut filled = 0;
        while filled < buf.len() {
            let Some(rest) = buf.get_mut(filled..) else {
                break;
            };
            match self.inner.read(rest) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    if filled > 0 {
                        break;
                    }
                    return Err(e);
                }
            }
        }
        Ok(filled)
    }
}

type Input<R> = FillingReader<std::io::Chain<Cursor<Vec<u8>>, R>>;

enum BlockReader<R: Read> {
    Legacy(LegacyPcapReader<Input<R>>),
    Ng(PcapNGReader<Input<R>>),
}

#[derive(Debug, Clone, Copy)]
struct Interface {
    linktype: u32,
    /// Timestamp units per second; `None` if the IDB declared an unusable resolution.
    units_per_second: Option<u64>,
    offset_seconds: i64,
}

/// What one block turned out to be.
enum BlockOutcome {
    Frame {
        linktype: u32,
        ts_ns: u64,
    },
    /// A packet on an interface that was never described or has a bad timestamp resolution.
    BadPacket,
    Other,
}

/// Per-file state next to the block reader (kept separate so blocks can borrow the reader).
struct FileState {
    legacy_linktype: u32,
    legacy_nanos: bool,
    interfaces: Vec<Interface>,
    scratch: Vec<u8>,
    /// Timestamp of the previous packet, given to Simple Packet Blocks (which have none).
    last_ts_ns: u64,
}

/// A pcap or pcapng capture read block by block with a bounded buffer.
pub(crate) struct CaptureFile<R: Read> {
    reader: BlockReader<R>,
    state: FileState,
    source_name: String,
    buffer_bytes: usize,
}

const PCAPNG_MAGIC: [u8; 4] = [0x0a, 0x0d, 0x0d, 0x0a];

fn is_legacy_magic(magic: [u8; 4]) -> bool {
    let le = u32::from_le_bytes(magic);
    let be = u32::from_be_bytes(magic);
    [0xa1b2_c3d4u32, 0xa1b2_3c4d, 0xa1b2_cd34]
        .iter()
        .any(|m| *m == le || *m == be)
}

/// Timestamp units per second from a pcapng `if_tsresol` (default 6 = microseconds): 10^n, or
/// 2^n when the top bit is set. (pcap-parser 0.17's `ts_resolution()` rejects every binary
/// resolution because it range-checks before masking the top bit, so this is done here.)
fn ts_units_per_second(if_tsresol: u8) -> Option<u64> {
    let exponent = u32::from(if_tsresol & 0x7f);
    if if_tsresol & 0x80 == 0 {
        10u64.checked_pow(exponent)
    } else {
        1u64.checked_shl(exponent).filter(|_| exponent < 64)
    }
}

/// Nanoseconds since the epoch from a (seconds, fraction in `units` per second) pair.
fn to_ns(seconds: u64, fraction: u64, units: u64) -> u64 {
    if units == 0 {
        return 0;
    }
    let frac_ns = (u128::from(fraction) * 1_000_000_000u128) / u128::from(units);
    let total = u128::from(seconds) * 1_000_000_000u128 + frac_ns;
    u64::try_from(total).unwrap_or(u64::MAX)
}

impl<R: Read> CaptureFile<R> {
    /// Detects pcap vs pcapng from the magic number and reads the file header.
    pub fn open(mut input: R, source_name: &str, buffer_bytes: usize) -> Result<Self, PcapError> {
        let mut magic = [0u8; 4];
        let mut got = 0;
        while got < magic.len() {
            let Some(rest) = magic.get_mut(got..) else {
                break;
            };
            match input.read(rest) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(error) => {
                    return Err(PcapError::Io {
                        source_name: source_name.to_string(),
                        error,
                    });
                }
            }
        }
        let head = magic.get(..got).unwrap_or(&[]).to_vec();
        if got == 0 {
            return Err(PcapError::Empty {
                source_name: source_name.to_string(),
            });
        }
        if got < magic.len() {
            return Err(PcapError::Truncated {
                source_name: source_name.to_string(),
                offset: 0,
            });
        }
        let input = FillingReader {
            inner: Cursor::new(head.clone()).chain(input),
        };
        let buffer_bytes = buffer_bytes.max(65_536);
        let header_error = |e: pcap_parser::PcapError<&[u8]>| match e {
            pcap_parser::PcapError::Incomplete(_)
            | pcap_parser::PcapError::UnexpectedEof
            | pcap_parser::PcapError::Eof => PcapError::Truncated {
                source_name: source_name.to_string(),
                offset: 0,
            },
            pcap_parser::PcapError::ReadError => PcapError::ReadFailed {
                source_name: source_name.to_string(),
                offset: 0,
            },
            other => PcapError::Malformed {
                source_name: source_name.to_string(),
                offset: 0,
                what: format!("file header ({other})"),
            },
        };
        let reader = if magic == PCAPNG_MAGIC {
            BlockReader::Ng(PcapNGReader::new(buffer_bytes, input).map_err(header_error)?)
        } else if is_legacy_magic(magic) {
            BlockReader::Legacy(LegacyPcapReader::new(buffer_bytes, input).map_err(header_error)?)
        } else {
            return Err(PcapError::NotACapture {
                source_name: source_name.to_string(),
                magic: head,
            });
        };
        Ok(CaptureFile {
            reader,
            state: FileState {
                legacy_linktype: 0,
                legacy_nanos: false,
                interfaces: Vec::new(),
                scratch: Vec::new(),
                last_ts_ns: 0,
            },
            source_name: source_name.to_string(),
            buffer_bytes,
        })
    }

    /// The next frame, `None` at the clean end of the capture. Packet records that cannot be
    /// used (unknown interface, unusable timestamp resolution) are skipped and counted in
    /// `stats.packets` and `stats.malformed`.
    pub fn next_frame(&mut self, stats: &mut PcapStats) -> Result<Option<Frame<'_>>, PcapError> {
        let mut refills_without_progress = 0u32;
        let record_kind = match &self.reader {
            BlockReader::Legacy(_) => "pcap record",
            BlockReader::Ng(_) => "pcapng block",
        };
        loop {
            let reader: &mut dyn PcapReaderIterator = match &mut self.reader {
                BlockReader::Legacy(r) => r,
                BlockReader::Ng(r) => r,
            };
            let offset = reader.consumed() as u64;
            let outcome = match reader.next() {
                Ok((len, block)) => {
                    let outcome = self.state.absorb(block);
                    reader.consume(len);
                    outcome
                }
                Err(pcap_parser::PcapError::Eof) => return Ok(None),
                Err(pcap_parser::PcapError::Incomplete(_)) => {
                    refills_without_progress += 1;
                    if refills_without_progress > 4 {
                        return Err(PcapError::Truncated {
                            source_name: self.source_name.clone(),
                            offset,
                        });
                    }
                    if reader.refill().is_err() {
                        return Err(PcapError::ReadFailed {
                            source_name: self.source_name.clone(),
                            offset,
                        });
                    }
                    continue;
                }
                Err(pcap_parser::PcapError::UnexpectedEof) => {
                    return Err(PcapError::Truncated {
                        source_name: self.source_name.clone(),
                        offset,
                    });
                }
                Err(pcap_parser::PcapError::BufferTooSmall) => {
                    return Err(PcapError::RecordTooLarge {
                        source_name: self.source_name.clone(),
                        offset,
                        limit: self.buffer_bytes,
                    });
                }
                Err(pcap_parser::PcapError::ReadError) => {
                    return Err(PcapError::ReadFailed {
                        source_name: self.source_name.clone(),
                        offset,
                    });
                }
                Err(other) => {
                    return Err(PcapError::Malformed {
                        source_name: self.source_name.clone(),
                        offset,
                        what: format!("{record_kind} ({other})"),
                    });
                }
            };
            refills_without_progress = 0;
            match outcome {
                BlockOutcome::Frame { linktype, ts_ns } => {
                    return Ok(Some(Frame {
                        linktype,
                        ts_ns,
                        data: &self.state.scratch,
                    }));
                }
                BlockOutcome::BadPacket => {
                    stats.packets += 1;
                    stats.malformed += 1;
                }
                BlockOutcome::Other => {}
            }
        }
    }
}

impl FileState {
    /// Updates per-file state from one block; for packets copies the bytes into `scratch`.
    fn absorb(&mut self, block: PcapBlockOwned<'_>) -> BlockOutcome {
        match block {
            PcapBlockOwned::LegacyHeader(header) => {
                self.legacy_linktype = header.network.0 as u32;
                self.legacy_nanos = header.is_nanosecond_precision();
                BlockOutcome::Other
            }
            PcapBlockOwned::Legacy(record) => {
                let units = if self.legacy_nanos {
                    1_000_000_000
                } else {
                    1_000_000
                };
                self.scratch.clear();
                self.scratch.extend_from_slice(record.data);
                self.last_ts_ns = to_ns(u64::from(record.ts_sec), u64::from(record.ts_usec), units);
                BlockOutcome::Frame {
                    linktype: self.legacy_linktype,
                    ts_ns: self.last_ts_ns,
                }
            }
            PcapBlockOwned::NG(Block::SectionHeader(_)) => {
                self.interfaces.clear();
                BlockOutcome::Other
            }
            PcapBlockOwned::NG(Block::InterfaceDescription(idb)) => {
                self.interfaces.push(Interface {
                    linktype: idb.linktype.0 as u32,
                    units_per_second: ts_units_per_second(idb.if_tsresol),
                    offset_seconds: idb.ts_offset(),
                });
                BlockOutcome::Other
            }
            PcapBlockOwned::NG(Block::EnhancedPacket(epb)) => {
                let Some(iface) = self.interfaces.get(epb.if_id as usize).copied() else {
                    return BlockOutcome::BadPacket;
                };
                let Some(units) = iface.units_per_second.filter(|u| *u > 0) else {
                    return BlockOutcome::BadPacket;
                };
                let raw = (u64::from(epb.ts_high) << 32) | u64::from(epb.ts_low);
                let seconds = (raw / units).saturating_add_signed(iface.offset_seconds);
                self.scratch.clear();
                self.scratch.extend_from_slice(epb.packet_data());
                self.last_ts_ns = to_ns(seconds, raw % units, units);
                BlockOutcome::Frame {
                    linktype: iface.linktype,
                    ts_ns: self.last_ts_ns,
                }
            }
            PcapBlockOwned::NG(Block::SimplePacket(spb)) => {
                // An SPB has no timestamp; it belongs to interface 0.
                let Some(iface) = self.interfaces.first().copied() else {
                    return BlockOutcome::BadPacket;
                };
                self.scratch.clear();
                self.scratch.extend_from_slice(spb.packet_data());
                BlockOutcome::Frame {
                    linktype: iface.linktype,
                    ts_ns: self.last_ts_ns,
                }
            }
            PcapBlockOwned::NG(_) => BlockOutcome::Other,
        }
    }
}
