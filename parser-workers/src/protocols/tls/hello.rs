//! `TlsHello`: what a ClientHello or ServerHello says (SNI, ALPN, versions, cipher suites),
//! and the bounds-checked parsing of their handshake bodies.

use super::error::TlsError;

/// Most ALPN protocols kept.
const MAX_ALPN: usize = 16;
/// Most extension types kept.
const MAX_EXTENSIONS: usize = 64;
/// Most supported_versions entries kept.
const MAX_VERSIONS: usize = 16;
/// SHA-256("HelloRetryRequest"): the random of a HelloRetryRequest (RFC 8446, 4.1.3).
const HRR_RANDOM: [u8; 32] = [
    0xcf, 0x21, 0xad, 0x74, 0xe5, 0x9a, 0x61, 0x11, 0xbe, 0x1d, 0x8c, 0x02, 0x1e, 0x65, 0xb8, 0x91,
    0xc2, 0xa2, 0x11, 0x16, 0x7a, 0xbb, 0x8c, 0x5e, 0x07, 0x9e, 0x09, 0xe2, 0xc8, 0xa8, 0x33, 0x9c,
];

/// Extension numbers read.
const EXT_SERVER_NAME: u16 = 0;
const EXT_ALPN: u16 = 16;
const EXT_SUPPORTED_VERSIONS: u16 = 43;
const EXT_ENCRYPTED_CLIENT_HELLO: u16 = 0xfe0d;

/// Which hello.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsHelloKind {
    /// ClientHello (handshake type 1).
    Client,
    /// ServerHello (handshake type 2), including HelloRetryRequest.
    Server,
}

/// What a ClientHello or ServerHello said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsHello {
    /// Client or server.
    pub kind: TlsHelloKind,
    /// Version in the record header that carried the hello's first byte.
    pub record_version: u16,
    /// legacy_version of the hello (0x0303 for TLS 1.2 and 1.3).
    pub legacy_version: u16,
    /// supported_versions: the client's list, or the server's choice (one entry).
    pub supported_versions: Vec<u16>,
    /// server_name (SNI) host name, client only.
    pub server_name: Option<String>,
    /// ALPN protocols: the client's offer, or the server's choice (one entry).
    pub alpn: Vec<String>,
    /// Cipher suites offered (client).
    pub cipher_suite_count: usize,
    /// Cipher suite chosen (server).
    pub cipher_suite: Option<u16>,
    /// Extension types in order (bounded).
    pub extensions: Vec<u16>,
    /// An encrypted_client_hello extension was present (the SNI seen is the outer one).
    pub ech: bool,
    /// This ServerHello is a HelloRetryRequest.
    pub hello_retry_request: bool,
    /// A bound cut the lists kept (ALPN, extensions, versions).
    pub truncated: bool,
}

impl TlsHello {
    /// The protocol version in effect: the server's supported_versions choice, the highest
    /// non-GREASE version a client offers, or legacy_version.
    pub fn version(&self) -> u16 {
        let real = self
            .supported_versions
            .iter()
            .copied()
            .filter(|v| !is_grease(*v));
        match self.kind {
            TlsHelloKind::Server => real.into_iter().next().unwrap_or(self.legacy_version),
            TlsHelloKind::Client => real.max().unwrap_or(self.legacy_version),
        }
    }

    /// "TLSv12"-style name of `version()`.
    pub fn version_name(&self) -> &'static str {
        version_name(self.version())
    }
}

/// Name of a TLS protocol version number.
pub fn version_name(v: u16) -> &'static str {
    match v {
        0x0300 => "SSLv3",
        0x0301 => "TLSv10",
        0x0302 => "TLSv11",
        0x0303 => "TLSv12",
        0x0304 => "TLSv13",
        _ => "unknown",
    }
}

/// GREASE values (RFC 8701): 0x?a?a with both bytes equal.
pub fn is_grease(v: u16) -> bool {
    v & 0x0f0f == 0x0a0a && (v >> 8) == (v & 0xff)
}

