//! Which LLM API an exchange is, from its method, path and request-body shape (the host only
//! names the provider): the API family, the OTel operation name, and what the path says (the
//! model or deployment, Azure's api-version, a streaming endpoint).

use serde_json::Value;

use crate::semantics::HttpView;

/// The API whose body shapes an exchange follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    OpenAiChat,
    OpenAiCompletions,
    OpenAiResponses,
    OpenAiEmbeddings,
    AnthropicMessages,
    GeminiGenerate,
    GeminiEmbed,
    BedrockConverse,
    OllamaChat,
    OllamaGenerate,
    OllamaEmbed,
}

/// What the request line says about an LLM call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub api: Api,
    /// `gen_ai.provider.name`.
    pub provider: String,
    /// `gen_ai.operation.name`.
    pub operation: &'static str,
    /// The model (Gemini, Bedrock) or deployment (Azure) named in the path.
    pub model_from_path: Option<String>,
    /// Azure's `api-version` query parameter.
    pub api_version: Option<String>,
    /// The endpoint itself streams (streamGenerateContent, converse-stream).
    pub stream_endpoint: bool,
    /// The host name without port (`server.address`).
    pub server_address: Option<String>,
}

/// The route of an LLM API call, or `None` when the exchange is not one.
pub fn route(view: &HttpView, request: Option<&Value>) -> Option<Route> {
    if !view.method.eq_ignore_ascii_case("POST") {
        return None;
    }
    let path = view.path().trim_end_matches('/');
    let host = view.host_name();
    let host_str = host.as_deref().unwrap_or("");
    let has = |key: &str| request.is_none_or(|r| r.get(key).is_some());
    let is_obj = request.is_none_or(Value::is_object);
    if !is_obj {
        return None;
    }
    let mut r = Route {
        api: Api::OpenAiChat,
        provider: String::new(),
        operation: "chat",
        model_from_path: None,
        api_version: view.query_param("api-version").map(percent_decode),
        stream_endpoint: false,
        server_address: host.clone(),
    };

    // Azure OpenAI: /openai/deployments/{deployment}/{operation}
    if let Some(rest) = path.strip_prefix("/openai/deployments/")
        && let Some((deployment, op)) = rest.split_once('/')
    {
        r.api = match op {
            "chat/completions" if has("messages") => Api::OpenAiChat,
            "completions" if has("prompt") => Api::OpenAiCompletions,
            "embeddings" if has("input") => Api::OpenAiEmbeddings,
            "responses" => Api::OpenAiResponses,
            _ => return None,
        };
        r.model_from_path = Some(percent_decode(deployment));
        r.provider = "azure.ai.openai".into();
        r.operation = operation_of(r.api);
        return Some(r);
    }

    // Gemini (generativelanguage) and Vertex AI: .../models/{model}:{method}
    if let Some((before, method)) = path.rsplit_once(':')
        && let Some(idx) = before.rfind("/models/")
    {
        let model = &before[idx + "/models/".len()..];
        let (api, stream) = match method {
            "generateContent" => (Api::GeminiGenerate, false),
            "streamGenerateContent" => (Api::GeminiGenerate, true),
            "embedContent" | "batchEmbedContents" => (Api::GeminiEmbed, false),
            _ => return None,
        };
        if model.is_empty() || model.contains('/') {
            return None;
        }
        r.api = api;
        r.stream_endpoint = stream;
        r.model_from_path = Some(percent_decode(model));
        r.provider =
            if before.contains("/publishers/") || host_str.ends_with("aiplatform.googleapis.com") {
                "gcp.vertex_ai".into()
            } else {
                "gcp.gemini".into()
            };
        r.operation = operation_of(api);
        return Some(r);
    }

    // Bedrock runtime: /model/{modelId}/converse and /converse-stream
    if let Some(rest) = path.strip_prefix("/model/")
        && let Some((model, op)) = rest.rsplit_once('/')
        && (op == "converse" || op == "converse-stream")
        && has("messages")
    {
        r.api = Api::BedrockConverse;
        r.stream_endpoint = op == "converse-stream";
        r.model_from_path = Some(percent_decode(model));
        r.provider = "aws.bedrock".into();
        r.operation = "chat";
        return Some(r);
    }

    // Ollama's native API.
    let ollama = match path {
        "/api/chat" if has("messages") => Some(Api::OllamaChat),
        "/api/generate" if has("prompt") || has("model") => Some(Api::OllamaGenerate),
        "/api/embed" | "/api/embeddings" if has("input") || has("prompt") => Some(Api::OllamaEmbed),
        _ => None,
    };
    if let Some(api) = ollama {
        r.api = api;
        r.provider = "ollama".into();
        r.operation = operation_of(api);
        return Some(r);
    }

    // Anthropic Messages (not /v1/messages/count_tokens or batches).
    if path.ends_with("/v1/messages") && has("messages") {
        r.api = Api::AnthropicMessages;
        r.provider = "anthropic".into();
        r.operation = "chat";
        return Some(r);
    }

    // OpenAI and OpenAI-compatible servers, whatever the prefix (/v1, /api/v1, /openai/v1, none).
    let api = if path.ends_with("/chat/completions") && has("messages") {
        Api::OpenAiChat
    } else if path.ends_with("/completions") && has("prompt") {
        Api::OpenAiCompletions
    } else if path.ends_with("/responses") && (has("input") || has("model")) {
        Api::OpenAiResponses
    } else if path.ends_with("/embeddings") && has("input") {
        Api::OpenAiEmbeddings
    } else {
        return None;
    };
    r.api = api;
    r.operation = operation_of(api);
    r.provider = openai_family_provider(host_str, path).into();
    Some(r)
}

