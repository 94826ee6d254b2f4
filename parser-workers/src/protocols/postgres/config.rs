//! Bounds for one PostgreSQL connection: message size, SQL text, sampled rows and values,
//! statement and portal tables. Every bound that is hit is counted, never silent.

/// Limits for parsers, stitcher and connection driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgConfig {
    /// Largest message body parsed whole; longer ones are parsed from their first
    /// `max_message_len` bytes (SQL text, DataRow) and the rest skipped.
    pub max_message_len: usize,
    /// Longest SQL text kept (bytes); longer text is cut and flagged truncated.
    pub max_sql_len: usize,
    /// Longest sampled DataRow value (bytes).
    pub max_value_len: usize,
    /// Rows sampled per exchange (over all its result sets).
    pub max_sample_rows: usize,
    /// Columns kept per RowDescription / sampled per DataRow.
    pub max_sample_columns: usize,
    /// Result sets sampled per exchange (a simple query may hold several statements).
    pub max_result_sets: usize,
    /// Named prepared statements remembered (oldest evicted first).
    pub max_statements: usize,
    /// Named portals remembered (oldest evicted first).
    pub max_portals: usize,
    /// Frontend requests awaiting a response (pipelining depth); beyond it the oldest is
    /// completed as partial.
    pub max_pending: usize,
    /// StartupMessage parameters kept.
    pub max_startup_params: usize,
    /// Longest message accepted as a resynchronisation point after a gap. Scanning costs at
    /// most this many bytes of validation per candidate offset, so keep it modest.
    pub resync_max_len: usize,
    /// Command tags kept per exchange (a simple query may run many statements).
    pub max_command_tags: usize,
}

impl Default for PgConfig {
    fn default() -> Self {
        PgConfig {
            max_message_len: 256 * 1024,
            max_sql_len: 64 * 1024,
            max_value_len: 256,
            max_sample_rows: 64,
            max_sample_columns: 64,
            max_result_sets: 8,
            max_statements: 256,
            max_portals: 64,
            max_pending: 1024,
            max_startup_params: 32,
            resync_max_len: 16 * 1024,
            max_command_tags: 64,
        }
    }
}
