//! What each exchange means for an agent: LLM API calls, vector-database operations, SaaS
//! actions and uploads, recognised by path and body shape (never by host alone), on top of the
//! wire-level exchanges. Every recogniser reads an [`HttpView`] (or a SQL statement).

pub mod hook;
pub mod http_view;
pub mod llm;
pub mod vector;
pub mod saas;
pub mod upload;
pub mod destination;

pub use hook::{SemanticsHook, SemanticsStats};
pub use http_view::{HttpVersion, HttpView, host_without_port};
