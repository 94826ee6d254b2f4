//! Service and method from a gRPC `:path` (`/package.Service/Method`).

use super::error::GrpcCallError;

/// A gRPC method name split from `:path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrpcPath {
    /// Full service name, e.g. `qdrant.Points` (package included, if any).
    pub service: String,
    /// Method name, e.g. `Search`.
    pub method: String,
}

impl GrpcPath {
    /// Split `/package.Service/Method`. A query string or fragment is not gRPC and is refused.
    pub fn parse(path: &str) -> Result<Self, GrpcCallError> {
        let bad = || GrpcCallError::BadPath(path.chars().take(256).collect());
        let rest = path.strip_prefix('/').ok_or_else(bad)?;
        let (service, method) = rest.split_once('/').ok_or_else(bad)?;
        let valid = |part: &str| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-')
        };
        if !valid(service) || !valid(method) || service.starts_with('.') || service.ends_with('.') {
            return Err(bad());
        }
        Ok(GrpcPath {
            service: service.to_string(),
            method: method.to_string(),
        })
    }

    /// The package part of the service (`qdrant` of `qdrant.Points`), if any.
    pub fn package(&self) -> Option<&str> {
        self.service.rsplit_once('.').map(|(package, _)| package)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_service_and_method() {
        let path = GrpcPath::parse("/qdrant.Points/Search");
        assert_eq!(
            path,
            Ok(GrpcPath {
                service: "qdrant.Points".into(),
                method: "Search".into()
            })
        );
        assert_eq!(
            path.ok().and_then(|p| p.package().map(String::from)),
            Some("qdrant".into())
        );
        let bare = GrpcPath::parse("/StreamingService/ClientStreamRPC");
        assert_eq!(
            bare.as_ref().map(|p| p.service.as_str()),
            Ok("StreamingService")
        );
        assert_eq!(bare.ok().and_then(|p| p.package().map(String::from)), None);
    }

    #[test]
    fn refuses_what_is_not_a_method_path() {
        for bad in [
            "",
            "/",
            "//",
            "/a",
            "/a/",
            "//m",
            "qdrant.Points/Search",
            "/a/b/c",
            "/a/b?x=1",
            "/.a/b",
            "/a b/c",
        ] {
            assert!(
                matches!(GrpcPath::parse(bad), Err(GrpcCallError::BadPath(_))),
                "{bad:?}"
            );
        }
    }
}
