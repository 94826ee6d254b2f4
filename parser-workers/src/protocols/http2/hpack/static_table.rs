//! The HPACK static table, RFC 7541 Appendix A: 61 fixed entries, indices 1 to 61.

/// `(name, value)` for indices 1..=61 (array position = index - 1).
pub const STATIC_TABLE: [(&str, &str); 61] = [
    (":authority", ""),
    (":method", "GET"),
    (":method", "POST"),
    (":path", "/"),
    (":path", "/index.html"),
    (":scheme", "http"),
    (":scheme", "https"),
    (":status", "200"),
    (":status", "204"),
    (":status", "206"),
    (":status", "304"),
    (":status", "400"),
    (":status", "404"),
    (":status", "500"),
    ("accept-charset", ""),
    ("accept-encoding", "gzip, deflate"),
    ("accept-language", ""),
    ("accept-ranges", ""),
    ("accept", ""),
    ("access-control-allow-origin", ""),
    ("age", ""),
    ("allow", ""),
    ("authorization", ""),
    ("cache-control", ""),
    ("content-disposition", ""),
    ("content-encoding", ""),
    ("content-language", ""),
    ("content-length", ""),
    ("content-location", ""),
    ("content-range", ""),
    ("content-type", ""),
    ("cookie", ""),
    ("date", ""),
    ("etag", ""),
    ("expect", ""),
    ("expires", ""),
    ("from", ""),
    ("host", ""),
    ("if-match", ""),
    ("if-modified-since", ""),
    ("if-none-match", ""),
    ("if-range", ""),
    ("if-unmodified-since", ""),
    ("last-modified", ""),
    ("link", ""),
    ("location", ""),
    ("max-forwards", ""),
    ("proxy-authenticate", ""),
    ("proxy-authorization", ""),
    ("range", ""),
    ("referer", ""),
    ("refresh", ""),
    ("retry-after", ""),
    ("server", ""),
    ("set-cookie", ""),
    ("strict-transport-security", ""),
    ("transfer-encoding", ""),
    ("user-agent", ""),
    ("vary", ""),
    ("via", ""),
    ("www-authenticate", ""),
];

/// The entry at a 1-based static index, if there is one.
pub fn static_entry(index: usize) -> Option<(&'static str, &'static str)> {
    index
        .checked_sub(1)
        .and_then(|i| STATIC_TABLE.get(i))
        .copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spot_checks_from_appendix_a() {
        assert_eq!(static_entry(1), Some((":authority", "")));
        assert_eq!(static_entry(8), Some((":status", "200")));
        assert_eq!(static_entry(16), Some(("accept-encoding", "gzip, deflate")));
        assert_eq!(static_entry(23), Some(("authorization", "")));
        assert_eq!(static_entry(32), Some(("cookie", "")));
        assert_eq!(static_entry(55), Some(("set-cookie", "")));
        assert_eq!(static_entry(61), Some(("www-authenticate", "")));
        assert_eq!(static_entry(0), None);
        assert_eq!(static_entry(62), None);
    }
}
