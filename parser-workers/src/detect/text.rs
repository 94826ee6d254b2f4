//! Byte-level helpers shared by the detectors: word boundaries that see through JSON string
//! escapes (`\n`, `\"`, `\u0040`), and the JSON-unescape pass for bodies that use `\uXXXX`.

/// Whether `b[j]` is the letter of a JSON escape (`\n`, `\t`, ...): preceded by an odd run of
/// backslashes.
pub fn is_escaped(b: &[u8], j: usize) -> bool {
    let mut k = j;
    let mut backslashes = 0usize;
    while k > 0 && b[k - 1] == b'\\' && backslashes < 64 {
        backslashes += 1;
        k -= 1;
    }
    backslashes % 2 == 1
}

/// Whether the bytes just before `j` end a JSON escape: a one-letter escape (`\n`) or a
/// `\uXXXX` sequence. Such bytes are separators, not part of the token that follows.
pub fn escape_ends_at(b: &[u8], j: usize) -> bool {
    if j == 0 {
        return false;
    }
    if b[j - 1].is_ascii_alphanumeric() && is_escaped(b, j - 1) {
        return true;
    }
    j >= 6
        && b[j - 6] == b'\\'
        && b[j - 5] == b'u'
        && b[j - 4..j].iter().all(u8::is_ascii_hexdigit)
        && !is_escaped(b, j - 6)
}

/// A byte that continues a word (ASCII letter, digit or underscore).
#[inline]
pub fn is_word(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// Whether a token may start at `j`: the byte before is not part of a word (JSON escape
/// letters such as the `n` of `\n` do not count as word bytes).
#[inline]
pub fn left_boundary(b: &[u8], j: usize) -> bool {
    j == 0 || !is_word(b[j - 1]) || escape_ends_at(b, j)
}

/// Whether a token may end at `j`: the byte at `j` is not part of a word.
#[inline]
pub fn right_boundary(b: &[u8], j: usize) -> bool {
    j >= b.len() || !is_word(b[j])
}

/// Decodes JSON string escapes (`\n`, `\"`, `\/`, `\uXXXX` with surrogate pairs) anywhere in
/// `b` into `out`; unknown or broken escapes are copied as they are. Used only when a body
/// holds `\u` escapes, which could hide an `@` or a `+` from the raw-byte scan.
pub fn json_unescape_into(b: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.reserve(b.len());
    let mut i = 0;
    while i < b.len() {
        let Some(off) = memchr::memchr(b'\\', &b[i..]) else {
            out.extend_from_slice(&b[i..]);
            break;
        };
        out.extend_from_slice(&b[i..i + off]);
        i += off;
        let Some(&e) = b.get(i + 1) else {
            out.push(b'\\');
            break;
        };
        let simple = match e {
            b'n' => Some(b'\n'),
            b't' => Some(b'\t'),
            b'r' => Some(b'\r'),
            b'b' => Some(0x08),
            b'f' => Some(0x0c),
            b'"' => Some(b'"'),
            b'/' => Some(b'/'),
            b'\\' => Some(b'\\'),
            _ => None,
        };
        if let Some(c) = simple {
            out.push(c);
            i += 2;
            continue;
        }
        if e == b'u'
            && let Some(hi) = hex4(b, i + 2)
        {
            let mut cp = u32::from(hi);
            let mut used = 6;
            if (0xD800..0xDC00).contains(&hi)
                && b.get(i + 6) == Some(&b'\\')
                && b.get(i + 7) == Some(&b'u')
                && let Some(lo) = hex4(b, i + 8)
                && (0xDC00..0xE000).contains(&lo)
            {
                cp = 0x10000 + ((cp - 0xD800) << 10) + (u32::from(lo) - 0xDC00);
                used = 12;
            }
            let ch = char::from_u32(cp).unwrap_or('\u{FFFD}');
            let mut buf = [0u8; 4];
            out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
            i += used;
            continue;
        }
        out.push(b'\\');
        i += 1;
    }
}

fn hex4(b: &[u8], at: usize) -> Option<u16> {
    let s = b.get(at..at + 4)?;
    let mut v = 0u16;
    for &c in s {
        let d = (c as char).to_digit(16)?;
        v = (v << 4) | d as u16;
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_are_boundaries() {
        let b = br#"x\nJohn"#;
        assert!(left_boundary(b, 3));
        let b = br#"a\u003cjohn"#;
        assert!(left_boundary(b, 7));
        assert!(!left_boundary(b"ab", 1));
    }

    #[test]
    fn unescape() {
        let mut out = Vec::new();
        json_unescape_into(br#"a\u0040b.com \n \ud83d\ude00 \x \"q\""#, &mut out);
        assert_eq!(String::from_utf8(out).unwrap(), "a@b.com \n \u{1F600} \\x \"q\"");
    }
}