/// A bounds-checked cursor over a handshake body.
struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
    message: &'static str,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], TlsError> {
        let end = self.pos.checked_add(n).ok_or(TlsError::Truncated {
            message: self.message,
            field,
        })?;
        let out = self.b.get(self.pos..end).ok_or(TlsError::Truncated {
            message: self.message,
            field,
        })?;
        self.pos = end;
        Ok(out)
    }
    fn u8(&mut self, field: &'static str) -> Result<u8, TlsError> {
        Ok(self.take(1, field)?.first().copied().unwrap_or(0))
    }
    fn u16(&mut self, field: &'static str) -> Result<u16, TlsError> {
        let b = self.take(2, field)?;
        Ok(u16::from_be_bytes([
            b.first().copied().unwrap_or(0),
            b.get(1).copied().unwrap_or(0),
        ]))
    }
    fn vec8(&mut self, field: &'static str) -> Result<&'a [u8], TlsError> {
        let n = self.u8(field)?;
        self.take(usize::from(n), field)
    }
    fn vec16(&mut self, field: &'static str) -> Result<&'a [u8], TlsError> {
        let n = self.u16(field)?;
        self.take(usize::from(n), field)
    }
    fn done(&self) -> bool {
        self.pos >= self.b.len()
    }
}

/// Parse a ClientHello (body without the 4-byte handshake header).
pub fn parse_client_hello(body: &[u8], record_version: u16) -> Result<TlsHello, TlsError> {
    let mut r = Reader {
        b: body,
        pos: 0,
        message: "ClientHello",
    };
    let legacy_version = r.u16("legacy_version")?;
    r.take(32, "random")?;
    r.vec8("session_id")?;
    let suites = r.vec16("cipher_suites")?;
    if suites.len() % 2 != 0 {
        return Err(TlsError::BadLength {
            message: "ClientHello",
            field: "cipher_suites",
        });
    }
    r.vec8("compression_methods")?;
    let mut hello = empty_hello(TlsHelloKind::Client, record_version, legacy_version);
    hello.cipher_suite_count = suites.len() / 2;
    if !r.done() {
        let exts = r.vec16("extensions")?;
        parse_extensions(exts, &mut hello)?;
    }
    Ok(hello)
}

/// Parse a ServerHello (body without the 4-byte handshake header).
pub fn parse_server_hello(body: &[u8], record_version: u16) -> Result<TlsHello, TlsError> {
    let mut r = Reader {
        b: body,
        pos: 0,
        message: "ServerHello",
    };
    let legacy_version = r.u16("legacy_version")?;
    let random = r.take(32, "random")?;
    r.vec8("session_id")?;
    let suite = r.u16("cipher_suite")?;
    r.u8("compression_method")?;
    let mut hello = empty_hello(TlsHelloKind::Server, record_version, legacy_version);
    hello.cipher_suite = Some(suite);
    hello.hello_retry_request = random == HRR_RANDOM;
    if !r.done() {
        let exts = r.vec16("extensions")?;
        parse_extensions(exts, &mut hello)?;
    }
    Ok(hello)
}

fn empty_hello(kind: TlsHelloKind, record_version: u16, legacy_version: u16) -> TlsHello {
    TlsHello {
        kind,
        record_version,
        legacy_version,
        supported_versions: Vec::new(),
        server_name: None,
        alpn: Vec::new(),
        cipher_suite_count: 0,
        cipher_suite: None,
        extensions: Vec::new(),
        ech: false,
        hello_retry_request: false,
        truncated: false,
    }
}

fn parse_extensions(exts: &[u8], hello: &mut TlsHello) -> Result<(), TlsError> {
    let message = match hello.kind {
        TlsHelloKind::Client => "ClientHello",
        TlsHelloKind::Server => "ServerHello",
    };
    let mut r = Reader {
        b: exts,
        pos: 0,
        message,
    };
    while !r.done() {
        let ty = r.u16("extension type")?;
        let data = r.vec16("extension data")?;
        if hello.extensions.len() < MAX_EXTENSIONS {
            hello.extensions.push(ty);
        } else {
            hello.truncated = true;
        }
        match ty {
            EXT_SERVER_NAME if hello.kind == TlsHelloKind::Client => {
                // A server echoes an empty server_name extension; only the client's has names.
                let mut e = Reader {
                    b: data,
                    pos: 0,
                    message,
                };
                let list = e.vec16("server_name list")?;
                let mut l = Reader {
                    b: list,
                    pos: 0,
                    message,
                };
                while !l.done() {
                    let name_type = l.u8("server_name type")?;
                    let name = l.vec16("server_name")?;
                    if name_type == 0 && hello.server_name.is_none() {
                        hello.server_name = Some(String::from_utf8_lossy(name).into_owned());
                    }
                }
            }
            EXT_ALPN => {
                let mut e = Reader {
                    b: data,
                    pos: 0,
                    message,
                };
                let list = e.vec16("ALPN list")?;
                let mut l = Reader {
                    b: list,
                    pos: 0,
                    message,
                };
                while !l.done() {
                    let proto = l.vec8("ALPN protocol")?;
                    if hello.alpn.len() < MAX_ALPN {
                        hello.alpn.push(String::from_utf8_lossy(proto).into_owned());
                    } else {
                        hello.truncated = true;
                    }
                }
            }
            EXT_SUPPORTED_VERSIONS => {
                let mut e = Reader {
                    b: data,
                    pos: 0,
                    message,
                };
                let list = match hello.kind {
                    TlsHelloKind::Client => e.vec8("supported_versions")?,
                    TlsHelloKind::Server => data,
                };
                if list.len() % 2 != 0 {
                    return Err(TlsError::BadLength {
                        message,
                        field: "supported_versions",
                    });
                }
                for pair in list.chunks_exact(2) {
                    if let [a, b] = pair {
                        if hello.supported_versions.len() < MAX_VERSIONS {
                            hello.supported_versions.push(u16::from_be_bytes([*a, *b]));
                        } else {
                            hello.truncated = true;
                        }
                    }
                }
            }
            EXT_ENCRYPTED_CLIENT_HELLO => hello.ech = true,
            _ => {}
        }
    }
    Ok(())
}
