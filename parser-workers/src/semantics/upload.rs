//! Generic uploads: a multipart/form-data request with a file part, a PUT/POST/PATCH whose
//! body is an archive (gzip, zip, tar, 7z, bzip2, xz, zstd, rar: by magic bytes first, then by
//! content type), or a large non-JSON body. Also the bytes the detectors should look into
//! (they open gzip/zip/tar themselves).

use chainwatch_schemas::Upload;

use super::http_view::HttpView;

/// A non-JSON request body at least this large is an upload even without a file name.
pub const LARGE_BODY_BYTES: u64 = 64 * 1024;

/// Archive formats by magic bytes: (format, offset, magic).
const MAGIC: &[(&str, usize, &[u8])] = &[
    ("gzip", 0, &[0x1f, 0x8b]),
    ("zip", 0, b"PK\x03\x04"),
    ("zip", 0, b"PK\x05\x06"),
    ("zip", 0, b"PK\x07\x08"),
    ("7z", 0, &[0x37, 0x7a, 0xbc, 0xaf, 0x27, 0x1c]),
    ("bzip2", 0, b"BZh"),
    ("xz", 0, &[0xfd, b'7', b'z', b'X', b'Z', 0x00]),
    ("zstd", 0, &[0x28, 0xb5, 0x2f, 0xfd]),
    ("rar", 0, b"Rar!\x1a\x07"),
    ("tar", 257, b"ustar"),
];

/// Archive formats by content type (lower-case, no parameters).
const ARCHIVE_TYPES: &[(&str, &str)] = &[
    ("application/gzip", "gzip"),
    ("application/x-gzip", "gzip"),
    ("application/zip", "zip"),
    ("application/x-zip-compressed", "zip"),
    ("application/x-tar", "tar"),
    ("application/x-gtar", "tar"),
    ("application/x-7z-compressed", "7z"),
    ("application/x-bzip2", "bzip2"),
    ("application/x-xz", "xz"),
    ("application/zstd", "zstd"),
    ("application/vnd.rar", "rar"),
    ("application/x-rar-compressed", "rar"),
];

/// The archive format of `bytes` by magic number.
pub fn archive_format(bytes: &[u8]) -> Option<&'static str> {
    MAGIC
        .iter()
        .find(|(_, offset, magic)| bytes.get(*offset..offset + magic.len()) == Some(*magic))
        .map(|(format, _, _)| *format)
}

/// The archive format a content type names.
pub fn archive_format_of_type(content_type: &str) -> Option<&'static str> {
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    ARCHIVE_TYPES
        .iter()
        .find(|(t, _)| *t == mime)
        .map(|(_, f)| *f)
}

/// The upload an exchange makes, or `None`. Multipart: the first file part's name and type,
/// and the size of all file parts together. Whole bodies: an archive (magic or type) or a
/// non-JSON body of at least [`LARGE_BODY_BYTES`].
pub fn recognise(view: &HttpView) -> Option<Upload> {
    if view.grpc.is_some()
        || !matches!(
            view.method.to_ascii_uppercase().as_str(),
            "POST" | "PUT" | "PATCH"
        )
    {
        return None;
    }
    let files: Vec<_> = view
        .multipart_parts
        .iter()
        .filter(|p| p.filename.is_some())
        .collect();
    if let Some(first) = files.first() {
        return Some(Upload {
            content_type: first.content_type.clone(),
            filename: first.filename.clone(),
            bytes: files
                .iter()
                .map(|p| i64::try_from(p.size).unwrap_or(i64::MAX))
                .fold(0i64, i64::saturating_add),
            archive_format: archive_format(&first.head)
                .or_else(|| {
                    first
                        .content_type
                        .as_deref()
                        .and_then(archive_format_of_type)
                })
                .map(str::to_string),
        });
    }
    if !view.multipart_parts.is_empty() {
        return None;
    }
    let archive = archive_format(&view.request_body).or_else(|| {
        view.request_header("content-type")
            .and_then(archive_format_of_type)
    });
    let size = body_size(view);
    let json = view.request_mime().is_some_and(|m| m.contains("json"))
        || matches!(
            view.request_body.trim_ascii_start().first(),
            Some(b'{' | b'[')
        );
    if archive.is_none() && (json || size < LARGE_BODY_BYTES) {
        return None;
    }
    Some(describe_body(view, archive))
}

