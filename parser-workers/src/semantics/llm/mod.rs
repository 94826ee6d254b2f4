//! LLM API calls recognised in HTTP exchanges: OpenAI Chat Completions, Responses, Embeddings
//! and legacy Completions (api.openai.com, Azure OpenAI, and OpenAI-compatible servers such as
//! vLLM, LiteLLM, OpenRouter), Ollama's native API, Anthropic Messages, Google Gemini
//! generateContent / streamGenerateContent / embedContent, and AWS Bedrock Converse — streaming
//! (SSE, NDJSON, JSON-array and AWS event-stream framing) and not.
//!
//! Recognition is by path and body shape, never by host alone; the host only names the
//! provider (`gen_ai.provider.name`) when it is a well-known one.
//!
//! # Conversation keys (the contract the chain builder reads)
//!
//! Every request's conversation is put in a canonical form: the system prompt (a top-level
//! `system`, `instructions`, `systemInstruction`, or the system/developer messages as sent) is
//! the first message, then each message as `role` (`model` is read as `assistant`) with its
//! text parts joined, its tool calls (id, name, arguments as canonical JSON) and its tool
//! results (call id, text), in that order. Images and other parts count only by their type.
//! Reasoning (thinking) blocks are left out, since clients do not all send them back.
//!
//! * `LlmCall::conversation_prefix_hashes[j]` is the hash of the first `skipped + j + 1`
//!   canonical messages, where `skipped` is the attribute `chainwatch.conversation.prefix_hashes_skipped`
//!   (absent means 0). At most [`MAX_PREFIX_HASHES`] hashes are kept: when a request has more
//!   messages, the LAST ones are kept (the longest prefixes, which are the ones that link a call
//!   to the one just before it) and the cap hit is counted in [`stats`]. The last element is
//!   always the hash of the whole request conversation.
//! * The attribute `chainwatch.conversation.answer_hash` is the hash of the request
//!   conversation followed by the assistant's answer (first choice / candidate) in canonical
//!   form. A later call that continues the conversation (these messages, the answer, then tool
//!   results or a new user message) has this value among its `conversation_prefix_hashes`: that
//!   is how the builder links call N to call N+1. Streaming answers are reassembled first, so
//!   both forms hash alike.
//! * A hash is SHA-256 over the canonical messages, each encoded as compact JSON with sorted
//!   keys followed by a newline, truncated to 16 bytes, lower-case hex (32 characters).
//! * Tool call ids answered by the model are in `LlmCall::tool_calls[*].id`; ids answered by
//!   tool results in a request are in `LlmCall::tool_result_ids`.
//!
//! Secrets: API keys and headers are never copied into the record or the attributes.

mod anthropic;
mod attributes;
mod aws_event_stream;
mod bedrock;
mod conversation;
mod embeddings;
mod extract;
mod gemini;
mod ollama;
mod openai_chat;
mod openai_responses;
mod partial_json;
mod route;

use std::sync::atomic::{AtomicU64, Ordering};

use chainwatch_schemas::LlmCall;

use super::HttpView;
pub use aws_event_stream::{
    EventStreamError, EventStreamMessage, decode_event_stream, encode_event_stream_message,
};
pub use conversation::{CanonicalMessage, CanonicalPart, conversation_hashes};
pub use partial_json::repair_partial_json;
use route::{Api, Route};

/// Conversation prefix hashes kept per call (the longest prefixes are kept).
pub const MAX_PREFIX_HASHES: usize = 256;
/// Texts handed to the detectors per call.
pub const MAX_TEXTS: usize = 512;
/// Bytes of text handed to the detectors per call (over all texts).
pub const MAX_TEXT_BYTES: usize = 4 * 1024 * 1024;
/// Tool calls, tool definitions, tool result ids and roles kept per call.
pub const MAX_LIST_ITEMS: usize = 256;

/// What one recognised LLM exchange means.
#[derive(Debug, Clone, PartialEq)]
pub struct LlmRecognition {
    pub call: LlmCall,
    /// `"llm_call"` or `"embeddings"`.
    pub kind: &'static str,
    /// OpenTelemetry GenAI attributes (`gen_ai.*`) plus `chainwatch.*` ones; a key may repeat
    /// (one `gen_ai.tool.call.id` per tool call). Never carries credentials.
    pub attributes: Vec<(String, String)>,
    /// The prompt, tool-output and completion texts, for the detectors.
    pub texts: Vec<LlmText>,
}

/// Where a text came from, for the detectors: user input, tool outputs and retrieved documents
/// are where prompt injection comes in; completions are where data leaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TextSource {
    /// The system prompt or developer instructions.
    System,
    /// A user message (or a legacy completion prompt).
    User,
    /// A prior assistant turn sent back in the request.
    Assistant,
    /// The output of a tool, sent back to the model (may hold retrieved documents).
    ToolOutput,
    /// The arguments of a tool call (in the request history or in the answer).
    ToolArguments,
    /// Text the model answered with (completion, refusal).
    Completion,
    /// Reasoning (thinking) text the model answered with.
    Reasoning,
    /// Input of an embeddings call (often documents being indexed).
    EmbeddingInput,
}

