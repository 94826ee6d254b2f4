//! What a SaaS upload action writes out, for the detectors: the object body of an S3 put or
//! upload part, the bytes sent to a Slack upload URL, the file parts of a multipart upload,
//! the base64-decoded `content` of a GitHub contents put or blob, and gist file contents.
//! Small JSON bodies that `upload::payloads` leaves out (not archives, not large) are here too.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

use super::{KIND_UPLOAD, SaasRecognition};
use crate::semantics::http_view::HttpView;

/// Bytes decoded from base64 per action at most.
const MAX_DECODED_BYTES: usize = 16 * 1024 * 1024;

/// (location, bytes) of what an upload action writes; empty for other actions.
pub fn upload_payloads(view: &HttpView, recognition: &SaasRecognition) -> Vec<(String, Vec<u8>)> {
    if recognition.kind != KIND_UPLOAD {
        return Vec::new();
    }
    let target = recognition.target.clone().unwrap_or_default();
    let location = format!("upload:{}:{}", recognition.service, target);
    match (recognition.service, recognition.action.as_str()) {
        ("github", "contents.put" | "git.blob.create") => view
            .request_json()
            .and_then(|b| {
                let content = b.get("content")?.as_str()?;
                let base64 = recognition.action == "contents.put"
                    || b.get("encoding").and_then(Value::as_str) == Some("base64");
                Some(if base64 {
                    decode_base64(content)?
                } else {
                    content.as_bytes().to_vec()
                })
            })
            .map(|bytes| vec![(location, bytes)])
            .unwrap_or_default(),
        ("github", "gist.create" | "gist.update") => view
            .request_json()
            .and_then(|b| b.get("files").and_then(Value::as_object).cloned())
            .map(|files| {
                files
                    .iter()
                    .filter_map(|(name, f)| {
                        Some((
                            format!("upload:github:gist:{name}"),
                            f.get("content")?.as_str()?.as_bytes().to_vec(),
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default(),
        _ if !view.multipart_parts.is_empty() => view
            .multipart_parts
            .iter()
            .enumerate()
            .filter(|(_, p)| p.filename.is_some())
            .map(|(i, p)| {
                (
                    format!(
                        "{location}:{}",
                        p.filename.clone().unwrap_or_else(|| format!("part{i}"))
                    ),
                    p.head.clone(),
                )
            })
            .collect(),
        _ if !view.request_body.is_empty() => vec![(location, view.request_body.to_vec())],
        _ => Vec::new(),
    }
}

/// Standard base64, line breaks allowed (GitHub wraps at 60 columns), bounded.
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    if text.len() / 4 * 3 > MAX_DECODED_BYTES {
        return None;
    }
    let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    STANDARD.decode(compact).ok()
}