fn operation_of(api: Api) -> &'static str {
    match api {
        Api::OpenAiChat
        | Api::OpenAiResponses
        | Api::AnthropicMessages
        | Api::BedrockConverse
        | Api::OllamaChat => "chat",
        Api::OpenAiCompletions | Api::OllamaGenerate => "text_completion",
        Api::GeminiGenerate => "generate_content",
        Api::OpenAiEmbeddings | Api::GeminiEmbed | Api::OllamaEmbed => "embeddings",
    }
}

/// `gen_ai.provider.name` of an OpenAI-shaped API: the OTel well-known value when the host is
/// a well-known provider, else `openai_compatible`.
fn openai_family_provider(host: &str, path: &str) -> &'static str {
    const KNOWN: &[(&str, &str)] = &[
        ("api.openai.com", "openai"),
        ("api.deepseek.com", "deepseek"),
        ("api.groq.com", "groq"),
        ("api.mistral.ai", "mistral_ai"),
        ("api.x.ai", "x_ai"),
        ("api.perplexity.ai", "perplexity"),
        ("openrouter.ai", "openrouter"),
    ];
    if let Some((_, name)) = KNOWN.iter().find(|(h, _)| *h == host) {
        return name;
    }
    if host.ends_with(".openai.azure.com")
        || path.starts_with("/openai/") && host.ends_with(".azure.com")
    {
        return "azure.ai.openai";
    }
    if host.ends_with(".services.ai.azure.com") || host.ends_with(".inference.ai.azure.com") {
        return "azure.ai.inference";
    }
    "openai_compatible"
}

/// `%XX` escapes of a path segment or query value undone (invalid escapes kept as they are).
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%'
            && let Some(hex) = bytes.get(i + 1..i + 3)
            && let Ok(h) = std::str::from_utf8(hex)
            && let Ok(v) = u8::from_str_radix(h, 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_escapes_are_undone() {
        assert_eq!(
            percent_decode("anthropic.claude-3-haiku-20240307-v1%3A0"),
            "anthropic.claude-3-haiku-20240307-v1:0"
        );
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }

    #[test]
    fn providers_follow_the_host_only_for_known_hosts() {
        assert_eq!(
            openai_family_provider("api.openai.com", "/v1/chat/completions"),
            "openai"
        );
        assert_eq!(
            openai_family_provider("my-res.openai.azure.com", "/openai/v1/responses"),
            "azure.ai.openai"
        );
        assert_eq!(
            openai_family_provider("localhost", "/v1/chat/completions"),
            "openai_compatible"
        );
    }
}
