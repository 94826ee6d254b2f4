//! Jira: `/rest/api/{2,3,latest}/issue` create, `PUT .../issue/{key}` update, comments,
//! transitions, attachments, search and deletes. Recognised by path on any host.

use serde_json::Value;

use super::{KIND_SAAS_CALL, KIND_UPLOAD, SaasRecognition};
use crate::semantics::http_view::HttpView;
use crate::semantics::vector::values::{path_decode, segments};

const SERVICE: &str = "jira";
const CATEGORY: &str = "saas";

pub(crate) fn recognise(view: &HttpView) -> Option<SaasRecognition> {
    let segs = segments(view.path());
    let at = segs.windows(2).position(|w| w == ["rest", "api"])?;
    let version = segs.get(at + 2)?;
    if !(*version == "latest" || version.parse::<u8>().is_ok()) {
        return None;
    }
    let method = view.method.to_ascii_uppercase();
    let rest = &segs[at + 3..];
    let (action, kind) = match (method.as_str(), rest) {
        ("POST", ["issue"]) => ("issue.create", KIND_SAAS_CALL),
        ("POST", ["issue", "bulk"]) => ("issue.create_bulk", KIND_SAAS_CALL),
        ("GET", ["issue", _]) => ("issue.get", KIND_SAAS_CALL),
        ("PUT", ["issue", _]) => ("issue.update", KIND_SAAS_CALL),
        ("DELETE", ["issue", _]) => ("issue.delete", KIND_SAAS_CALL),
        ("POST", ["issue", _, "comment"]) => ("issue.comment", KIND_SAAS_CALL),
        ("GET", ["issue", _, "comment"]) => ("issue.comments", KIND_SAAS_CALL),
        ("PUT", ["issue", _, "comment", _]) => ("issue.comment.update", KIND_SAAS_CALL),
        ("DELETE", ["issue", _, "comment", _]) => ("issue.comment.delete", KIND_SAAS_CALL),
        ("POST", ["issue", _, "transitions"]) => ("issue.transition", KIND_SAAS_CALL),
        ("POST", ["issue", _, "attachments"]) => ("issue.attachment", KIND_UPLOAD),
        ("POST", ["issue", _, "remotelink"]) => ("issue.remotelink", KIND_SAAS_CALL),
        ("GET" | "POST", ["search", ..]) => ("search", KIND_SAAS_CALL),
        ("POST", ["project"]) => ("project.create", KIND_SAAS_CALL),
        _ => return None,
    };
    let mut r = SaasRecognition::new(SERVICE, action, kind, CATEGORY);
    let request = view.request_json();
    let response = view.response_json();
    let issue_key = match rest {
        ["issue", key, ..] if *key != "bulk" => Some(path_decode(key)),
        _ => response
            .as_ref()
            .and_then(|b| b.get("key"))
            .and_then(Value::as_str)
            .map(str::to_string),
    };
    let project = request
        .as_ref()
        .and_then(|b| b.pointer("/fields/project"))
        .and_then(|p| p.get("key").or_else(|| p.get("id")))
        .and_then(|k| {
            k.as_str()
                .map(str::to_string)
                .or_else(|| k.as_i64().map(|n| n.to_string()))
        })
        .or_else(|| {
            issue_key
                .as_deref()
                .and_then(|k| k.split_once('-'))
                .map(|(p, _)| p.to_string())
        });
    if let Some(k) = &issue_key {
        r.attr("jira.issue.key", k.clone());
    }
    if let Some(p) = &project {
        r.attr("jira.project.key", p.clone());
    }
    r.target = issue_key.or(project);
    if view.status.is_some_and(|s| s >= 400) {
        r.error = Some(
            error_of(response.as_ref())
                .unwrap_or_else(|| format!("HTTP {}", view.status.unwrap_or(0))),
        );
    }
    Some(r)
}

/// `{"errorMessages": [...], "errors": {"field": "message"}}`.
fn error_of(body: Option<&Value>) -> Option<String> {
    let body = body?;
    let mut parts: Vec<String> = body
        .get("errorMessages")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    if let Some(errors) = body.get("errors").and_then(Value::as_object) {
        parts.extend(
            errors
                .iter()
                .map(|(k, v)| format!("{k}: {}", v.as_str().unwrap_or(""))),
        );
    }
    (!parts.is_empty()).then(|| parts.join("; "))
}
