//! PostgreSQL wire protocol 3.0: push parsers for both directions (`frontend`, `backend`), a
//! stitcher from messages to `PgExchange`s, content-based detection, and `PgConnection`, a
//! driver owning the bounded buffers. See `message` for the frame types.
//!
//! A connection FSM driving the parts itself (instead of `PgConnection`) must do what the
//! driver does across directions: after a frontend `SslRequest`/`GssEncRequest` frame call
//! `PgBackendParser::expect_encryption_reply`; before each backend parse call
//! `set_row_sampling(stitcher.wants_row_samples())`; stop parsing once `stitcher.encrypted()`;
//! on lost bytes call `resync()` on that direction's parser and `stitcher.note_gap(dir)`.

pub mod backend;
pub mod config;
pub mod connection;
pub mod detect;
pub mod exchange;
mod framing;
pub mod frontend;
pub mod message;
pub mod stitcher;
mod statements;
pub mod wire;

pub use backend::PgBackendParser;
pub use config::PgConfig;
pub use connection::{PgConnection, PgConnectionState, PgStats};
pub use detect::looks_like_postgres_client;
pub use exchange::{
    PgExchange, PgExchangeFlags, PgExchangeKind, PgResultSample, PgSampledValue, PgValue,
    rows_from_command_tag,
};
pub use frontend::PgFrontendParser;
pub use message::{
    AuthRequest, BackendMessage, FrontendMessage, PgColumn, PgFrame, PgMessage, PgNotice,
};
pub use stitcher::{PgStitcher, PgStitcherStats};
pub use wire::PgWireError;
