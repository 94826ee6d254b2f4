//! PostgreSQL wire messages (protocol 3.0) as owned frames: what the frontend and backend parsers
//! produce and the stitcher consumes. Secrets (passwords, SASL data, cancel keys) are never kept.

/// One parsed message of either direction plus its size on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgFrame {
    /// What the message said.
    pub message: PgMessage,
    /// Bytes it occupied on the wire (type byte and length included).
    pub wire_len: usize,
}

/// A message of either direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PgMessage {
    /// Sent by the client.
    Frontend(FrontendMessage),
    /// Sent by the server.
    Backend(BackendMessage),
    /// A message longer than the size bound whose content is not sampled (its type byte).
    Oversized { tag: u8, declared_len: usize },
    /// The rest of a message larger than the message size bound, skipped without parsing.
    Continuation,
}

/// Messages sent by the client (frontend).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrontendMessage {
    /// Untyped SSLRequest: asks the server to switch to TLS.
    SslRequest,
    /// Untyped GSSENCRequest: asks the server to switch to GSSAPI encryption.
    GssEncRequest,
    /// Untyped CancelRequest (the secret key is not kept).
    CancelRequest { process_id: i32 },
    /// Untyped StartupMessage with its parameters (user, database, application_name...).
    Startup {
        major: u16,
        minor: u16,
        params: Vec<(String, String)>,
        truncated: bool,
    },
    /// 'p': PasswordMessage, SASLInitialResponse, SASLResponse or GSSResponse; content dropped.
    Password { len: usize },
    /// 'Q': simple query, possibly several statements.
    Query { sql: String, truncated: bool },
    /// 'P': Parse, a prepared statement (empty name = unnamed).
    Parse {
        statement: String,
        sql: String,
        param_types: u16,
        truncated: bool,
    },
    /// 'B': Bind a statement to a portal; parameter values are not kept.
    Bind {
        portal: String,
        statement: String,
        params: u16,
        result_formats: Vec<i16>,
    },
    /// 'D': Describe a statement (`b'S'`) or portal (`b'P'`).
    Describe { target: u8, name: String },
    /// 'E': Execute a portal.
    Execute { portal: String, max_rows: i32 },
    /// 'C': Close a statement (`b'S'`) or portal (`b'P'`).
    Close { target: u8, name: String },
    /// 'S': Sync.
    Sync,
    /// 'H': Flush.
    Flush,
    /// 'X': Terminate.
    Terminate,
    /// 'F': FunctionCall (arguments not kept).
    FunctionCall { oid: i32 },
    /// 'd': CopyData towards the server (COPY FROM STDIN); content not kept.
    CopyData { len: usize },
    /// 'c': CopyDone.
    CopyDone,
    /// 'f': CopyFail with its reason.
    CopyFail { reason: String },
}

/// Messages sent by the server (backend).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendMessage {
    /// Untyped one-byte answer to SSLRequest/GSSENCRequest: 'S'/'G' accepted, 'N' refused.
    EncryptionReply { accepted: bool, byte: u8 },
    /// 'R': an authentication request or outcome (SASL data and salts are not kept).
    Authentication(AuthRequest),
    /// 'K': BackendKeyData (the secret key is not kept).
    BackendKeyData { process_id: i32 },
    /// 'S': ParameterStatus.
    ParameterStatus { name: String, value: String },
    /// 'Z': ReadyForQuery with the transaction status ('I', 'T', 'E').
    ReadyForQuery { status: u8 },
    /// 'T': RowDescription.
    RowDescription {
        columns: Vec<PgColumn>,
        column_count: u16,
    },
    /// 'D': DataRow; `values` is empty when row sampling was off.
    DataRow {
        column_count: u16,
        values: Vec<Option<SampledBytes>>,
        truncated: bool,
    },
    /// 'C': CommandComplete with its tag ("SELECT 5", "INSERT 0 3"...).
    CommandComplete { tag: String },
    /// 'I': EmptyQueryResponse.
    EmptyQuery,
    /// 'E': ErrorResponse.
    Error(PgNotice),
    /// 'N': NoticeResponse.
    Notice(PgNotice),
    /// '1': ParseComplete.
    ParseComplete,
    /// '2': BindComplete.
    BindComplete,
    /// '3': CloseComplete.
    CloseComplete,
    /// 'n': NoData.
    NoData,
    /// 't': ParameterDescription.
    ParameterDescription { params: u16 },
    /// 's': PortalSuspended (Execute row limit reached).
    PortalSuspended,
    /// 'G': CopyInResponse.
    CopyInResponse { columns: u16 },
    /// 'H': CopyOutResponse.
    CopyOutResponse { columns: u16 },
    /// 'W': CopyBothResponse.
    CopyBothResponse { columns: u16 },
    /// 'd': CopyData towards the client; content not kept.
    CopyData { len: usize },
    /// 'c': CopyDone.
    CopyDone,
    /// 'A': NotificationResponse (LISTEN/NOTIFY).
    Notification { process_id: i32, channel: String },
    /// 'V': FunctionCallResponse.
    FunctionCallResponse,
    /// 'v': NegotiateProtocolVersion.
    NegotiateProtocolVersion { newest_minor: i32 },
}

