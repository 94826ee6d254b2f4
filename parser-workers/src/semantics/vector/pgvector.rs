//! pgvector in SQL: nearest-neighbour queries (`<->`, `<=>`, `<#>`, `<+>`, `<~>`, `<%>` and the
//! distance functions) with `ORDER BY ... LIMIT k`, vector literals (`'[0.1,0.2]'`, dimension),
//! inserts and updates of vectors (upserts), `CREATE EXTENSION vector`, `CREATE INDEX ... USING
//! hnsw|ivfflat`, and tables with `vector(n)` columns. String literals and comments are set
//! aside first, so an operator inside a string does not count.

use super::{Draft, VectorRecognition};

const SYSTEM: &str = "postgresql";
/// Statements longer than this are read only up to here.
const MAX_STATEMENT_BYTES: usize = 1024 * 1024;
const DISTANCE_OPERATORS: &[&str] = &["<->", "<=>", "<#>", "<+>", "<~>", "<%>"];
const DISTANCE_FUNCTIONS: &[&str] = &[
    "l2_distance(",
    "cosine_distance(",
    "inner_product(",
    "l1_distance(",
    "hamming_distance(",
    "jaccard_distance(",
];
const VECTOR_TYPES: &[&str] = &["vector", "halfvec", "sparsevec", "bit"];

/// A SQL statement that uses pgvector, with the rows it returned or touched when known.
pub fn recognise_sql(statement: &str, rows: Option<i64>) -> Option<VectorRecognition> {
    let statement = cut(statement, MAX_STATEMENT_BYTES);
    let scanned = Scanned::of(statement);
    let code = scanned.code.as_str();
    let first = code.split_whitespace().next().unwrap_or("").to_string();
    let vector_literal = scanned.literals.iter().find_map(|l| vector_literal_len(l));
    let vector_cast = VECTOR_TYPES
        .iter()
        .filter(|t| **t != "bit")
        .any(|t| code.contains(&format!("::{t}")));
    let has_distance = DISTANCE_OPERATORS.iter().any(|op| code.contains(op))
        || DISTANCE_FUNCTIONS.iter().any(|f| code.contains(f));
    let postgis = code.contains("st_") || code.contains("geometry") || code.contains("geography");
    let (operation, collection) = if code.contains("create extension") && has_word(code, "vector") {
        ("create_extension", None)
    } else if code.starts_with("create")
        && code.contains(" index ")
        && (code.contains("using hnsw") || code.contains("using ivfflat"))
    {
        ("create_index", ident_after(code, " on "))
    } else if code.starts_with("create table") && vector_column(code).is_some() {
        (
            "create_collection",
            ident_after(code, "create table")
                .map(|t| t.trim_start_matches("if not exists ").to_string()),
        )
    } else if code.starts_with("alter table") && vector_column(code).is_some() {
        ("update_collection", ident_after(code, "alter table"))
    } else if has_distance && !(postgis && vector_literal.is_none() && !vector_cast) {
        ("query", ident_after(code, " from "))
    } else if first == "insert" && (vector_literal.is_some() || vector_cast) {
        ("upsert", ident_after(code, "insert into"))
    } else if first == "update" && (vector_literal.is_some() || vector_cast) {
        ("update", ident_after(code, "update"))
    } else {
        return None;
    };
    let mut draft = Draft::new(SYSTEM, operation, first.to_ascii_uppercase());
    draft.collection = collection.map(|c| c.trim_start_matches("only ").to_string());
    draft.dimension = vector_literal.or_else(|| vector_column(code));
    if operation == "query" {
        draft.top_k = limit(code);
        draft.filter_present = has_word(code, "where");
        draft.results = rows;
    } else if matches!(operation, "upsert" | "update") {
        draft.results = rows;
    }
    Some(draft.finish())
}

fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The statement with literals replaced by `?` and comments removed (lower-cased), and the
/// literals' contents.
struct Scanned {
    code: String,
    literals: Vec<String>,
}

impl Scanned {
    fn of(sql: &str) -> Self {
        let mut code = String::with_capacity(sql.len());
        let mut literals = Vec::new();
        let mut chars = sql.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            match c {
                '\'' => {
                    let mut lit = String::new();
                    while let Some((_, c)) = chars.next() {
                        if c == '\'' {
                            if chars.peek().is_some_and(|(_, n)| *n == '\'') {
                                chars.next();
                                lit.push('\'');
                                continue;
                            }
                            break;
                        }
                        lit.push(c);
                    }
                    literals.push(lit);
                    code.push('?');
                }
                '-' if sql[i..].starts_with("--") => {
                    for (_, c) in chars.by_ref() {
                        if c == '\n' {
                            break;
                        }
                    }
                    code.push(' ');
                }
                '/' if sql[i..].starts_with("/*") => {
                    chars.next();
                    let mut prev = ' ';
                    for (_, c) in chars.by_ref() {
                        if prev == '*' && c == '/' {
                            break;
                        }
                        prev = c;
                    }
                    code.push(' ');
                }
                '$' if dollar_tag(&sql[i..]).is_some() => {
                    let tag = dollar_tag(&sql[i..]).unwrap_or("$$");
                    let body_start = i + tag.len();
                    let (lit, end) = match sql[body_start..].find(tag) {
                        Some(e) => (&sql[body_start..body_start + e], body_start + e + tag.len()),
                        None => (&sql[body_start..], sql.len()),
                    };
                    literals.push(lit.to_string());
                    code.push('?');
                    while chars.peek().is_some_and(|(j, _)| *j < end) {
                        chars.next();
                    }
                }
                c if c.is_whitespace() => {
                    if !code.ends_with(' ') {
                        code.push(' ');
                    }
                }
                c => code.extend(c.to_lowercase()),
            }
        }
        Scanned {
            code: code.trim().to_string(),
            literals,
        }
    }
}

