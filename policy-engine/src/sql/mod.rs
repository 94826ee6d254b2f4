//! Ad hoc SQL over the stored chain tables: a DataFusion session over the data directory with
//! latest-version views, output formats for the CLI, and the HTTP endpoint for dashboards.

mod error;
mod format;
mod http;
mod session;
mod views;

pub use error::SqlError;
pub use format::{OutputFormat, json_array, write_batches};
pub use http::{DEFAULT_MAX_ROWS, SqlEndpoint, TRUNCATED_HEADER, bind, serve};
pub use session::{AGENT_PROFILES, ALLOWED_DESTINATIONS, QueryResult, SqlSession, reference_tables};
pub use views::view_definitions;
