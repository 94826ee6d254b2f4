//! `grpc-encoding` of compressed messages: gzip, deflate (zlib, or raw deflate as some peers
//! send) and zstd are inflated with an output cap; identity passes through; anything else is
//! reported as unknown and left compressed.

use std::io::Read;

use super::error::GrpcMessageError;

/// The `grpc-encoding` one side announced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GrpcEncoding {
    /// No header, or `identity`.
    Identity,
    /// `gzip`.
    Gzip,
    /// `deflate` (zlib-wrapped per HTTP; raw deflate accepted too).
    Deflate,
    /// `zstd`.
    Zstd,
    /// Any other value (e.g. `snappy`), lower-cased.
    Unknown(String),
}

impl GrpcEncoding {
    /// From the value of a `grpc-encoding` header (absent means identity).
    pub fn from_header(value: Option<&str>) -> Self {
        let Some(value) = value else {
            return GrpcEncoding::Identity;
        };
        match value.trim().to_ascii_lowercase().as_str() {
            "" | "identity" => GrpcEncoding::Identity,
            "gzip" | "x-gzip" => GrpcEncoding::Gzip,
            "deflate" => GrpcEncoding::Deflate,
            "zstd" => GrpcEncoding::Zstd,
            other => GrpcEncoding::Unknown(other.chars().take(64).collect()),
        }
    }

    /// The header token.
    pub fn name(&self) -> &str {
        match self {
            GrpcEncoding::Identity => "identity",
            GrpcEncoding::Gzip => "gzip",
            GrpcEncoding::Deflate => "deflate",
            GrpcEncoding::Zstd => "zstd",
            GrpcEncoding::Unknown(name) => name,
        }
    }
}

/// Inflate one message body compressed with `encoding`, producing at most `max_out` bytes.
pub fn decompress_message(
    encoding: &GrpcEncoding,
    body: &[u8],
    max_out: usize,
) -> Result<Vec<u8>, GrpcMessageError> {
    match encoding {
        GrpcEncoding::Identity => Err(GrpcMessageError::CompressedWithoutEncoding),
        GrpcEncoding::Unknown(name) => Err(GrpcMessageError::UnknownEncoding(name.clone())),
        GrpcEncoding::Gzip => {
            read_capped(flate2::read::MultiGzDecoder::new(body), encoding, max_out)
        }
        GrpcEncoding::Deflate => {
            match read_capped(flate2::read::ZlibDecoder::new(body), encoding, max_out) {
                Err(GrpcMessageError::Decompress { .. }) => {
                    read_capped(flate2::read::DeflateDecoder::new(body), encoding, max_out)
                }
                other => other,
            }
        }
        GrpcEncoding::Zstd => match zstd::stream::read::Decoder::new(body) {
            Ok(decoder) => read_capped(decoder, encoding, max_out),
            Err(err) => Err(GrpcMessageError::Decompress {
                encoding: "zstd".into(),
                reason: err.to_string(),
            }),
        },
    }
}

fn read_capped(
    reader: impl Read,
    encoding: &GrpcEncoding,
    max_out: usize,
) -> Result<Vec<u8>, GrpcMessageError> {
    let mut out = Vec::new();
    let limit = (max_out as u64).saturating_add(1);
    match reader.take(limit).read_to_end(&mut out) {
        Ok(_) if out.len() > max_out => Err(GrpcMessageError::DecompressedTooLarge {
            encoding: encoding.name().to_string(),
            cap: max_out,
        }),
        Ok(_) => Ok(out),
        Err(err) => Err(GrpcMessageError::Decompress {
            encoding: encoding.name().to_string(),
            reason: err.to_string(),
        }),
    }
}