impl TextSource {
    pub fn as_str(self) -> &'static str {
        match self {
            TextSource::System => "system",
            TextSource::User => "user",
            TextSource::Assistant => "assistant",
            TextSource::ToolOutput => "tool_output",
            TextSource::ToolArguments => "tool_arguments",
            TextSource::Completion => "completion",
            TextSource::Reasoning => "reasoning",
            TextSource::EmbeddingInput => "embedding_input",
        }
    }
}

/// One text of a call with its location, e.g. `request.messages[3].content`,
/// `request.messages[2].content[0].tool_result`, `response.completion`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LlmText {
    pub location: String,
    /// The message role as sent (`user`, `tool`, `assistant`, `system`, `model`, ...).
    pub role: String,
    pub source: TextSource,
    pub text: String,
}

/// Counters of the LLM recogniser (process-wide).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LlmStats {
    /// Exchanges recognised as LLM calls.
    pub recognised: u64,
    /// Calls with more messages than [`MAX_PREFIX_HASHES`].
    pub prefix_hash_cap_hits: u64,
    /// Calls whose texts went over [`MAX_TEXTS`] or [`MAX_TEXT_BYTES`].
    pub text_cap_hits: u64,
    /// Calls whose tool calls, definitions, result ids or roles went over [`MAX_LIST_ITEMS`].
    pub list_cap_hits: u64,
    /// Tool-call arguments that were not valid JSON and were repaired (cut streams).
    pub repaired_arguments: u64,
    /// AWS event-stream bodies with a bad frame (CRC, length) or over the frame cap.
    pub event_stream_errors: u64,
}

static RECOGNISED: AtomicU64 = AtomicU64::new(0);
static PREFIX_HASH_CAP_HITS: AtomicU64 = AtomicU64::new(0);
static TEXT_CAP_HITS: AtomicU64 = AtomicU64::new(0);
static LIST_CAP_HITS: AtomicU64 = AtomicU64::new(0);
static REPAIRED_ARGUMENTS: AtomicU64 = AtomicU64::new(0);
static EVENT_STREAM_ERRORS: AtomicU64 = AtomicU64::new(0);

/// The recogniser's counters so far.
pub fn stats() -> LlmStats {
    LlmStats {
        recognised: RECOGNISED.load(Ordering::Relaxed),
        prefix_hash_cap_hits: PREFIX_HASH_CAP_HITS.load(Ordering::Relaxed),
        text_cap_hits: TEXT_CAP_HITS.load(Ordering::Relaxed),
        list_cap_hits: LIST_CAP_HITS.load(Ordering::Relaxed),
        repaired_arguments: REPAIRED_ARGUMENTS.load(Ordering::Relaxed),
        event_stream_errors: EVENT_STREAM_ERRORS.load(Ordering::Relaxed),
    }
}

pub(crate) fn count(counter: Counter) {
    let c = match counter {
        Counter::PrefixHashCap => &PREFIX_HASH_CAP_HITS,
        Counter::TextCap => &TEXT_CAP_HITS,
        Counter::ListCap => &LIST_CAP_HITS,
        Counter::RepairedArguments => &REPAIRED_ARGUMENTS,
        Counter::EventStreamError => &EVENT_STREAM_ERRORS,
    };
    c.fetch_add(1, Ordering::Relaxed);
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Counter {
    PrefixHashCap,
    TextCap,
    ListCap,
    RepairedArguments,
    EventStreamError,
}

/// The LLM call an HTTP exchange is, if it is one.
pub fn recognise(view: &HttpView) -> Option<LlmRecognition> {
    let request_json = view.request_json();
    let route = route::route(view, request_json.as_ref())?;
    let mut ex = extract::Extraction::new(&route);
    let request = request_json.as_ref();
    match route.api {
        Api::OpenAiChat => openai_chat::extract_chat(view, request, &mut ex),
        Api::OpenAiCompletions => openai_chat::extract_completions(view, request, &mut ex),
        Api::OpenAiResponses => openai_responses::extract(view, request, &mut ex),
        Api::OpenAiEmbeddings => embeddings::extract_openai(view, request, &mut ex),
        Api::AnthropicMessages => anthropic::extract(view, request, &mut ex),
        Api::GeminiGenerate => gemini::extract(view, request, &mut ex),
        Api::GeminiEmbed => embeddings::extract_gemini(view, request, &mut ex),
        Api::BedrockConverse => bedrock::extract(view, request, &mut ex),
        Api::OllamaChat => ollama::extract_chat(view, request, &mut ex),
        Api::OllamaGenerate => ollama::extract_generate(view, request, &mut ex),
        Api::OllamaEmbed => embeddings::extract_ollama(view, request, &mut ex),
    }
    if request.is_none() && !view.request_body.is_empty() {
        ex.attr("chainwatch.llm.request_unparsed", "true");
    }
    RECOGNISED.fetch_add(1, Ordering::Relaxed);
    Some(ex.finish(view, &route))
}

impl Route {
    /// `llm_call` or `embeddings`.
    fn kind(&self) -> &'static str {
        match self.api {
            Api::OpenAiEmbeddings | Api::GeminiEmbed | Api::OllamaEmbed => "embeddings",
            _ => "llm_call",
        }
    }
}

#[cfg(test)]
mod tests;
