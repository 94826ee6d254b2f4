//! Split the text of a simple query ('Q') into its statements at top-level semicolons, as the
//! server runs them: semicolons inside quoted strings, quoted identifiers, dollar-quoted bodies,
//! comments and parentheses do not split, nor do those of a `BEGIN ... END` body of
//! `CREATE [OR REPLACE] FUNCTION|PROCEDURE` (psql's lexer uses the same rule); pieces holding
//! only blanks and comments are not statements (the server runs nothing for them). One pass
//! over the bytes, at most `max` ranges kept.

use std::ops::Range;

/// Byte ranges of the statements in `sql` (blanks and comments around them trimmed, the `;`
/// left out), at most `max`: past it, the last range runs to the end of the text.
pub fn split_statements(sql: &str, max: usize) -> Vec<Range<usize>> {
    let bytes = sql.as_bytes();
    let max = max.max(1);
    let mut out: Vec<Range<usize>> = Vec::new();
    // Whether the current piece holds anything besides blanks and comments, and where.
    let mut first_token: Option<usize> = None;
    let mut last_token_end = 0usize;
    let mut nesting = Nesting::default();
    let mut i = 0usize;
    while i < bytes.len() {
        let b = bytes.get(i).copied().unwrap_or(0);
        let next = bytes.get(i + 1).copied();
        let token_start = i;
        match b {
            b';' if out.len() + 1 < max && nesting.at_top() => {
                if let Some(first) = first_token.take() {
                    out.push(first..last_token_end);
                }
                nesting = Nesting::default();
                i += 1;
                continue;
            }
            b'(' => {
                nesting.parens += 1;
                i += 1;
            }
            b')' => {
                nesting.parens = nesting.parens.saturating_sub(1);
                i += 1;
            }
            b if b.is_ascii_alphabetic() || b == b'_' || b >= 0x80 => {
                let len = bytes
                    .get(i..)
                    .unwrap_or_default()
                    .iter()
                    .take_while(|c| {
                        c.is_ascii_alphanumeric() || **c == b'_' || **c == b'$' || **c >= 0x80
                    })
                    .count();
                nesting.word(bytes.get(i..i + len).unwrap_or_default());
                i += len;
            }
            b'-' if next == Some(b'-') => {
                i = memchr::memchr(b'\n', bytes.get(i..).unwrap_or_default())
                    .map_or(bytes.len(), |n| i + n + 1);
                continue; // a comment is not a token
            }
            b'/' if next == Some(b'*') => {
                i = block_comment_end(bytes, i);
                continue;
            }
            b if b.is_ascii_whitespace() => {
                i += 1;
                continue;
            }
            b'\'' => {
                // E'...' strings take backslash escapes; standard strings only ''.
                let escapes = i > 0
                    && matches!(bytes.get(i - 1), Some(b'E' | b'e'))
                    && !bytes
                        .get(i.wrapping_sub(2))
                        .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_');
                i = quoted_end(bytes, i, b'\'', escapes);
            }
            b'"' => i = quoted_end(bytes, i, b'"', false),
            b'$' => i = dollar_quoted_end(bytes, i),
            _ => i += 1,
        }
        first_token.get_or_insert(token_start);
        last_token_end = i.min(bytes.len());
    }
    if let Some(first) = first_token {
        out.push(first..last_token_end);
    }
    out
}

/// What keeps a semicolon from ending a statement besides quotes and comments.
#[derive(Debug, Default)]
struct Nesting {
    parens: usize,
    /// Words of the statement so far, and the first letters of the first four when they are
    /// CREATE / OR / REPLACE / FUNCTION / PROCEDURE (as psql tracks them).
    words: usize,
    leading: [u8; 4],
    /// BEGIN (and CASE inside it) not yet closed by END in a routine body.
    begins: usize,
}

impl Nesting {
    fn at_top(&self) -> bool {
        self.parens == 0 && self.begins == 0
    }

    fn word(&mut self, word: &[u8]) {
        let is = |w: &str| word.eq_ignore_ascii_case(w.as_bytes());
        if let Some(slot) = self.leading.get_mut(self.words)
            && ["create", "or", "replace", "function", "procedure"]
                .into_iter()
                .any(is)
        {
            *slot = word.first().map_or(0, u8::to_ascii_lowercase);
        }
        self.words = self.words.saturating_add(1);
        let routine = matches!(
            self.leading,
            [b'c', b'f' | b'p', _, _] | [b'c', b'o', b'r', b'f' | b'p']
        );
        if !routine || self.parens > 0 {
            return;
        }
        // CASE also ends with END; it only matters inside a BEGIN.
        if is("begin") || (is("case") && self.begins > 0) {
            self.begins += 1;
        } else if is("end") {
            self.begins = self.begins.saturating_sub(1);
        }
    }
}

/// Index just past a `quote`-delimited run starting at `open` (a doubled quote stays inside;
/// with `escapes`, so does a backslash-escaped one). Unterminated: the end of the text.
fn quoted_end(bytes: &[u8], open: usize, quote: u8, escapes: bool) -> usize {
    let mut i = open + 1;
    while let Some(&b) = bytes.get(i) {
        if escapes && b == b'\\' {
            i += 2;
        } else if b == quote {
            if bytes.get(i + 1) == Some(&quote) {
                i += 2;
            } else {
                return i + 1;
            }
        } else {
            i += 1;
        }
    }
    bytes.len()
}

