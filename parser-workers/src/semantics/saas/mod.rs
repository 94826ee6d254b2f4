//! SaaS actions and data sinks: Slack (Web API methods, file uploads, incoming webhooks), Jira
//! (issues, comments), GitHub (issues, pull requests, contents) and S3 or S3-compatible object
//! stores. Recognised by path and body shape so stand-ins on any host are seen; known hosts only
//! add confidence.

mod github;
mod jira;
mod payloads;
mod s3;
mod s3_xml;
mod slack;

use super::http_view::HttpView;

pub use payloads::upload_payloads;
pub use s3_xml::{S3Xml, parse_s3_xml};

/// A recognised SaaS action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaasRecognition {
    /// `slack`, `jira`, `github`, `s3`.
    pub service: &'static str,
    /// The action in the vendor's words: `chat.postMessage`, `files.upload`, `webhook`,
    /// `issue.create`, `issue.update`, `issue.comment`, `pull_request.create`, `contents.put`,
    /// `PutObject`, `CreateMultipartUpload`, `UploadPart`, `CompleteMultipartUpload`,
    /// `GetObject`, `ListObjectsV2`, ...
    pub action: String,
    /// `upload` when data is written out as a file or object (object puts, multipart upload
    /// steps, file uploads, repository contents), else `saas_call`.
    pub kind: &'static str,
    /// `saas` or `object-storage`.
    pub category: &'static str,
    /// What the action is about: a channel, an issue key or project, `owner/repo#12`,
    /// `owner/repo:path`, `bucket/key`.
    pub target: Option<String>,
    /// Vendor attributes (`aws.s3.bucket`, `aws.s3.key`, `slack.channel`, `github.repository`,
    /// `jira.issue.key`, ...).
    pub attributes: Vec<(String, String)>,
    /// The service's own error: S3 XML `Code: Message`, Slack `{"ok":false,"error":...}`,
    /// Jira `errorMessages`, GitHub `message` on an error status.
    pub error: Option<String>,
}

impl SaasRecognition {
    pub(crate) fn new(
        service: &'static str,
        action: impl Into<String>,
        kind: &'static str,
        category: &'static str,
    ) -> Self {
        Self {
            service,
            action: action.into(),
            kind,
            category,
            target: None,
            attributes: Vec::new(),
            error: None,
        }
    }

    pub(crate) fn attr(&mut self, name: &str, value: impl Into<String>) {
        self.attributes.push((name.to_string(), value.into()));
    }
}

/// Kind of an action that carries data out as a file or object.
pub const KIND_UPLOAD: &str = "upload";
/// Kind of any other SaaS action.
pub const KIND_SAAS_CALL: &str = "saas_call";

/// The SaaS action an HTTP exchange performs, or `None`.
pub fn recognise(view: &HttpView) -> Option<SaasRecognition> {
    if view.grpc.is_some() {
        return None;
    }
    slack::recognise(view)
        .or_else(|| jira::recognise(view))
        .or_else(|| github::recognise(view))
        .or_else(|| s3::recognise(view))
}

#[cfg(test)]
mod tests;
