//! AWS event-stream framing (`application/vnd.amazon.eventstream`, used by Bedrock
//! converse-stream): each message is a prelude (total length, headers length, prelude CRC32),
//! typed headers, a payload and a message CRC32. Decoding is bounded and checks both CRCs.

use thiserror::Error;

/// Largest message accepted (the service's own limit is 16 MiB).
const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;
/// Messages decoded at most per body.
const MAX_MESSAGES: usize = 100_000;
/// Prelude (12) + message CRC (4).
const MIN_MESSAGE_BYTES: usize = 16;

/// One event-stream message: its string-valued headers and its payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventStreamMessage {
    /// Headers whose value is a string (`:event-type`, `:message-type`, `:content-type`, ...);
    /// other header types are skipped.
    pub headers: Vec<(String, String)>,
    pub payload: Vec<u8>,
}

impl EventStreamMessage {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Why an event-stream body could not be decoded further.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EventStreamError {
    #[error(
        "event-stream message at byte {offset}: total length {len} outside 16..={MAX_MESSAGE_BYTES}"
    )]
    BadLength { offset: usize, len: usize },
    #[error("event-stream message at byte {offset}: prelude CRC mismatch")]
    PreludeCrc { offset: usize },
    #[error("event-stream message at byte {offset}: message CRC mismatch")]
    MessageCrc { offset: usize },
    #[error("event-stream message at byte {offset}: headers length {len} larger than the message")]
    BadHeaders { offset: usize, len: usize },
    #[error("event-stream message at byte {offset}: header {detail}")]
    BadHeader { offset: usize, detail: &'static str },
    #[error("more than {MAX_MESSAGES} event-stream messages")]
    TooManyMessages,
}

/// The messages of an event-stream body, and the error that stopped decoding (if any). A body
/// cut in the middle of a message ends without an error (the cut message is dropped).
pub fn decode_event_stream(body: &[u8]) -> (Vec<EventStreamMessage>, Option<EventStreamError>) {
    let mut out = Vec::new();
    let mut offset = 0usize;
    while body.len().saturating_sub(offset) >= 12 {
        if out.len() >= MAX_MESSAGES {
            return (out, Some(EventStreamError::TooManyMessages));
        }
        let rest = &body[offset..];
        let total = be32(rest, 0) as usize;
        let headers_len = be32(rest, 4) as usize;
        if !(MIN_MESSAGE_BYTES..=MAX_MESSAGE_BYTES).contains(&total) {
            return (
                out,
                Some(EventStreamError::BadLength { offset, len: total }),
            );
        }
        if crc32fast::hash(&rest[..8]) != be32(rest, 8) {
            return (out, Some(EventStreamError::PreludeCrc { offset }));
        }
        if headers_len > total - MIN_MESSAGE_BYTES {
            return (
                out,
                Some(EventStreamError::BadHeaders {
                    offset,
                    len: headers_len,
                }),
            );
        }
        let Some(msg) = rest.get(..total) else {
            break; // cut
        };
        if crc32fast::hash(&msg[..total - 4]) != be32(msg, total - 4) {
            return (out, Some(EventStreamError::MessageCrc { offset }));
        }
        let headers = match parse_headers(&msg[12..12 + headers_len]) {
            Ok(h) => h,
            Err(detail) => return (out, Some(EventStreamError::BadHeader { offset, detail })),
        };
        let payload = msg[12 + headers_len..total - 4].to_vec();
        out.push(EventStreamMessage { headers, payload });
        offset += total;
    }
    (out, None)
}

fn be32(b: &[u8], at: usize) -> u32 {
    match b.get(at..at + 4) {
        Some(s) => u32::from_be_bytes([s[0], s[1], s[2], s[3]]),
        None => 0,
    }
}

