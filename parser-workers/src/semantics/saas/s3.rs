//! S3 and S3-compatible object stores (MinIO, R2, GCS XML API, Spaces, ...): PutObject,
//! multipart upload (Create, UploadPart, Complete, Abort), GetObject, HeadObject, ListObjects
//! (v1, v2), DeleteObject(s), CopyObject, bucket calls. Recognised by shape: S3 hosts, the
//! `x-amz-content-sha256` header, SigV4 headers (the Authorization value is redacted but its
//! name is there), presigned query strings, S3 query sub-resources and S3 XML bodies.
//! Path-style (`host/bucket/key`) and virtual-hosted-style (`bucket.s3.region.amazonaws.com/key`).

use super::s3_xml::{S3Xml, parse_s3_xml};
use super::{KIND_SAAS_CALL, KIND_UPLOAD, SaasRecognition};
use crate::semantics::http_view::HttpView;
use crate::semantics::vector::values::{path_decode, url_decode};

const SERVICE: &str = "s3";
const CATEGORY: &str = "object-storage";
/// XML roots only S3 answers with.
const S3_ROOTS: &[&str] = &[
    "ListBucketResult",
    "ListAllMyBucketsResult",
    "InitiateMultipartUploadResult",
    "CompleteMultipartUploadResult",
    "CopyObjectResult",
    "CopyPartResult",
    "DeleteResult",
    "ListMultipartUploadsResult",
    "ListPartsResult",
    "ListVersionsResult",
    "LocationConstraint",
];
/// Bucket/object sub-resources named in the query string, as the action suffix.
const SUBRESOURCES: &[(&str, &str)] = &[
    ("acl", "Acl"),
    ("tagging", "Tagging"),
    ("policy", "Policy"),
    ("cors", "Cors"),
    ("lifecycle", "LifecycleConfiguration"),
    ("versioning", "Versioning"),
    ("encryption", "Encryption"),
    ("website", "Website"),
    ("notification", "NotificationConfiguration"),
    ("replication", "Replication"),
    ("ownershipControls", "OwnershipControls"),
    ("publicAccessBlock", "PublicAccessBlock"),
    ("logging", "Logging"),
    ("location", "Location"),
    ("retention", "Retention"),
    ("legal-hold", "LegalHold"),
    ("object-lock", "ObjectLockConfiguration"),
    ("attributes", "Attributes"),
];

