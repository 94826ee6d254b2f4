//! The destination category of an exchange: llm, vectordb, database, saas, object-storage,
//! internal or unknown-external.
//!
//! Rule, in order:
//! 1. What the exchange was recognised as decides: an LLM call is `llm`, a vector operation
//!    `vectordb`, SQL `database`, a SaaS action its own category (`saas` or `object-storage`).
//! 2. Else a known public host (a small table of LLM, vector, SaaS, object-storage and
//!    database services) decides.
//! 3. Else the host NAME decides when there is one (`Host`, `:authority` or SNI): names under
//!    an internal suffix (`.internal`, `.svc`, `.cluster.local`, `.local`, `.localhost`,
//!    `.test`, ... configurable) and bare names without a dot (`redis`, `localhost`) are
//!    `internal`; any other name is public-looking and `unknown-external`. The IP address is
//!    NOT consulted then: test stand-ins for public services (`personal-pastebin.com`) run on
//!    127.0.0.1, and a proxy or sidecar may sit on a private address in front of a public
//!    destination, so the name the agent asked for is the better witness.
//! 4. Only without a host name (or when the name is an IP literal) the IP decides: loopback,
//!    private (RFC 1918, RFC 4193), link-local, CGNAT and unspecified addresses are
//!    `internal`, the rest `unknown-external`. Nothing at all: `unknown-external`.

use std::net::IpAddr;

use super::http_view::host_without_port;

pub const LLM: &str = "llm";
pub const VECTORDB: &str = "vectordb";
pub const DATABASE: &str = "database";
pub const SAAS: &str = "saas";
pub const OBJECT_STORAGE: &str = "object-storage";
pub const INTERNAL: &str = "internal";
pub const UNKNOWN_EXTERNAL: &str = "unknown-external";

/// Internal name suffixes used by [`category`].
pub const DEFAULT_INTERNAL_SUFFIXES: &[&str] = &[
    ".internal",
    ".svc",
    ".cluster.local",
    ".local",
    ".localhost",
    ".localdomain",
    ".test",
    ".example",
    ".invalid",
    ".lan",
    ".home.arpa",
    ".corp",
    ".intranet",
];

/// What the semantics layer recognised in the exchange (the first that applies).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Recognised {
    Llm,
    Vector,
    Sql,
    /// A SaaS action with its category (`saas` or `object-storage`).
    Saas(&'static str),
    /// An upload or plain traffic: the host decides.
    #[default]
    Nothing,
}

/// Known public hosts: (suffix or exact name, category). A suffix starts with a dot.
const KNOWN_HOSTS: &[(&str, &str)] = &[
    ("api.openai.com", LLM),
    (".openai.azure.com", LLM),
    ("api.anthropic.com", LLM),
    ("generativelanguage.googleapis.com", LLM),
    ("aiplatform.googleapis.com", LLM),
    (".aiplatform.googleapis.com", LLM),
    ("api.mistral.ai", LLM),
    ("api.cohere.ai", LLM),
    ("api.cohere.com", LLM),
    ("api.groq.com", LLM),
    ("openrouter.ai", LLM),
    ("api.together.xyz", LLM),
    ("api.deepseek.com", LLM),
    ("api.x.ai", LLM),
    ("api.perplexity.ai", LLM),
    ("api.fireworks.ai", LLM),
    ("api-inference.huggingface.co", LLM),
    (".pinecone.io", VECTORDB),
    (".qdrant.io", VECTORDB),
    (".weaviate.network", VECTORDB),
    (".weaviate.cloud", VECTORDB),
    ("api.trychroma.com", VECTORDB),
    ("slack.com", SAAS),
    (".slack.com", SAAS),
    (".atlassian.net", SAAS),
    ("api.github.com", SAAS),
    ("uploads.github.com", SAAS),
    ("github.com", SAAS),
    ("gist.githubusercontent.com", SAAS),
    ("api.notion.com", SAAS),
    ("discord.com", SAAS),
    ("hooks.zapier.com", SAAS),
    ("api.hubspot.com", SAAS),
    (".salesforce.com", SAAS),
    ("api.linear.app", SAAS),
    ("gitlab.com", SAAS),
    ("s3.amazonaws.com", OBJECT_STORAGE),
    (".s3.amazonaws.com", OBJECT_STORAGE),
    ("storage.googleapis.com", OBJECT_STORAGE),
    (".storage.googleapis.com", OBJECT_STORAGE),
    (".blob.core.windows.net", OBJECT_STORAGE),
    (".r2.cloudflarestorage.com", OBJECT_STORAGE),
    (".digitaloceanspaces.com", OBJECT_STORAGE),
    (".backblazeb2.com", OBJECT_STORAGE),
    (".rds.amazonaws.com", DATABASE),
    (".neon.tech", DATABASE),
    (".supabase.co", DATABASE),
    (".supabase.com", DATABASE),
];

/// The category with the default internal suffixes. See the module documentation for the rule.
pub fn category(
    host: Option<&str>,
    remote_ip: Option<IpAddr>,
    recognised: Recognised,
) -> &'static str {
    category_with(host, remote_ip, recognised, DEFAULT_INTERNAL_SUFFIXES)
}