/// An 'R' Authentication message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthRequest {
    /// 0: authentication succeeded.
    Ok,
    /// 2: Kerberos V5.
    KerberosV5,
    /// 3: cleartext password requested.
    CleartextPassword,
    /// 5: MD5 password requested (salt not kept).
    Md5Password,
    /// 7: GSSAPI.
    Gss,
    /// 8: GSSAPI continue.
    GssContinue,
    /// 9: SSPI.
    Sspi,
    /// 10: SASL (mechanism list not kept).
    Sasl,
    /// 11: SASL continue.
    SaslContinue,
    /// 12: SASL final.
    SaslFinal,
    /// Anything else.
    Other(i32),
}

impl AuthRequest {
    /// From the 32-bit code of an 'R' message.
    pub fn from_code(code: i32) -> Self {
        match code {
            0 => AuthRequest::Ok,
            2 => AuthRequest::KerberosV5,
            3 => AuthRequest::CleartextPassword,
            5 => AuthRequest::Md5Password,
            7 => AuthRequest::Gss,
            8 => AuthRequest::GssContinue,
            9 => AuthRequest::Sspi,
            10 => AuthRequest::Sasl,
            11 => AuthRequest::SaslContinue,
            12 => AuthRequest::SaslFinal,
            other => AuthRequest::Other(other),
        }
    }

    /// The name used in logs (zeek's spelling: "MD5Password", "SASL", ...).
    pub fn name(&self) -> &'static str {
        match self {
            AuthRequest::Ok => "Ok",
            AuthRequest::KerberosV5 => "KerberosV5",
            AuthRequest::CleartextPassword => "CleartextPassword",
            AuthRequest::Md5Password => "MD5Password",
            AuthRequest::Gss => "GSS",
            AuthRequest::GssContinue => "GSSContinue",
            AuthRequest::Sspi => "SSPI",
            AuthRequest::Sasl => "SASL",
            AuthRequest::SaslContinue => "SASLContinue",
            AuthRequest::SaslFinal => "SASLFinal",
            AuthRequest::Other(_) => "Other",
        }
    }
}

/// One column of a RowDescription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgColumn {
    /// Column name (as the query labelled it).
    pub name: String,
    /// Table OID (0 if not a table column).
    pub table_oid: i32,
    /// Data type OID.
    pub type_oid: i32,
    /// Format code: 0 text, 1 binary.
    pub format: i16,
}

/// The first bytes of a value, with whether more existed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampledBytes {
    /// Up to the configured value bound.
    pub bytes: Vec<u8>,
    /// Length the value had on the wire.
    pub full_len: usize,
}

/// The fields of an ErrorResponse or NoticeResponse.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PgNotice {
    /// 'S' (localized) or 'V' (non-localized) severity: ERROR, FATAL, NOTICE...
    pub severity: String,
    /// 'C': SQLSTATE code.
    pub code: String,
    /// 'M': primary message.
    pub message: String,
    /// 'D': detail.
    pub detail: Option<String>,
    /// 'H': hint.
    pub hint: Option<String>,
}