pub(crate) fn recognise(view: &HttpView) -> Option<SaasRecognition> {
    let host = view.host_name().unwrap_or_default();
    if view.request_header("x-amz-target").is_some() || is_other_aws_service(&host) {
        return None;
    }
    let response_xml = is_xml(view)
        .then(|| parse_s3_xml(&view.response_body))
        .flatten();
    let known_host = s3_host(&host);
    let sigv4 = view.request_header("authorization").is_some()
        && view.request_headers.iter().any(|(n, _)| {
            n.len() > 6 && n.get(..6).is_some_and(|p| p.eq_ignore_ascii_case("x-amz-"))
        });
    let shaped = known_host
        || view.request_header("x-amz-content-sha256").is_some()
        || sigv4
        || view.query_param("X-Amz-Algorithm").is_some()
        || (view.query_param("AWSAccessKeyId").is_some()
            && view.query_param("Signature").is_some())
        || response_xml
            .as_ref()
            .is_some_and(|x| S3_ROOTS.contains(&x.root.as_str()))
        || (view.response_header("x-amz-id-2").is_some()
            && view.response_header("x-amz-request-id").is_some());
    if !shaped || view.method.is_empty() {
        return None;
    }
    let (bucket, key) = bucket_and_key(&host, view.path());
    let action = action(view, bucket.is_some(), key.is_some());
    let kind = match action.as_str() {
        "PutObject"
        | "PostObject"
        | "UploadPart"
        | "CreateMultipartUpload"
        | "CompleteMultipartUpload" => KIND_UPLOAD,
        _ => KIND_SAAS_CALL,
    };
    let mut r = SaasRecognition::new(SERVICE, action, kind, CATEGORY);
    r.attr("rpc.system", "aws-api");
    r.attr("rpc.service", "S3");
    r.attr("rpc.method", r.action.clone());
    let xml_bucket = response_xml
        .as_ref()
        .and_then(|x| x.bucket.clone())
        .filter(|_| bucket.is_none());
    let bucket = bucket.or(xml_bucket);
    let key = key.or_else(|| response_xml.as_ref().and_then(|x| x.key.clone()));
    if let Some(b) = &bucket {
        r.attr("aws.s3.bucket", b.clone());
    }
    if let Some(k) = &key {
        r.attr("aws.s3.key", k.clone());
    }
    let upload_id = view
        .query_param("uploadId")
        .map(url_decode)
        .or_else(|| response_xml.as_ref().and_then(|x| x.upload_id.clone()));
    if let Some(u) = upload_id {
        r.attr("aws.s3.upload_id", u);
    }
    if let Some(p) = view.query_param("partNumber") {
        r.attr("aws.s3.part_number", url_decode(p));
    }
    if let Some(c) = view.request_header("x-amz-copy-source") {
        r.attr("aws.s3.copy_source", url_decode(c));
    }
    if let Some(id) = view.response_header("x-amz-request-id") {
        r.attr("aws.request_id", id);
    }
    if let Some(x) = &response_xml {
        describe_listing(&mut r, x);
    }
    r.target = match (bucket, key) {
        (Some(b), Some(k)) => Some(format!("{b}/{k}")),
        (Some(b), None) => Some(b),
        (None, _) => None,
    };
    r.error = match response_xml.as_ref().filter(|x| x.root == "Error") {
        Some(x) => Some(match (&x.code, &x.message) {
            (Some(c), Some(m)) => format!("{c}: {m}"),
            (Some(c), None) => c.clone(),
            (None, Some(m)) => m.clone(),
            (None, None) => "Error".to_string(),
        }),
        None => view
            .status
            .filter(|s| *s >= 400)
            .map(|s| format!("HTTP {s}")),
    };
    Some(r)
}

fn describe_listing(r: &mut SaasRecognition, x: &S3Xml) {
    match x.root.as_str() {
        "ListBucketResult" | "ListVersionsResult" => {
            r.attr(
                "aws.s3.key_count",
                x.key_count.unwrap_or(x.contents as i64).to_string(),
            );
            if let Some(p) = &x.prefix {
                r.attr("aws.s3.prefix", p.clone());
            }
            if let Some(t) = x.is_truncated {
                r.attr("aws.s3.is_truncated", t.to_string());
            }
        }
        "ListAllMyBucketsResult" => r.attr("aws.s3.bucket_count", x.buckets.to_string()),
        "DeleteResult" => {
            r.attr("aws.s3.deleted_count", x.deleted.to_string());
            r.attr("aws.s3.delete_error_count", x.delete_errors.to_string());
        }
        "CompleteMultipartUploadResult" | "CopyObjectResult" => {
            if let Some(e) = &x.etag {
                r.attr("aws.s3.etag", e.trim_matches('"').to_string());
            }
        }
        _ => {}
    }
}

fn is_xml(view: &HttpView) -> bool {
    view.response_mime().is_some_and(|m| m.ends_with("xml"))
        || view.response_body.trim_ascii_start().starts_with(b"<?xml")
        || view.response_body.trim_ascii_start().starts_with(b"<")
}