/// Index just past a nested `/* ... */` comment starting at `open`.
fn block_comment_end(bytes: &[u8], open: usize) -> usize {
    let mut depth = 0usize;
    let mut i = open;
    while i < bytes.len() {
        match (bytes.get(i), bytes.get(i + 1)) {
            (Some(b'/'), Some(b'*')) => {
                depth += 1;
                i += 2;
            }
            (Some(b'*'), Some(b'/')) => {
                depth = depth.saturating_sub(1);
                i += 2;
                if depth == 0 {
                    return i;
                }
            }
            _ => i += 1,
        }
    }
    bytes.len()
}

/// Index just past a `$tag$ ... $tag$` body starting at `open`; a `$` that opens no tag
/// (a parameter like `$1`, or part of a name) is one byte.
fn dollar_quoted_end(bytes: &[u8], open: usize) -> usize {
    let tag_len = bytes
        .get(open + 1..)
        .unwrap_or_default()
        .iter()
        .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_' || **b >= 0x80)
        .count();
    let tag_starts_like_name = bytes.get(open + 1).is_none_or(|b| !b.is_ascii_digit());
    let preceded_by_name = open > 0
        && bytes
            .get(open - 1)
            .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_');
    if preceded_by_name || !tag_starts_like_name || bytes.get(open + 1 + tag_len) != Some(&b'$') {
        return open + 1;
    }
    let Some(tag) = bytes.get(open..open + tag_len + 2) else {
        return bytes.len();
    };
    let body = open + tag.len();
    memchr::memmem::find(bytes.get(body..).unwrap_or_default(), tag)
        .map_or(bytes.len(), |n| body + n + tag.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(sql: &str) -> Vec<&str> {
        split_statements(sql, 64)
            .into_iter()
            .map(|r| sql.get(r).unwrap_or("?"))
            .collect()
    }

    #[test]
    fn splits_at_top_level_semicolons_only() {
        assert_eq!(
            texts("SELECT 1; UPDATE t SET a = 2 ;\n"),
            ["SELECT 1", "UPDATE t SET a = 2"]
        );
        assert_eq!(texts("SELECT 1"), ["SELECT 1"]);
        assert_eq!(
            texts("SELECT 't;x', \"a;b\" FROM t"),
            ["SELECT 't;x', \"a;b\" FROM t"]
        );
        assert_eq!(
            texts("SELECT 'it''s;'; SELECT 2"),
            ["SELECT 'it''s;'", "SELECT 2"]
        );
        assert_eq!(
            texts(r"SELECT E'a\';b'; SELECT 2"),
            [r"SELECT E'a\';b'", "SELECT 2"]
        );
        // a standard string ending in a backslash
        assert_eq!(
            texts(r"SELECT 'a\'; SELECT 2"),
            [r"SELECT 'a\'", "SELECT 2"]
        );
        assert_eq!(
            texts(
                "CREATE FUNCTION f() RETURNS int AS $body$ SELECT 1; $body$ LANGUAGE sql; SELECT f()"
            ),
            [
                "CREATE FUNCTION f() RETURNS int AS $body$ SELECT 1; $body$ LANGUAGE sql",
                "SELECT f()"
            ]
        );
        assert_eq!(
            texts("DO $$ BEGIN NULL; END $$; SELECT $1"),
            ["DO $$ BEGIN NULL; END $$", "SELECT $1"]
        );
        assert_eq!(texts("SELECT a$b; SELECT 2"), ["SELECT a$b", "SELECT 2"]);
        // a SQL-standard routine body, with CASE inside it; parentheses
        let atomic = "CREATE OR REPLACE FUNCTION f(x int) RETURNS int LANGUAGE sql BEGIN ATOMIC \
                      SELECT CASE WHEN x > 0 THEN 1 ELSE 0 END; SELECT 2; END";
        assert_eq!(
            texts(&format!("{atomic}; BEGIN; END;")),
            [atomic, "BEGIN", "END"]
        );
        assert_eq!(
            texts("CREATE PROCEDURE p() BEGIN ATOMIC INSERT INTO t VALUES (1); END; CALL p()"),
            [
                "CREATE PROCEDURE p() BEGIN ATOMIC INSERT INTO t VALUES (1); END",
                "CALL p()"
            ]
        );
        assert_eq!(
            texts("SELECT (1; 2); SELECT 3"),
            ["SELECT (1; 2)", "SELECT 3"]
        );
        assert_eq!(texts("SELECT 1); SELECT 2"), ["SELECT 1)", "SELECT 2"]);
        assert_eq!(
            texts(
                "-- lead; comment\nSELECT /* in ; /* nested; */ still */ 1 /* end */; ; -- tail;\n"
            ),
            ["SELECT /* in ; /* nested; */ still */ 1"]
        );
        assert!(texts("  ;\n; -- only a comment").is_empty());
        assert!(texts("").is_empty());
        // unterminated quotes run to the end
        assert_eq!(texts("SELECT 'a; SELECT 2"), ["SELECT 'a; SELECT 2"]);
        assert_eq!(texts("SELECT $x$ a; b"), ["SELECT $x$ a; b"]);
    }

    #[test]
    fn the_count_is_bounded() {
        let sql = "SELECT 1; SELECT 2; SELECT 3; SELECT 4";
        let r = split_statements(sql, 2);
        assert_eq!(r.len(), 2);
        assert_eq!(sql.get(r[1].clone()), Some("SELECT 2; SELECT 3; SELECT 4"));
        assert_eq!(split_statements(sql, 0).len(), 1);
    }
}