/// `$$` or `$tag$` at the start of `s`.
fn dollar_tag(s: &str) -> Option<&str> {
    let rest = s.strip_prefix('$')?;
    let end = rest.find('$')?;
    let tag = &rest[..end];
    if tag.chars().all(|c| c.is_alphanumeric() || c == '_')
        && !tag.starts_with(|c: char| c.is_ascii_digit())
    {
        Some(&s[..end + 2])
    } else {
        None
    }
}

/// `[0.1, 0.2, 0.3]` -> 3 (numbers only).
fn vector_literal_len(lit: &str) -> Option<i32> {
    let inner = lit.trim().strip_prefix('[')?.strip_suffix(']')?;
    let items: Vec<&str> = inner.split(',').map(str::trim).collect();
    if items.is_empty()
        || !items
            .iter()
            .all(|x| !x.is_empty() && x.parse::<f64>().is_ok())
    {
        return None;
    }
    i32::try_from(items.len()).ok()
}

/// The `n` of the first `vector(n)` (or halfvec/sparsevec/bit) column type.
fn vector_column(code: &str) -> Option<i32> {
    VECTOR_TYPES.iter().find_map(|t| {
        code.match_indices(&format!("{t}(")).find_map(|(i, m)| {
            let before_ok = code[..i]
                .chars()
                .next_back()
                .is_none_or(|c| c == ' ' || c == ':');
            let rest = &code[i + m.len()..];
            let end = rest.find(')')?;
            before_ok.then(|| rest[..end].trim().parse().ok()).flatten()
        })
    })
}

fn has_word(code: &str, word: &str) -> bool {
    code.match_indices(word).any(|(i, _)| {
        let before = code[..i].chars().next_back();
        let after = code[i + word.len()..].chars().next();
        before.is_none_or(|c| !c.is_alphanumeric() && c != '_')
            && after.is_none_or(|c| !c.is_alphanumeric() && c != '_')
    })
}

/// The identifier (possibly `schema.table`, quotes dropped) after the first `keyword`.
fn ident_after(code: &str, keyword: &str) -> Option<String> {
    let at = code.find(keyword)? + keyword.len();
    let mut rest = code[at..].trim_start();
    for skip in ["if not exists ", "only ", "concurrently "] {
        rest = rest.strip_prefix(skip).unwrap_or(rest);
    }
    let end = rest
        .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '.' || c == '"'))
        .unwrap_or(rest.len());
    let name = rest[..end].replace('"', "");
    Some(name).filter(|n| !n.is_empty() && n != "(")
}

/// The last `limit n` with a number.
fn limit(code: &str) -> Option<i64> {
    let at = code.rfind("limit ")? + "limit ".len();
    let rest = &code[at..];
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_neighbour_query() {
        let r = recognise_sql(
            "SELECT id, content FROM documents WHERE tenant = 'acme <-> x' ORDER BY embedding <=> '[0.1,0.2,0.3]' LIMIT 5",
            Some(5),
        )
        .unwrap();
        assert_eq!(r.op.system, "postgresql");
        assert_eq!(r.op.operation, "query");
        assert_eq!(r.op.collection.as_deref(), Some("documents"));
        assert_eq!(r.op.top_k, Some(5));
        assert_eq!(r.op.dimension, Some(3));
        assert!(r.op.filter_present);
        assert_eq!(r.op.results, Some(5));
        assert!(
            r.attributes
                .contains(&("db.operation.name".into(), "SELECT".into()))
        );
    }

    #[test]
    fn operators_inside_strings_and_comments_do_not_count() {
        assert!(recognise_sql("SELECT '<->' AS arrow -- <=> here\nFROM t", None).is_none());
        assert!(recognise_sql("SELECT * FROM users WHERE id = 1", Some(1)).is_none());
        assert!(recognise_sql("INSERT INTO users (name) VALUES ('[1,2]x')", None).is_none());
    }

    #[test]
    fn ddl_and_inserts() {
        let r = recognise_sql("CREATE EXTENSION IF NOT EXISTS vector", None).unwrap();
        assert_eq!(r.op.operation, "create_extension");
        let r = recognise_sql(
            "CREATE INDEX ON items USING hnsw (embedding vector_l2_ops)",
            None,
        )
        .unwrap();
        assert_eq!(
            (r.op.operation.as_str(), r.op.collection.as_deref()),
            ("create_index", Some("items"))
        );
        let r = recognise_sql(
            "CREATE TABLE IF NOT EXISTS items (id bigserial PRIMARY KEY, embedding vector(1536))",
            None,
        )
        .unwrap();
        assert_eq!(
            (
                r.op.operation.as_str(),
                r.op.collection.as_deref(),
                r.op.dimension
            ),
            ("create_collection", Some("items"), Some(1536))
        );
        let r = recognise_sql(
            "INSERT INTO items (embedding) VALUES ('[1,2,3]'), ('[4,5,6]')",
            Some(2),
        )
        .unwrap();
        assert_eq!(
            (r.op.operation.as_str(), r.op.dimension, r.op.results),
            ("upsert", Some(3), Some(2))
        );
        let r = recognise_sql(
            "INSERT INTO public.items (content, embedding) VALUES ($1, $2::vector)",
            Some(1),
        )
        .unwrap();
        assert_eq!(r.op.collection.as_deref(), Some("public.items"));
        let r = recognise_sql(
            "SELECT * FROM items ORDER BY embedding <-> $1 LIMIT $2",
            None,
        )
        .unwrap();
        assert_eq!(
            (r.op.top_k, r.op.dimension, r.op.filter_present),
            (None, None, false)
        );
    }
}