/// The S3 operation from method, query sub-resources and whether a bucket/key is addressed.
fn action(view: &HttpView, has_bucket: bool, has_key: bool) -> String {
    let method = view.method.to_ascii_uppercase();
    let q = |n: &str| view.query_param(n).is_some();
    let sub = SUBRESOURCES
        .iter()
        .find(|(p, _)| q(p))
        .map(|(_, name)| *name);
    let on = if has_key { "Object" } else { "Bucket" };
    let named = |verb: &str| sub.map(|s| format!("{verb}{on}{s}"));
    match method.as_str() {
        "PUT" => {
            if q("uploadId") && q("partNumber") {
                if view.request_header("x-amz-copy-source").is_some() {
                    "UploadPartCopy".into()
                } else {
                    "UploadPart".into()
                }
            } else if let Some(n) = named("Put") {
                n
            } else if has_key {
                if view.request_header("x-amz-copy-source").is_some() {
                    "CopyObject".into()
                } else {
                    "PutObject".into()
                }
            } else {
                "CreateBucket".into()
            }
        }
        "POST" => {
            if q("uploads") {
                "CreateMultipartUpload".into()
            } else if q("uploadId") {
                "CompleteMultipartUpload".into()
            } else if q("delete") {
                "DeleteObjects".into()
            } else if q("restore") {
                "RestoreObject".into()
            } else if q("select") {
                "SelectObjectContent".into()
            } else {
                "PostObject".into()
            }
        }
        "GET" => {
            if !has_bucket {
                "ListBuckets".into()
            } else if has_key && q("uploadId") {
                "ListParts".into()
            } else if let Some(n) = named("Get") {
                n
            } else if has_key {
                "GetObject".into()
            } else if q("uploads") {
                "ListMultipartUploads".into()
            } else if q("versions") {
                "ListObjectVersions".into()
            } else if view.query_param("list-type") == Some("2") {
                "ListObjectsV2".into()
            } else {
                "ListObjects".into()
            }
        }
        "HEAD" => {
            if has_key {
                "HeadObject".into()
            } else {
                "HeadBucket".into()
            }
        }
        "DELETE" => {
            if has_key && q("uploadId") {
                "AbortMultipartUpload".into()
            } else if let Some(n) = named("Delete") {
                n
            } else if has_key {
                "DeleteObject".into()
            } else {
                "DeleteBucket".into()
            }
        }
        other => other.to_string(),
    }
}

/// Bucket and key, virtual-hosted when the host names the bucket, else path-style.
fn bucket_and_key(host: &str, path: &str) -> (Option<String>, Option<String>) {
    let path = path.trim_start_matches('/');
    let nonempty = |s: &str| Some(path_decode(s)).filter(|s| !s.is_empty());
    match virtual_bucket(host) {
        Some(bucket) => (Some(bucket), nonempty(path)),
        None => match path.split_once('/') {
            Some((b, k)) => (nonempty(b), nonempty(k)),
            None => (nonempty(path), None),
        },
    }
}

/// `bucket.s3.amazonaws.com`, `bucket.s3.eu-west-1.amazonaws.com`, `bucket.s3-eu-west-1...`,
/// `bucket.storage.googleapis.com`, `bucket.region.digitaloceanspaces.com`, ...
fn virtual_bucket(host: &str) -> Option<String> {
    for marker in [".s3.", ".s3-"] {
        if let Some(at) = host.find(marker)
            && (host.ends_with(".amazonaws.com") || host.contains(".s3."))
        {
            return Some(host[..at].to_string()).filter(|b| !b.is_empty());
        }
    }
    for suffix in [
        ".storage.googleapis.com",
        ".digitaloceanspaces.com",
        ".linodeobjects.com",
        ".wasabisys.com",
    ] {
        if let Some(prefix) = host.strip_suffix(suffix) {
            // `bucket.region.digitaloceanspaces.com`: the bucket is the first label when there
            // are two; `region.digitaloceanspaces.com` alone is path-style.
            let labels: Vec<&str> = prefix.split('.').collect();
            let wanted = if suffix == ".storage.googleapis.com" {
                1
            } else {
                2
            };
            if labels.len() >= wanted {
                return Some(labels[..labels.len() + 1 - wanted].join("."));
            }
        }
    }
    None
}

fn s3_host(host: &str) -> bool {
    host == "s3.amazonaws.com"
        || (host.ends_with(".amazonaws.com")
            && (host.starts_with("s3.")
                || host.starts_with("s3-")
                || host.contains(".s3.")
                || host.contains(".s3-")))
        || host == "storage.googleapis.com"
        || host.ends_with(".storage.googleapis.com")
        || host.ends_with(".r2.cloudflarestorage.com")
        || host.ends_with(".digitaloceanspaces.com")
        || host.ends_with(".backblazeb2.com")
        || host.ends_with(".linodeobjects.com")
        || host.ends_with(".wasabisys.com")
}

/// Other AWS endpoints also sign with SigV4 and send `x-amz-*` headers.
fn is_other_aws_service(host: &str) -> bool {
    host.ends_with(".amazonaws.com") && !s3_host(host)
}
