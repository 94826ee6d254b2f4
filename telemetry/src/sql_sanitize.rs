//! `db.query.text` without values: SQL literals (strings, numbers, dollar-quoted bodies) become
//! `?`, as the OpenTelemetry database conventions ask for non-parameterized queries. Comments
//! are dropped (they can carry values too). The result is capped in length.

/// Longest sanitized text kept, in bytes (cut on a char boundary, marked with `…`).
pub(crate) const MAX_QUERY_TEXT: usize = 2048;

/// Replace every literal in `sql` with `?`. Never fails: unterminated literals are replaced to
/// the end of the text.
pub(crate) fn sanitize_sql(sql: &str) -> String {
    let chars: Vec<char> = sql.chars().collect();
    let mut out = String::with_capacity(sql.len().min(MAX_QUERY_TEXT + 4));
    let mut i = 0;
    while i < chars.len() && out.len() < MAX_QUERY_TEXT {
        let c = chars[i];
        let prev_is_word = i > 0 && is_word(chars[i - 1]);
        match c {
            // 'string', E'..', N'..', X'..', B'..' (the prefix letter was already copied: drop it)
            '\'' => {
                if prev_is_word
                    && i >= 1
                    && matches!(chars[i - 1], 'e' | 'E' | 'n' | 'N' | 'x' | 'X' | 'b' | 'B')
                    && (i < 2 || !is_word(chars[i - 2]))
                {
                    out.pop();
                }
                i = skip_quoted(&chars, i + 1, '\'');
                out.push('?');
            }
            // "identifier": kept verbatim
            '"' => {
                let end = skip_quoted(&chars, i + 1, '"');
                out.extend(&chars[i..end.min(chars.len())]);
                i = end;
            }
            // $$ body $$ or $tag$ body $tag$ (but not $1 placeholders)
            '$' if !prev_is_word => {
                if let Some((tag_end, tag)) = dollar_tag(&chars, i) {
                    i = skip_dollar_body(&chars, tag_end, &tag);
                    out.push('?');
                } else {
                    out.push(c);
                    i += 1;
                    while i < chars.len() && chars[i].is_ascii_digit() {
                        out.push(chars[i]);
                        i += 1;
                    }
                }
            }
            '-' if chars.get(i + 1) == Some(&'-') => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '/' if chars.get(i + 1) == Some(&'*') => {
                i += 2;
                while i < chars.len() && !(chars[i] == '*' && chars.get(i + 1) == Some(&'/')) {
                    i += 1;
                }
                i = (i + 2).min(chars.len());
                out.push(' ');
            }
            c if c.is_ascii_digit() && !prev_is_word => {
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.' || chars[i] == '_') {
                    i += 1;
                }
                out.push('?');
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    if i < chars.len() {
        while out.len() > MAX_QUERY_TEXT {
            out.pop();
        }
        out.push('…');
    }
    out
}

fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Index just past the closing `quote` (doubled quotes are escapes; backslash escapes too).
fn skip_quoted(chars: &[char], mut i: usize, quote: char) -> usize {
    while i < chars.len() {
        if chars[i] == '\\' {
            i += 2;
            continue;
        }
        if chars[i] == quote {
            if chars.get(i + 1) == Some(&quote) {
                i += 2;
                continue;
            }
            return i + 1;
        }
        i += 1;
    }
    chars.len()
}

/// `$tag$` starting at `i`: (index after it, the tag text including dollars).
fn dollar_tag(chars: &[char], i: usize) -> Option<(usize, Vec<char>)> {
    let mut j = i + 1;
    while j < chars.len() && (chars[j].is_alphanumeric() || chars[j] == '_') {
        if j == i + 1 && chars[j].is_ascii_digit() {
            return None;
        }
        j += 1;
    }
    (chars.get(j) == Some(&'$')).then(|| (j + 1, chars[i..=j].to_vec()))
}

fn skip_dollar_body(chars: &[char], mut i: usize, tag: &[char]) -> usize {
    while i < chars.len() {
        if chars[i..].starts_with(tag) {
            return i + tag.len();
        }
        i += 1;
    }
    chars.len()
}

/// The statement's first keyword, upper-cased (SELECT, INSERT, ...), for `db.operation.name`.
pub(crate) fn operation_name(sql: &str) -> Option<String> {
    let word: String = sql.trim_start().chars().take_while(|c| c.is_ascii_alphabetic()).collect();
    (!word.is_empty()).then(|| word.to_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_string_and_number_literals() {
        assert_eq!(
            sanitize_sql("SELECT name, email FROM customers WHERE email = 'bob@example.com' AND id > 42 LIMIT 10"),
            "SELECT name, email FROM customers WHERE email = ? AND id > ? LIMIT ?"
        );
    }

    #[test]
    fn keeps_identifiers_placeholders_and_names_with_digits() {
        assert_eq!(
            sanitize_sql("SELECT \"col1\", t2.x FROM t2 WHERE a = $1 AND b = E'it''s' -- ssn 123-45-6789\n"),
            "SELECT \"col1\", t2.x FROM t2 WHERE a = $1 AND b = ? \n"
        );
    }

    #[test]
    fn handles_dollar_quotes_comments_and_unterminated() {
        assert_eq!(sanitize_sql("DO $x$ secret $x$; /* 555-1234 */ SELECT 1.5e3"), "DO ?;   SELECT ?");
        assert_eq!(sanitize_sql("SELECT 'unterminated"), "SELECT ?");
        assert_eq!(sanitize_sql("INSERT INTO t VALUES (X'ff', 'it\\'s')"), "INSERT INTO t VALUES (?, ?)");
    }

    #[test]
    fn caps_length() {
        let long = format!("SELECT {} FROM t", "a, ".repeat(2000));
        let s = sanitize_sql(&long);
        assert!(s.len() <= MAX_QUERY_TEXT + '…'.len_utf8());
        assert!(s.ends_with('…'));
    }

    #[test]
    fn operation() {
        assert_eq!(operation_name("  select * from t").as_deref(), Some("SELECT"));
        assert_eq!(operation_name("(").as_deref(), None);
    }
}
