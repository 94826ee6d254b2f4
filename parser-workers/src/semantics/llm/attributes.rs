//! OpenTelemetry GenAI semantic-convention attributes of an `LlmCall` (gen_ai.provider.name,
//! gen_ai.request.model, gen_ai.usage.*, gen_ai.response.finish_reasons, ...), with the
//! chainwatch-specific ones under `chainwatch.*`. Credentials never appear here.

use chainwatch_schemas::LlmCall;
use serde_json::Value;

use super::route::Route;

/// The attributes of a call, in a stable order.
pub fn otel_attributes(call: &LlmCall, route: &Route) -> Vec<(String, String)> {
    let mut a: Vec<(String, String)> = Vec::new();
    let mut put = |k: &str, v: String| a.push((k.to_string(), v));
    put("gen_ai.provider.name", call.provider.clone());
    put("gen_ai.operation.name", call.operation.clone());
    if let Some(addr) = &route.server_address {
        put("server.address", addr.clone());
    }
    if let Some(m) = &call.request_model {
        put("gen_ai.request.model", m.clone());
    }
    if let Some(m) = &call.response_model {
        put("gen_ai.response.model", m.clone());
    }
    if let Some(id) = &call.response_id {
        put("gen_ai.response.id", id.clone());
    }
    if let Some(t) = call.temperature {
        put("gen_ai.request.temperature", t.to_string());
    }
    if let Some(t) = call.top_p {
        put("gen_ai.request.top_p", t.to_string());
    }
    if let Some(t) = call.max_tokens {
        put("gen_ai.request.max_tokens", t.to_string());
    }
    put("chainwatch.llm.stream", call.stream.to_string());
    if let Some(t) = call.input_tokens {
        put("gen_ai.usage.input_tokens", t.to_string());
    }
    if let Some(t) = call.output_tokens {
        put("gen_ai.usage.output_tokens", t.to_string());
    }
    if let Some(t) = call.cached_tokens {
        put("gen_ai.usage.cache_read.input_tokens", t.to_string());
    }
    if let Some(t) = call.reasoning_tokens {
        put("gen_ai.usage.reasoning.output_tokens", t.to_string());
    }
    if !call.finish_reasons.is_empty() {
        let reasons = Value::Array(
            call.finish_reasons
                .iter()
                .map(|r| Value::String(r.clone()))
                .collect(),
        );
        put("gen_ai.response.finish_reasons", reasons.to_string());
    }
    if let Some(t) = call.time_to_first_token_ns {
        put(
            "gen_ai.response.time_to_first_chunk",
            format!("{:.9}", t as f64 / 1e9),
        );
    }
    if let Some(v) = &route.api_version {
        put("chainwatch.llm.api_version", v.clone());
    }
    for tc in &call.tool_calls {
        put("gen_ai.tool.call.id", tc.id.clone());
        put("gen_ai.tool.name", tc.name.clone());
    }
    a
}