/// The category with the deployment's own internal suffixes (each starting with a dot).
pub fn category_with<S: AsRef<str>>(
    host: Option<&str>,
    remote_ip: Option<IpAddr>,
    recognised: Recognised,
    internal_suffixes: &[S],
) -> &'static str {
    match recognised {
        Recognised::Llm => return LLM,
        Recognised::Vector => return VECTORDB,
        Recognised::Sql => return DATABASE,
        Recognised::Saas(c) if c == OBJECT_STORAGE => return OBJECT_STORAGE,
        Recognised::Saas(_) => return SAAS,
        Recognised::Nothing => {}
    }
    let name = host
        .map(|h| {
            host_without_port(h.trim())
                .trim_end_matches('.')
                .to_ascii_lowercase()
        })
        .filter(|h| !h.is_empty());
    if let Some(name) = name {
        if let Ok(ip) = name.parse::<IpAddr>() {
            return by_ip(ip);
        }
        if let Some(c) = known_host(&name) {
            return c;
        }
        let internal = !name.contains('.')
            || internal_suffixes.iter().any(|s| {
                let s = s.as_ref();
                name.ends_with(s) || name == s.trim_start_matches('.')
            });
        return if internal { INTERNAL } else { UNKNOWN_EXTERNAL };
    }
    remote_ip.map_or(UNKNOWN_EXTERNAL, by_ip)
}

/// The category of a known public host, if it is one.
pub fn known_host(name: &str) -> Option<&'static str> {
    KNOWN_HOSTS
        .iter()
        .find(|(pattern, _)| {
            if pattern.starts_with('.') {
                name.ends_with(pattern)
            } else {
                name == *pattern
            }
        })
        .map(|(_, c)| *c)
        .or_else(|| {
            // Regional S3 endpoints: s3.eu-west-1.amazonaws.com, bucket.s3-eu-west-1.amazonaws.com.
            (name.ends_with(".amazonaws.com")
                && (name.starts_with("s3.")
                    || name.starts_with("s3-")
                    || name.contains(".s3.")
                    || name.contains(".s3-")))
            .then_some(OBJECT_STORAGE)
        })
        .or_else(|| {
            (name.ends_with(".amazonaws.com") && name.starts_with("bedrock")).then_some(LLM)
        })
}

fn by_ip(ip: IpAddr) -> &'static str {
    let internal = match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || (a == 100 && (64..128).contains(&b))
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || v6
                    .to_ipv4_mapped()
                    .is_some_and(|v4| by_ip(IpAddr::V4(v4)) == INTERNAL)
        }
    };
    if internal { INTERNAL } else { UNKNOWN_EXTERNAL }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOOPBACK: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));

    #[test]
    fn recognition_comes_first() {
        assert_eq!(
            category(Some("127.0.0.1:8080"), LOOPBACK, Recognised::Llm),
            LLM
        );
        assert_eq!(
            category(
                Some("minio.internal"),
                LOOPBACK,
                Recognised::Saas(OBJECT_STORAGE)
            ),
            OBJECT_STORAGE
        );
        assert_eq!(category(None, None, Recognised::Sql), DATABASE);
        assert_eq!(category(Some("qdrant"), None, Recognised::Vector), VECTORDB);
    }

    #[test]
    fn public_names_on_loopback_stay_external() {
        assert_eq!(
            category(Some("personal-pastebin.com"), LOOPBACK, Recognised::Nothing),
            UNKNOWN_EXTERNAL
        );
        assert_eq!(
            category(
                Some("personal-pastebin.com:443"),
                LOOPBACK,
                Recognised::Nothing
            ),
            UNKNOWN_EXTERNAL
        );
        assert_eq!(
            category(Some("api.openai.com"), LOOPBACK, Recognised::Nothing),
            LLM
        );
        assert_eq!(
            category(
                Some("my-bucket.s3.eu-west-1.amazonaws.com"),
                None,
                Recognised::Nothing
            ),
            OBJECT_STORAGE
        );
        assert_eq!(
            category(Some("hooks.slack.com"), None, Recognised::Nothing),
            SAAS
        );
    }

    #[test]
    fn internal_names_and_addresses() {
        for h in [
            "redis",
            "localhost",
            "api.svc",
            "db.default.svc.cluster.local",
            "printer.local",
            "jira.example.test",
            "vault.internal",
        ] {
            assert_eq!(
                category(Some(h), None, Recognised::Nothing),
                INTERNAL,
                "{h}"
            );
        }
        assert_eq!(
            category(Some("10.1.2.3:5432"), None, Recognised::Nothing),
            INTERNAL
        );
        assert_eq!(
            category(Some("[::1]:80"), None, Recognised::Nothing),
            INTERNAL
        );
        assert_eq!(category(None, LOOPBACK, Recognised::Nothing), INTERNAL);
        assert_eq!(
            category(
                None,
                Some("100.100.1.1".parse().unwrap()),
                Recognised::Nothing
            ),
            INTERNAL
        );
        assert_eq!(
            category(None, Some("fd00::1".parse().unwrap()), Recognised::Nothing),
            INTERNAL
        );
        assert_eq!(
            category(None, Some("8.8.8.8".parse().unwrap()), Recognised::Nothing),
            UNKNOWN_EXTERNAL
        );
        assert_eq!(
            category(Some("93.184.216.34"), LOOPBACK, Recognised::Nothing),
            UNKNOWN_EXTERNAL
        );
        assert_eq!(category(None, None, Recognised::Nothing), UNKNOWN_EXTERNAL);
        assert_eq!(
            category_with(
                Some("svc.acme.corp.example.com"),
                None,
                Recognised::Nothing,
                &[".acme.corp.example.com"]
            ),
            INTERNAL
        );
    }
}