/// The request body as an upload, whatever its size or type: for actions already known to
/// write a file or object (S3 PutObject, GitHub contents), so they carry an `Upload` too.
pub fn describe_request_body(view: &HttpView) -> Option<Upload> {
    if let Some(u) = recognise(view) {
        return Some(u);
    }
    (body_size(view) > 0).then(|| {
        let archive = archive_format(&view.request_body).or_else(|| {
            view.request_header("content-type")
                .and_then(archive_format_of_type)
        });
        describe_body(view, archive)
    })
}

fn describe_body(view: &HttpView, archive: Option<&'static str>) -> Upload {
    Upload {
        content_type: view.request_header("content-type").map(str::to_string),
        filename: body_filename(view),
        bytes: i64::try_from(body_size(view)).unwrap_or(i64::MAX),
        archive_format: archive.map(str::to_string),
    }
}

/// Bytes sent: the wire size, or what was kept when that is larger (decoded bodies).
fn body_size(view: &HttpView) -> u64 {
    view.request_wire_bytes.max(view.request_body.len() as u64)
}

/// `Content-Disposition: ...; filename="x"`, a `name`/`filename` query parameter (GitHub
/// release assets, Slack), or the last path segment when it has an extension.
fn body_filename(view: &HttpView) -> Option<String> {
    if let Some(name) = view
        .request_header("content-disposition")
        .and_then(disposition_filename)
    {
        return Some(name);
    }
    if let Some(q) = view
        .query_param("filename")
        .or_else(|| view.query_param("name"))
    {
        return Some(crate::semantics::vector::values::url_decode(q)).filter(|n| !n.is_empty());
    }
    let last = view.path().rsplit('/').next().unwrap_or("");
    (last.contains('.') && last.len() > 1)
        .then(|| crate::semantics::vector::values::path_decode(last))
}

fn disposition_filename(value: &str) -> Option<String> {
    value.split(';').map(str::trim).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("filename")
            .then(|| v.trim().trim_matches('"').to_string())
    })
}

/// What the detectors should read of an upload: each file part of a multipart body, or the
/// whole request body when it is an upload. Location `upload:<filename>` (or `upload:body`,
/// `upload:part<n>`); archives are opened by the detectors.
pub fn payloads<'v>(view: &'v HttpView) -> Vec<(String, &'v [u8], Option<String>)> {
    let Some(_) = recognise(view) else {
        return Vec::new();
    };
    let files: Vec<(String, &[u8], Option<String>)> = view
        .multipart_parts
        .iter()
        .enumerate()
        .filter(|(_, p)| p.filename.is_some())
        .map(|(i, p)| {
            let name = p.filename.clone().filter(|n| !n.is_empty());
            let location = format!(
                "upload:{}",
                name.clone().unwrap_or_else(|| format!("part{i}"))
            );
            (location, p.head.as_slice(), name)
        })
        .collect();
    if !files.is_empty() {
        return files;
    }
    let name = body_filename(view);
    let location = format!(
        "upload:{}",
        name.clone().unwrap_or_else(|| "body".to_string())
    );
    vec![(location, &view.request_body[..], name)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic_bytes() {
        assert_eq!(archive_format(&[0x1f, 0x8b, 8, 0]), Some("gzip"));
        assert_eq!(archive_format(b"PK\x03\x04rest"), Some("zip"));
        let mut tar = vec![0u8; 512];
        tar[257..262].copy_from_slice(b"ustar");
        assert_eq!(archive_format(&tar), Some("tar"));
        assert_eq!(archive_format(b"{\"a\":1}"), None);
        assert_eq!(archive_format(b""), None);
        assert_eq!(
            archive_format_of_type("application/x-gzip; charset=binary"),
            Some("gzip")
        );
        assert_eq!(
            disposition_filename("attachment; filename=\"a b.zip\""),
            Some("a b.zip".into())
        );
    }
}
