//! GitHub REST: issues, comments, pull requests, reviews, repository contents, gists, blobs
//! and release assets, on api.github.com / uploads.github.com, GitHub Enterprise (`/api/v3`)
//! or any host whose request carries GitHub's API headers.

use serde_json::Value;

use super::{KIND_SAAS_CALL, KIND_UPLOAD, SaasRecognition};
use crate::semantics::http_view::HttpView;
use crate::semantics::vector::values::{path_decode, segments};

const SERVICE: &str = "github";
const CATEGORY: &str = "saas";

pub(crate) fn recognise(view: &HttpView) -> Option<SaasRecognition> {
    let host = view.host_name().unwrap_or_default();
    let mut segs = segments(view.path());
    let ghe = segs.starts_with(&["api", "v3"]);
    if ghe {
        segs.drain(..2);
    }
    let github_headers = view.request_header("x-github-api-version").is_some()
        || view
            .request_header("accept")
            .is_some_and(|a| a.contains("application/vnd.github"));
    if !(ghe || github_headers || host == "api.github.com" || host == "uploads.github.com") {
        return None;
    }
    let method = view.method.to_ascii_uppercase();
    let (action, kind, target) = match (method.as_str(), segs.as_slice()) {
        ("POST", ["repos", o, r, "issues"]) => ("issue.create", KIND_SAAS_CALL, repo(o, r)),
        ("PATCH", ["repos", o, r, "issues", n]) => (
            "issue.update",
            KIND_SAAS_CALL,
            format!("{}#{n}", repo(o, r)),
        ),
        ("GET", ["repos", o, r, "issues", n]) => {
            ("issue.get", KIND_SAAS_CALL, format!("{}#{n}", repo(o, r)))
        }
        ("POST", ["repos", o, r, "issues", n, "comments"]) => (
            "issue.comment",
            KIND_SAAS_CALL,
            format!("{}#{n}", repo(o, r)),
        ),
        ("PATCH", ["repos", o, r, "issues", "comments", _]) => {
            ("issue.comment.update", KIND_SAAS_CALL, repo(o, r))
        }
        ("POST", ["repos", o, r, "pulls"]) => ("pull_request.create", KIND_SAAS_CALL, repo(o, r)),
        ("PATCH", ["repos", o, r, "pulls", n]) => (
            "pull_request.update",
            KIND_SAAS_CALL,
            format!("{}#{n}", repo(o, r)),
        ),
        ("PUT", ["repos", o, r, "pulls", n, "merge"]) => (
            "pull_request.merge",
            KIND_SAAS_CALL,
            format!("{}#{n}", repo(o, r)),
        ),
        ("POST", ["repos", o, r, "pulls", n, "reviews"]) => (
            "pull_request.review",
            KIND_SAAS_CALL,
            format!("{}#{n}", repo(o, r)),
        ),
        ("POST", ["repos", o, r, "pulls", n, "comments"]) => (
            "pull_request.comment",
            KIND_SAAS_CALL,
            format!("{}#{n}", repo(o, r)),
        ),
        ("PUT", ["repos", o, r, "contents", path @ ..]) if !path.is_empty() => (
            "contents.put",
            KIND_UPLOAD,
            format!("{}:{}", repo(o, r), decode_path(path)),
        ),
        ("DELETE", ["repos", o, r, "contents", path @ ..]) if !path.is_empty() => (
            "contents.delete",
            KIND_SAAS_CALL,
            format!("{}:{}", repo(o, r), decode_path(path)),
        ),
        ("GET", ["repos", o, r, "contents", path @ ..]) => (
            "contents.get",
            KIND_SAAS_CALL,
            format!("{}:{}", repo(o, r), decode_path(path)),
        ),
        ("POST", ["repos", o, r, "git", "blobs"]) => ("git.blob.create", KIND_UPLOAD, repo(o, r)),
        ("POST", ["repos", o, r, "releases", _, "assets"]) => {
            ("release.asset.upload", KIND_UPLOAD, repo(o, r))
        }
        ("POST", ["repos", o, r, "releases"]) => ("release.create", KIND_SAAS_CALL, repo(o, r)),
        ("POST", ["repos", o, r, "forks"]) => ("repo.fork", KIND_SAAS_CALL, repo(o, r)),
        ("POST", ["user", "repos"]) | ("POST", ["orgs", _, "repos"]) => {
            ("repo.create", KIND_SAAS_CALL, String::new())
        }
        ("POST", ["gists"]) => ("gist.create", KIND_UPLOAD, String::new()),
        ("PATCH", ["gists", id]) => ("gist.update", KIND_UPLOAD, format!("gist:{id}")),
        _ => return None,
    };
    let mut r = SaasRecognition::new(SERVICE, action, kind, CATEGORY);
    if let ["repos", o, r_name, ..] = segs.as_slice() {
        r.attr("github.repository", repo(o, r_name));
    }
    if ghe {
        r.attr("github.enterprise", "true");
    }
    let response = view.response_json();
    let number = response
        .as_ref()
        .and_then(|b| b.get("number"))
        .and_then(Value::as_i64);
    r.target = match (target.is_empty(), number) {
        (true, _) => response
            .as_ref()
            .and_then(|b| b.get("html_url").or_else(|| b.get("id")))
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string)),
        (false, Some(n)) if !target.contains('#') && action.ends_with(".create") => {
            Some(format!("{target}#{n}"))
        }
        (false, _) => Some(target),
    };
    if view.status.is_some_and(|s| s >= 400) {
        let message = response
            .as_ref()
            .and_then(|b| b.get("message"))
            .and_then(Value::as_str);
        r.error = Some(message.map_or_else(
            || format!("HTTP {}", view.status.unwrap_or(0)),
            str::to_string,
        ));
    }
    Some(r)
}

fn repo(owner: &str, name: &str) -> String {
    format!("{}/{}", path_decode(owner), path_decode(name))
}

fn decode_path(path: &[&str]) -> String {
    path.iter()
        .map(|p| path_decode(p))
        .collect::<Vec<_>>()
        .join("/")
}
