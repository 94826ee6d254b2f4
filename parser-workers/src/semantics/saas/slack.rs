//! Slack: Web API methods (`POST /api/chat.postMessage`, `files.upload`,
//! `files.getUploadURLExternal`, `files.completeUploadExternal`, ...) with JSON, form or
//! multipart bodies; the upload URL step (`files.slack.com/upload/v1/...`); and incoming
//! webhooks (`/services/T.../B.../...`, `/workflows/...`). Recognised by path shape on any host.

use serde_json::Value;

use super::{KIND_SAAS_CALL, KIND_UPLOAD, SaasRecognition};
use crate::semantics::http_view::HttpView;
use crate::semantics::vector::values::{segments, url_decode};

const SERVICE: &str = "slack";
const CATEGORY: &str = "saas";
/// Method families of the Slack Web API; on hosts other than slack.com a method must belong
/// to one of them.
const FAMILIES: &[&str] = &[
    "admin",
    "apps",
    "assistant",
    "auth",
    "bookmarks",
    "bots",
    "calls",
    "canvases",
    "chat",
    "conversations",
    "dialog",
    "dnd",
    "emoji",
    "files",
    "functions",
    "im",
    "lists",
    "mpim",
    "oauth",
    "openid",
    "pins",
    "reactions",
    "reminders",
    "rtm",
    "search",
    "stars",
    "team",
    "usergroups",
    "users",
    "views",
    "workflows",
];
/// Methods that put a file into Slack.
const UPLOAD_METHODS: &[&str] = &["files.upload", "files.remote.add"];

pub(crate) fn recognise(view: &HttpView) -> Option<SaasRecognition> {
    let host = view.host_name().unwrap_or_default();
    let slack_host = host == "slack.com" || host.ends_with(".slack.com");
    let segs = segments(view.path());
    let method = view.method.to_ascii_uppercase();
    if let Some(r) = webhook(view, &host, &segs, &method) {
        return Some(r);
    }
    if host == "files.slack.com" && method == "POST" && segs.starts_with(&["upload", "v1"]) {
        let mut r = SaasRecognition::new(SERVICE, "files.uploadContent", KIND_UPLOAD, CATEGORY);
        r.error = error_text(view);
        return Some(r);
    }
    let at = segs.iter().position(|s| *s == "api")?;
    let [api_method] = &segs[at + 1..] else {
        return None;
    };
    let (family, rest) = api_method.split_once('.')?;
    if rest.is_empty() || !rest.chars().all(|c| c.is_ascii_alphanumeric() || c == '.') {
        return None;
    }
    if !slack_host && !FAMILIES.contains(&family) {
        return None;
    }
    let kind = if UPLOAD_METHODS.contains(api_method) {
        KIND_UPLOAD
    } else {
        KIND_SAAS_CALL
    };
    let mut r = SaasRecognition::new(SERVICE, *api_method, kind, CATEGORY);
    r.attr("slack.method", *api_method);
    let channel = param(view, &["channel", "channel_id", "channels"]);
    if let Some(c) = &channel {
        r.attr("slack.channel", c.clone());
    }
    if let Some(f) = param(view, &["filename"]) {
        r.attr("slack.file.name", f);
    }
    r.target = channel;
    if let Some(resp) = view.response_json() {
        if resp.get("ok") == Some(&Value::Bool(false)) {
            r.error = Some(
                resp.get("error")
                    .and_then(Value::as_str)
                    .unwrap_or("ok=false")
                    .to_string(),
            );
        }
        if r.target.is_none() {
            r.target = resp
                .get("channel")
                .and_then(Value::as_str)
                .map(str::to_string);
        }
    } else {
        r.error = error_text(view);
    }
    Some(r)
}

/// `POST hooks.slack.com/services/T0/B0/secret` (or the same path shape elsewhere). The
/// target is the workspace and hook ids, never the secret last segment.
fn webhook(view: &HttpView, host: &str, segs: &[&str], method: &str) -> Option<SaasRecognition> {
    if method != "POST" {
        return None;
    }
    let ids = match segs {
        ["services", team, hook, _secret]
            if looks_like_id(team, 'T') && looks_like_id(hook, 'B') =>
        {
            format!("{team}/{hook}")
        }
        ["services", ..] | ["workflows", ..] | ["triggers", ..] if host == "hooks.slack.com" => {
            segs.get(1).map(|s| s.to_string())?
        }
        _ => return None,
    };
    let mut r = SaasRecognition::new(SERVICE, "webhook", KIND_SAAS_CALL, CATEGORY);
    r.attr("slack.webhook", ids.clone());
    if let Some(c) = view
        .request_json()
        .as_ref()
        .and_then(|b| b.get("channel"))
        .and_then(Value::as_str)
    {
        r.attr("slack.channel", c);
    }
    r.target = Some(ids);
    r.error = error_text(view);
    Some(r)
}

fn looks_like_id(s: &str, first: char) -> bool {
    s.starts_with(first)
        && s.len() >= 5
        && s.chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

/// A plain-text error body (`invalid_payload`, `channel_not_found`) on an error status.
fn error_text(view: &HttpView) -> Option<String> {
    let status = view.status?;
    if status < 400 {
        return None;
    }
    let text = String::from_utf8_lossy(&view.response_body);
    let text = text.trim();
    Some(if text.is_empty() {
        format!("HTTP {status}")
    } else {
        text.chars().take(200).collect()
    })
}

/// A request parameter from the JSON body, a form body, a multipart field, or the query.
fn param(view: &HttpView, names: &[&str]) -> Option<String> {
    if let Some(body) = view.request_json()
        && let Some(v) = names.iter().find_map(|n| body.get(*n))
    {
        return match v {
            Value::String(s) => Some(s.clone()),
            Value::Array(items) => Some(
                items
                    .iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            _ => None,
        };
    }
    if view.request_mime().as_deref() == Some("application/x-www-form-urlencoded") {
        let body = String::from_utf8_lossy(&view.request_body);
        if let Some(v) = form_value(&body, names) {
            return Some(v);
        }
    }
    if let Some(part) = view
        .multipart_parts
        .iter()
        .find(|p| p.filename.is_none() && p.name.as_deref().is_some_and(|n| names.contains(&n)))
    {
        return Some(String::from_utf8_lossy(&part.head).into_owned());
    }
    let query = view.target.split_once('?').map(|(_, q)| q)?;
    form_value(query, names)
}

fn form_value(form: &str, names: &[&str]) -> Option<String> {
    form.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        names
            .contains(&url_decode(k).as_str())
            .then(|| url_decode(v))
    })
}