/// Header wire format: name length (u8), name, type (u8), value by type.
fn parse_headers(mut b: &[u8]) -> Result<Vec<(String, String)>, &'static str> {
    let mut out = Vec::new();
    while !b.is_empty() {
        let name_len = *b.first().ok_or("name length missing")? as usize;
        let name = b.get(1..1 + name_len).ok_or("name cut")?;
        let kind = *b.get(1 + name_len).ok_or("type missing")?;
        b = &b[2 + name_len..];
        let value_len = match kind {
            0 | 1 => 0, // bool true / false
            2 => 1,     // byte
            3 => 2,     // short
            4 => 4,     // int
            5 | 8 => 8, // long, timestamp
            9 => 16,    // uuid
            6 | 7 => {
                let l = b.get(..2).ok_or("value length cut")?;
                2 + u16::from_be_bytes([l[0], l[1]]) as usize
            }
            _ => return Err("unknown value type"),
        };
        let value = b.get(..value_len).ok_or("value cut")?;
        if kind == 7 {
            out.push((
                String::from_utf8_lossy(name).into_owned(),
                String::from_utf8_lossy(value.get(2..).unwrap_or_default()).into_owned(),
            ));
        }
        b = &b[value_len..];
    }
    Ok(out)
}

/// An event-stream message, encoded (for tests and benches).
pub fn encode_event_stream_message(headers: &[(&str, &str)], payload: &[u8]) -> Vec<u8> {
    let mut h = Vec::new();
    for (name, value) in headers {
        h.push(name.len() as u8);
        h.extend_from_slice(name.as_bytes());
        h.push(7);
        h.extend_from_slice(&(value.len() as u16).to_be_bytes());
        h.extend_from_slice(value.as_bytes());
    }
    let total = 12 + h.len() + payload.len() + 4;
    let mut m = Vec::with_capacity(total);
    m.extend_from_slice(&(total as u32).to_be_bytes());
    m.extend_from_slice(&(h.len() as u32).to_be_bytes());
    let prelude_crc = crc32fast::hash(&m);
    m.extend_from_slice(&prelude_crc.to_be_bytes());
    m.extend_from_slice(&h);
    m.extend_from_slice(payload);
    let crc = crc32fast::hash(&m);
    m.extend_from_slice(&crc.to_be_bytes());
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_crcs_are_checked() {
        let mut body = encode_event_stream_message(
            &[(":event-type", "messageStart"), (":message-type", "event")],
            b"{\"role\":\"assistant\"}",
        );
        body.extend(encode_event_stream_message(
            &[(":event-type", "messageStop")],
            b"{\"stopReason\":\"end_turn\"}",
        ));
        let (msgs, err) = decode_event_stream(&body);
        assert_eq!(err, None);
        assert_eq!(msgs.len(), 2);
        assert_eq!(msgs[0].header(":event-type"), Some("messageStart"));
        assert_eq!(msgs[1].payload, b"{\"stopReason\":\"end_turn\"}");

        // A cut body keeps the whole messages.
        let (msgs, err) = decode_event_stream(&body[..body.len() - 3]);
        assert_eq!((msgs.len(), err), (1, None));

        // A flipped payload bit is a CRC error.
        let mut bad = body.clone();
        let last = bad.len() - 6;
        bad[last] ^= 1;
        let (msgs, err) = decode_event_stream(&bad);
        assert_eq!(msgs.len(), 1);
        assert!(matches!(err, Some(EventStreamError::MessageCrc { .. })));
    }

    #[test]
    fn the_aws_empty_message_vector_decodes() {
        // encoded/positive/empty_message of the AWS event-stream test suite.
        let body = [
            0, 0, 0, 0x10, 0, 0, 0, 0, 0x05, 0xc2, 0x48, 0xeb, 0x7d, 0x98, 0xc8, 0xff,
        ];
        let (msgs, err) = decode_event_stream(&body);
        assert_eq!(err, None);
        assert_eq!(
            msgs,
            vec![EventStreamMessage {
                headers: vec![],
                payload: vec![]
            }]
        );
        assert_eq!(encode_event_stream_message(&[], b""), body.to_vec());
    }

    #[test]
    fn garbage_never_panics() {
        for len in 0..64 {
            let junk: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            let _ = decode_event_stream(&junk);
        }
        let _ = parse_headers(&[3, b'a']);
        let _ = parse_headers(&[1, b'a', 7, 0xff, 0xff]);
    }
}
