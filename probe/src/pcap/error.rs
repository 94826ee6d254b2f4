//! Errors of the pcap source: each names the capture (file name or caller-given label) and the
//! byte offset in it where reading failed.

/// Why a capture could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PcapError {
    #[error("{source_name}: cannot open or read: {error}")]
    Io {
        source_name: String,
        #[source]
        error: std::io::Error,
    },
    #[error("{source_name}: empty file, not a pcap or pcapng capture")]
    Empty { source_name: String },
    #[error(
        "{source_name}: not a pcap or pcapng capture (first bytes {magic:02x?} at byte offset 0)"
    )]
    NotACapture { source_name: String, magic: Vec<u8> },
    #[error("{source_name}: capture file truncated: incomplete record at byte offset {offset}")]
    Truncated { source_name: String, offset: u64 },
    #[error("{source_name}: malformed {what} at byte offset {offset}")]
    Malformed {
        source_name: String,
        offset: u64,
        what: String,
    },
    #[error(
        "{source_name}: record at byte offset {offset} does not fit the {limit}-byte read buffer"
    )]
    RecordTooLarge {
        source_name: String,
        offset: u64,
        limit: usize,
    },
    #[error("{source_name}: read error at byte offset {offset}")]
    ReadFailed { source_name: String, offset: u64 },
}
