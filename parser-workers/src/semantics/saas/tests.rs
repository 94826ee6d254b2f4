//! SaaS recogniser tests on exchanges run through the real HTTP/1 parser, shaped after the
//! Slack, Jira, GitHub and S3 API references.

use super::*;
use crate::semantics::vector::tests::{exchange, request, response};

fn recognise_raw(req: &[u8], resp: &[u8]) -> Option<SaasRecognition> {
    let ex = exchange(req, resp);
    let view = HttpView::from_exchange(&ex).unwrap();
    recognise(&view)
}

fn attr<'a>(r: &'a SaasRecognition, name: &str) -> Option<&'a str> {
    r.attributes
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

#[test]
fn slack_post_message_json_and_form() {
    let r = recognise_raw(
        &request("POST", "slack.com", "/api/chat.postMessage", &[("Content-Type", "application/json; charset=utf-8"), ("Authorization", "Bearer xoxb-1")], br#"{"channel":"C123ABC456","text":"Hello world"}"#),
        &response(200, "application/json", br#"{"ok":true,"channel":"C123ABC456","ts":"1503435956.000247","message":{"text":"Hello world"}}"#),
    )
    .unwrap();
    assert_eq!(
        (r.service, r.action.as_str(), r.kind, r.category),
        ("slack", "chat.postMessage", "saas_call", "saas")
    );
    assert_eq!(r.target.as_deref(), Some("C123ABC456"));
    assert_eq!(r.error, None);
    // A stand-in host, a form body, and Slack's error answer.
    let r = recognise_raw(
        &request(
            "POST",
            "slack.example.test",
            "/api/chat.postMessage",
            &[("Content-Type", "application/x-www-form-urlencoded")],
            b"channel=%23general&text=hi+there",
        ),
        &response(
            200,
            "application/json",
            br#"{"ok":false,"error":"channel_not_found"}"#,
        ),
    )
    .unwrap();
    assert_eq!(r.target.as_deref(), Some("#general"));
    assert_eq!(r.error.as_deref(), Some("channel_not_found"));
}

#[test]
fn slack_file_upload_steps() {
    let r = recognise_raw(
        &request("POST", "slack.com", "/api/files.getUploadURLExternal", &[("Content-Type", "application/x-www-form-urlencoded")], b"filename=dump.tar.gz&length=52428"),
        &response(200, "application/json", br#"{"ok":true,"upload_url":"https://files.slack.com/upload/v1/ABC123","file_id":"F123ABC456"}"#),
    )
    .unwrap();
    assert_eq!(
        (r.action.as_str(), r.kind, attr(&r, "slack.file.name")),
        (
            "files.getUploadURLExternal",
            "saas_call",
            Some("dump.tar.gz")
        )
    );
    let r = recognise_raw(
        &request(
            "POST",
            "files.slack.com",
            "/upload/v1/ABC123",
            &[("Content-Type", "application/octet-stream")],
            b"\x1f\x8b\x08\x00data",
        ),
        &response(200, "text/plain", b"OK - 9"),
    )
    .unwrap();
    assert_eq!(
        (r.action.as_str(), r.kind),
        ("files.uploadContent", "upload")
    );
    let multipart = b"--XyZ\r\nContent-Disposition: form-data; name=\"channels\"\r\n\r\nC0123\r\n--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"notes.txt\"\r\nContent-Type: text/plain\r\n\r\nhello\r\n--XyZ--\r\n";
    let r = recognise_raw(
        &request(
            "POST",
            "slack.com",
            "/api/files.upload",
            &[("Content-Type", "multipart/form-data; boundary=XyZ")],
            multipart,
        ),
        &response(
            200,
            "application/json",
            br#"{"ok":true,"file":{"id":"F1"}}"#,
        ),
    )
    .unwrap();
    assert_eq!(
        (r.action.as_str(), r.kind, r.target.as_deref()),
        ("files.upload", "upload", Some("C0123"))
    );
    // Not Slack: an unknown method family on another host.
    assert!(
        recognise_raw(
            &request(
                "POST",
                "example.com",
                "/api/orders.create",
                &[("Content-Type", "application/json")],
                b"{}"
            ),
            &response(200, "application/json", b"{}")
        )
        .is_none()
    );
}

#[test]
fn slack_incoming_webhook() {
    let r = recognise_raw(
        &request(
            "POST",
            "hooks.slack.com",
            "/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX",
            &[("Content-Type", "application/json")],
            br#"{"text":"Build failed: see logs"}"#,
        ),
        &response(200, "text/html", b"ok"),
    )
    .unwrap();
    assert_eq!(
        (r.action.as_str(), r.target.as_deref()),
        ("webhook", Some("T00000000/B00000000"))
    );
    assert!(
        r.attributes.iter().all(|(_, v)| !v.contains("XXXXXXXX")),
        "the webhook secret is not published"
    );
    let r = recognise_raw(
        &request(
            "POST",
            "slack.example.test:8443",
            "/services/T0AAAAAAA/B0BBBBBBB/secret",
            &[("Content-Type", "application/json")],
            br#"{"text":"x"}"#,
        ),
        &response(404, "text/html", b"no_service"),
    )
    .unwrap();
    assert_eq!(
        (r.action.as_str(), r.error.as_deref()),
        ("webhook", Some("no_service"))
    );
}

#[test]
fn jira_issue_create_update_comment() {
    let body = br#"{"fields":{"project":{"key":"OPS"},"summary":"Disk full on db-1","issuetype":{"name":"Bug"},"description":"see attached"}}"#;
    let r = recognise_raw(
        &request("POST", "jira.example.test", "/rest/api/2/issue", &[("Content-Type", "application/json")], body),
        &response(201, "application/json", br#"{"id":"10000","key":"OPS-24","self":"https://jira.example.test/rest/api/2/issue/10000"}"#),
    )
    .unwrap();
    assert_eq!(
        (r.service, r.action.as_str(), r.target.as_deref()),
        ("jira", "issue.create", Some("OPS-24"))
    );
    assert_eq!(attr(&r, "jira.project.key"), Some("OPS"));
    let r = recognise_raw(
        &request(
            "PUT",
            "acme.atlassian.net",
            "/rest/api/3/issue/OPS-24",
            &[("Content-Type", "application/json")],
            br#"{"fields":{"summary":"new"}}"#,
        ),
        &response(204, "application/json", b""),
    )
    .unwrap();
    assert_eq!(
        (r.action.as_str(), r.target.as_deref()),
        ("issue.update", Some("OPS-24"))
    );
    let r = recognise_raw(
        &request(
            "POST",
            "jira.example.test",
            "/rest/api/2/issue/OPS-24/comment",
            &[("Content-Type", "application/json")],
            br#"{"body":"done"}"#,
        ),
        &response(
            400,
            "application/json",
            br#"{"errorMessages":[],"errors":{"body":"Comment body can not be empty!"}}"#,
        ),
    )
    .unwrap();
    assert_eq!(r.action, "issue.comment");
    assert_eq!(
        r.error.as_deref(),
        Some("body: Comment body can not be empty!")
    );
}

#[test]
fn github_issues_pulls_contents() {
    let gh = [
        ("Content-Type", "application/json"),
        ("Accept", "application/vnd.github+json"),
        ("X-GitHub-Api-Version", "2022-11-28"),
    ];
    let r = recognise_raw(
        &request(
            "POST",
            "api.github.com",
            "/repos/octocat/hello-world/issues",
            &gh,
            br#"{"title":"Found a bug","body":"details"}"#,
        ),
        &response(
            201,
            "application/json",
            br#"{"id":1,"number":1347,"title":"Found a bug","state":"open"}"#,
        ),
    )
    .unwrap();
    assert_eq!(
        (r.action.as_str(), r.target.as_deref()),
        ("issue.create", Some("octocat/hello-world#1347"))
    );
    let r = recognise_raw(
        &request(
            "POST",
            "github.example.test",
            "/api/v3/repos/o/r/pulls",
            &[("Content-Type", "application/json")],
            br#"{"title":"x","head":"f","base":"main"}"#,
        ),
        &response(
            422,
            "application/json",
            br#"{"message":"Validation Failed","documentation_url":"https://docs.github.com"}"#,
        ),
    )
    .unwrap();
    assert_eq!(
        (
            r.action.as_str(),
            r.error.as_deref(),
            attr(&r, "github.enterprise")
        ),
        (
            "pull_request.create",
            Some("Validation Failed"),
            Some("true")
        )
    );
    let r = recognise_raw(
        &request(
            "PUT",
            "api.github.com",
            "/repos/o/r/contents/exports/conv%20log.json",
            &gh,
            br#"{"message":"add","content":"aGVsbG8="}"#,
        ),
        &response(
            201,
            "application/json",
            br#"{"content":{"name":"conv log.json"}}"#,
        ),
    )
    .unwrap();
    assert_eq!(
        (r.action.as_str(), r.kind, r.target.as_deref()),
        ("contents.put", "upload", Some("o/r:exports/conv log.json"))
    );
    let ex = exchange(
        &request(
            "PUT",
            "api.github.com",
            "/repos/o/r/contents/exports/conv%20log.json",
            &gh,
            br#"{"message":"add","content":"aGVsbG8g\nYm9iQGV4YW1wbGUuY29t"}"#,
        ),
        &response(201, "application/json", b"{}"),
    );
    let view = HttpView::from_exchange(&ex).unwrap();
    let payloads = upload_payloads(&view, &recognise(&view).unwrap());
    assert_eq!(
        payloads,
        vec![(
            "upload:github:o/r:exports/conv log.json".to_string(),
            b"hello bob@example.com".to_vec()
        )]
    );
    let r = recognise_raw(
        &request(
            "POST",
            "api.github.com",
            "/repos/o/r/issues/5/comments",
            &gh,
            br#"{"body":"hi"}"#,
        ),
        &response(201, "application/json", br#"{"id":9}"#),
    )
    .unwrap();
    assert_eq!(
        (r.action.as_str(), r.target.as_deref()),
        ("issue.comment", Some("o/r#5"))
    );
    // Without GitHub's host, prefix or headers, /repos/... is somebody else's API.
    assert!(
        recognise_raw(
            &request(
                "POST",
                "example.com",
                "/repos/o/r/issues",
                &[("Content-Type", "application/json")],
                b"{}"
            ),
            &response(200, "application/json", b"{}")
        )
        .is_none()
    );
}

#[test]
fn s3_put_object_path_and_virtual_style() {
    let sig = [
        (
            "Authorization",
            "AWS4-HMAC-SHA256 Credential=AKIA/20260101/us-east-1/s3/aws4_request",
        ),
        ("x-amz-date", "20260101T000000Z"),
        ("x-amz-content-sha256", "UNSIGNED-PAYLOAD"),
        ("Content-Type", "application/gzip"),
    ];
    let r = recognise_raw(
        &request(
            "PUT",
            "127.0.0.1:9000",
            "/agent-dumps/2026/conv.json.gz",
            &sig,
            b"\x1f\x8b\x08\x00abc",
        ),
        &response(200, "text/plain", b""),
    )
    .unwrap();
    assert_eq!(
        (r.service, r.action.as_str(), r.kind, r.category),
        ("s3", "PutObject", "upload", "object-storage")
    );
    assert_eq!(r.target.as_deref(), Some("agent-dumps/2026/conv.json.gz"));
    assert_eq!(
        (attr(&r, "aws.s3.bucket"), attr(&r, "aws.s3.key")),
        (Some("agent-dumps"), Some("2026/conv.json.gz"))
    );
    let ex = exchange(
        &request(
            "PUT",
            "127.0.0.1:9000",
            "/b/notes.json",
            &sig,
            br#"{"n":"small json"}"#,
        ),
        &response(200, "text/plain", b""),
    );
    let view = HttpView::from_exchange(&ex).unwrap();
    let r = recognise(&view).unwrap();
    assert_eq!(
        upload_payloads(&view, &r),
        vec![(
            "upload:s3:b/notes.json".to_string(),
            br#"{"n":"small json"}"#.to_vec()
        )]
    );
    let get = exchange(
        &request("GET", "127.0.0.1:9000", "/b/notes.json", &sig, b""),
        &response(200, "application/json", b"{}"),
    );
    let view = HttpView::from_exchange(&get).unwrap();
    assert!(upload_payloads(&view, &recognise(&view).unwrap()).is_empty());
    let r = recognise_raw(
        &request(
            "GET",
            "my-bucket.s3.eu-west-1.amazonaws.com",
            "/reports/q3.pdf",
            &[],
            b"",
        ),
        &response(200, "application/pdf", b"%PDF-1.7"),
    )
    .unwrap();
    assert_eq!(
        (r.action.as_str(), r.target.as_deref(), r.kind),
        ("GetObject", Some("my-bucket/reports/q3.pdf"), "saas_call")
    );
}

#[test]
fn s3_multipart_upload_flow_and_listing_and_error() {
    let sig = [
        ("Authorization", ""),
        ("x-amz-date", "20260101T000000Z"),
        ("x-amz-content-sha256", "UNSIGNED-PAYLOAD"),
    ];
    let create = recognise_raw(
        &request("POST", "minio.internal:9000", "/backups/big.tar?uploads", &sig, b""),
        &response(200, "application/xml", br#"<?xml version="1.0" encoding="UTF-8"?><InitiateMultipartUploadResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Bucket>backups</Bucket><Key>big.tar</Key><UploadId>VXBsb2FkSUQ</UploadId></InitiateMultipartUploadResult>"#),
    )
    .unwrap();
    assert_eq!(
        (
            create.action.as_str(),
            create.kind,
            attr(&create, "aws.s3.upload_id")
        ),
        ("CreateMultipartUpload", "upload", Some("VXBsb2FkSUQ"))
    );
    let part = recognise_raw(
        &request(
            "PUT",
            "minio.internal:9000",
            "/backups/big.tar?partNumber=2&uploadId=VXBsb2FkSUQ",
            &sig,
            b"part-bytes",
        ),
        &response(200, "text/plain", b""),
    )
    .unwrap();
    assert_eq!(
        (part.action.as_str(), attr(&part, "aws.s3.part_number")),
        ("UploadPart", Some("2"))
    );
    let complete = recognise_raw(
        &request("POST", "minio.internal:9000", "/backups/big.tar?uploadId=VXBsb2FkSUQ", &sig, b"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>\"a\"</ETag></Part></CompleteMultipartUpload>"),
        &response(200, "application/xml", br#"<CompleteMultipartUploadResult><Location>http://minio/backups/big.tar</Location><Bucket>backups</Bucket><Key>big.tar</Key><ETag>"3858f62230ac3c915f300c664312c11f-2"</ETag></CompleteMultipartUploadResult>"#),
    )
    .unwrap();
    assert_eq!(
        (complete.action.as_str(), attr(&complete, "aws.s3.etag")),
        (
            "CompleteMultipartUpload",
            Some("3858f62230ac3c915f300c664312c11f-2")
        )
    );
    let list = recognise_raw(
        &request("GET", "s3.amazonaws.com", "/backups?list-type=2&prefix=2026%2F", &[], b""),
        &response(200, "application/xml", br#"<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>backups</Name><Prefix>2026/</Prefix><KeyCount>2</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated><Contents><Key>2026/a</Key><Size>1</Size></Contents><Contents><Key>2026/b</Key><Size>2</Size></Contents></ListBucketResult>"#),
    )
    .unwrap();
    assert_eq!(
        (
            list.action.as_str(),
            list.target.as_deref(),
            attr(&list, "aws.s3.key_count")
        ),
        ("ListObjectsV2", Some("backups"), Some("2"))
    );
    let err = recognise_raw(
        &request("GET", "127.0.0.1:9000", "/nope/key.txt", &sig, b""),
        &response(404, "application/xml", br#"<?xml version="1.0" encoding="UTF-8"?><Error><Code>NoSuchBucket</Code><Message>The specified bucket does not exist</Message><BucketName>nope</BucketName><Resource>/nope/key.txt</Resource><RequestId>17C4B3D2E1</RequestId></Error>"#),
    )
    .unwrap();
    assert_eq!(
        err.error.as_deref(),
        Some("NoSuchBucket: The specified bucket does not exist")
    );
}

#[test]
fn other_traffic_is_not_saas() {
    assert!(
        recognise_raw(
            &request(
                "POST",
                "api.example.com",
                "/v1/orders",
                &[("Content-Type", "application/json")],
                br#"{"a":1}"#
            ),
            &response(200, "application/json", b"{}")
        )
        .is_none()
    );
    // Bedrock signs with SigV4 too, but is not S3.
    assert!(
        recognise_raw(
            &request(
                "POST",
                "bedrock-runtime.us-east-1.amazonaws.com",
                "/model/anthropic.claude-3/converse",
                &[
                    ("Authorization", ""),
                    ("x-amz-date", "20260101T000000Z"),
                    ("Content-Type", "application/json")
                ],
                b"{}"
            ),
            &response(200, "application/json", b"{}")
        )
        .is_none()
    );
}
