//! S3 XML bodies read with quick-xml: `Error` documents, `ListBucketResult` (v1 and v2),
//! `ListAllMyBucketsResult`, `InitiateMultipartUploadResult`, `CompleteMultipartUploadResult`,
//! the `CompleteMultipartUpload` request, `DeleteResult`, `CopyObjectResult`. Only the fields
//! the semantics need are kept; events read per body are bounded.

use quick_xml::Reader;
use quick_xml::events::Event;

/// XML events read from one body at most (a listing of 1000 keys is ~15 000 events).
const MAX_EVENTS: usize = 200_000;
/// Longest element text kept.
const MAX_TEXT_CHARS: usize = 1024;
/// Element nesting followed.
const MAX_DEPTH: usize = 32;

/// What an S3 XML body says.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct S3Xml {
    /// Local name of the root element (`Error`, `ListBucketResult`, ...).
    pub root: String,
    /// `Error/Code`.
    pub code: Option<String>,
    /// `Error/Message`.
    pub message: Option<String>,
    /// `Bucket` or, in listings, `Name`.
    pub bucket: Option<String>,
    pub key: Option<String>,
    pub upload_id: Option<String>,
    pub etag: Option<String>,
    pub location: Option<String>,
    /// `RequestId` of an error document.
    pub request_id: Option<String>,
    /// `Prefix` of a listing.
    pub prefix: Option<String>,
    /// `KeyCount` of a v2 listing.
    pub key_count: Option<i64>,
    pub is_truncated: Option<bool>,
    /// `Contents` entries of a listing.
    pub contents: usize,
    /// `Buckets/Bucket` entries of `ListAllMyBucketsResult`.
    pub buckets: usize,
    /// `Part` entries (a `CompleteMultipartUpload` request or `ListPartsResult`).
    pub parts: usize,
    /// `Deleted` entries and per-key `Error` entries of a `DeleteResult`.
    pub deleted: usize,
    pub delete_errors: usize,
    /// The body was not well-formed XML (what was read before the error is kept).
    pub malformed: bool,
    /// `MAX_EVENTS` stopped the reading.
    pub truncated: bool,
}

/// Read an S3 XML body; `None` when it is not XML at all.
pub fn parse_s3_xml(body: &[u8]) -> Option<S3Xml> {
    let start = body.trim_ascii_start();
    if !start.starts_with(b"<") {
        return None;
    }
    let mut reader = Reader::from_reader(start);
    reader.config_mut().trim_text(true);
    let mut out = S3Xml::default();
    let mut stack: Vec<String> = Vec::new();
    let mut text = String::new();
    let mut buf = Vec::new();
    for _ in 0..MAX_EVENTS {
        buf.clear();
        match reader.read_event_into(&mut buf) {
            Ok(Event::Start(e)) => {
                let name = e.local_name().as_ref().to_string();
                opened(&mut out, &stack, &name);
                if stack.len() < MAX_DEPTH {
                    stack.push(name);
                }
                text.clear();
            }
            Ok(Event::Empty(e)) => {
                let name = e.local_name().as_ref().to_string();
                opened(&mut out, &stack, &name);
            }
            Ok(Event::Text(t)) => {
                push_text(&mut text, &t.xml10_content());
            }
            Ok(Event::GeneralRef(r)) => {
                let name: &str = &r;
                let resolved = match r.resolve_char_ref() {
                    Ok(Some(c)) => Some(c.to_string()),
                    _ => quick_xml::escape::resolve_predefined_entity(name).map(str::to_string),
                };
                push_text(&mut text, resolved.as_deref().unwrap_or(""));
            }
            Ok(Event::CData(c)) => push_text(&mut text, &c),
            Ok(Event::End(_)) => {
                if let Some(name) = stack.pop() {
                    closed(&mut out, &stack, &name, std::mem::take(&mut text));
                }
            }
            Ok(Event::Eof) => return Some(out),
            Ok(_) => {}
            Err(_) => {
                out.malformed = true;
                return Some(out).filter(|o| !o.root.is_empty());
            }
        }
    }
    out.truncated = true;
    Some(out)
}

fn push_text(text: &mut String, s: &str) {
    let room = MAX_TEXT_CHARS.saturating_sub(text.chars().count());
    text.extend(s.chars().take(room));
}

fn opened(out: &mut S3Xml, stack: &[String], name: &str) {
    match stack {
        [] => out.root = name.to_string(),
        [_root] => match name {
            "Contents" => out.contents += 1,
            "Part" => out.parts += 1,
            "Deleted" => out.deleted += 1,
            "Error" => out.delete_errors += 1,
            _ => {}
        },
        [_root, parent] if parent == "Buckets" && name == "Bucket" => out.buckets += 1,
        _ => {}
    }
}

fn closed(out: &mut S3Xml, stack: &[String], name: &str, text: String) {
    // Only direct children of the root carry the fields below.
    if stack.len() != 1 {
        return;
    }
    let slot = match name {
        "Code" => &mut out.code,
        "Message" => &mut out.message,
        "Bucket" | "Name" => &mut out.bucket,
        "Key" => &mut out.key,
        "UploadId" => &mut out.upload_id,
        "ETag" => &mut out.etag,
        "Location" => &mut out.location,
        "RequestId" => &mut out.request_id,
        "Prefix" => &mut out.prefix,
        "KeyCount" => {
            out.key_count = text.trim().parse().ok();
            return;
        }
        "IsTruncated" => {
            out.is_truncated = Some(text.trim().eq_ignore_ascii_case("true"));
            return;
        }
        _ => return,
    };
    if !text.is_empty() {
        *slot = Some(text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_document() {
        let body = br#"<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>NoSuchBucket</Code><Message>The specified bucket does not exist</Message><BucketName>agent-dumps</BucketName><Resource>/agent-dumps/x.gz</Resource><RequestId>4442587FB7D0A2F9</RequestId><HostId>abc</HostId></Error>"#;
        let x = parse_s3_xml(body).unwrap();
        assert_eq!(x.root, "Error");
        assert_eq!(x.code.as_deref(), Some("NoSuchBucket"));
        assert_eq!(
            x.message.as_deref(),
            Some("The specified bucket does not exist")
        );
        assert_eq!(x.request_id.as_deref(), Some("4442587FB7D0A2F9"));
        assert!(!x.malformed);
    }

    #[test]
    fn entities_and_listing() {
        let body = br#"<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name><Prefix>a&amp;b&#47;</Prefix><KeyCount>2</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated><Contents><Key>k1</Key><Size>3</Size></Contents><Contents><Key>k2</Key></Contents></ListBucketResult>"#;
        let x = parse_s3_xml(body).unwrap();
        assert_eq!(x.root, "ListBucketResult");
        assert_eq!(x.bucket.as_deref(), Some("b"));
        assert_eq!(x.prefix.as_deref(), Some("a&b/"));
        assert_eq!(
            (x.key_count, x.contents, x.is_truncated),
            (Some(2), 2, Some(false))
        );
        assert_eq!(x.key, None, "keys inside Contents are not the object key");
    }

    #[test]
    fn garbage_is_not_xml_and_broken_xml_is_marked() {
        assert!(parse_s3_xml(b"{\"a\":1}").is_none());
        let x = parse_s3_xml(b"<Error><Code>X</Code></Wrong>").unwrap();
        assert!(x.malformed);
        assert_eq!(x.code.as_deref(), Some("X"));
    }
}
