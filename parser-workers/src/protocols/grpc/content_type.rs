//! gRPC `content-type`: whether an HTTP/2 exchange is gRPC at all, and how its messages are
//! serialized (`application/grpc` and `+proto` are protobuf, `+json` is JSON).

/// How the messages of one side are serialized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GrpcContentType {
    /// `application/grpc` or `application/grpc+proto` (also assumed when the header is missing).
    Proto,
    /// `application/grpc+json`.
    Json,
    /// `application/grpc+<other>`: decoded schema-less as if protobuf, marked by its name.
    Other(String),
}

impl GrpcContentType {
    /// From a `content-type` value; `None` when it is not a gRPC content type at all.
    pub fn from_header(value: &str) -> Option<Self> {
        let lower = value.trim().to_ascii_lowercase();
        let essence = lower.split(';').next().unwrap_or_default().trim();
        let rest = essence.strip_prefix("application/grpc")?;
        match rest {
            "" | "+proto" => Some(GrpcContentType::Proto),
            "+json" => Some(GrpcContentType::Json),
            other => other
                .strip_prefix('+')
                .map(|sub| GrpcContentType::Other(sub.chars().take(64).collect())),
        }
    }
}

/// Whether a `content-type` value says gRPC (`application/grpc`, `application/grpc+...`).
/// gRPC-Web (`application/grpc-web...`) is a different framing and answers false.
pub fn is_grpc_content_type(value: &str) -> bool {
    GrpcContentType::from_header(value).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_grpc_content_types() {
        assert_eq!(
            GrpcContentType::from_header("application/grpc"),
            Some(GrpcContentType::Proto)
        );
        assert_eq!(
            GrpcContentType::from_header("Application/GRPC+proto; charset=utf-8"),
            Some(GrpcContentType::Proto)
        );
        assert_eq!(
            GrpcContentType::from_header("application/grpc+json"),
            Some(GrpcContentType::Json)
        );
        assert_eq!(
            GrpcContentType::from_header("application/grpc+thrift"),
            Some(GrpcContentType::Other("thrift".into()))
        );
        for not_grpc in [
            "application/json",
            "application/grpc-web",
            "application/grpc-web+proto",
            "",
            "text/plain",
        ] {
            assert!(!is_grpc_content_type(not_grpc), "{not_grpc}");
        }
    }
}
