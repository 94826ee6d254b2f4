//! Reference tables loaded from config files in `PolicyConfig.reference_dir`:
//! `allowed_destinations` (host patterns with `*` wildcards and a category) and `agent_profiles`
//! (agent key pattern, expected tools, business hours in a time zone, expected data scope).
//! Each is read from `<name>.toml` or `<name>.csv`; a missing file is an empty table.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Int32Builder, ListBuilder, RecordBatch, StringBuilder};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use serde::Deserialize;

use crate::tables::TableError;
use crate::timezone::LocalZone;

/// A reference file that could not be read, named by its path.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ReferenceError {
    pub path: String,
    pub message: String,
}

/// One allowlisted destination pattern.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllowedDestination {
    /// Host name pattern; `*` matches any run of characters (`*.openai.com`).
    pub host: String,
    /// The step category this entry allows (`saas`, `llm`, ...); empty: every category.
    #[serde(default)]
    pub category: String,
}

/// What an agent is expected to do.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentProfile {
    /// Agent key pattern with `*` wildcards (`*/support-agent`).
    pub agent: String,
    #[serde(default)]
    pub expected_tools: Vec<String>,
    /// Local business hours, "HH:MM-HH:MM" (end exclusive; may wrap past midnight).
    #[serde(default = "default_hours")]
    pub business_hours: String,
    /// Days the hours apply, "Mon".."Sun".
    #[serde(default = "default_days")]
    pub business_days: Vec<String>,
    /// IANA zone ("Europe/Berlin") or fixed offset ("+02:00"); UTC by default.
    #[serde(default = "default_zone")]
    pub time_zone: String,
    /// Databases, tables or collections the agent is expected to read ("crm.customers").
    #[serde(default)]
    pub data_scope: Vec<String>,
}

fn default_hours() -> String {
    "00:00-24:00".into()
}

fn default_days() -> Vec<String> {
    ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"].iter().map(|d| d.to_string()).collect()
}

fn default_zone() -> String {
    "UTC".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DestinationsFile {
    #[serde(default)]
    destination: Vec<AllowedDestination>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfilesFile {
    #[serde(default)]
    profile: Vec<AgentProfile>,
}

/// The reference tables, as loaded.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReferenceData {
    pub allowed_destinations: Vec<AllowedDestination>,
    pub agent_profiles: Vec<AgentProfile>,
    /// Files read (for change detection).
    pub files: Vec<PathBuf>,
}

/// The allowlist used when no reference directory is configured (recognised SaaS APIs).
pub const BUILTIN_ALLOWED_DESTINATIONS: &str = include_str!("../reference/allowed_destinations.toml");

impl ReferenceData {
    /// The tables used when no reference directory is configured: the built-in allowlist and
    /// no agent profiles.
    pub fn builtin() -> Result<ReferenceData, ReferenceError> {
        let parsed: DestinationsFile = toml::from_str(BUILTIN_ALLOWED_DESTINATIONS)
            .map_err(|e| ReferenceError { path: "builtin:allowed_destinations.toml".into(), message: e.to_string() })?;
        Ok(ReferenceData { allowed_destinations: parsed.destination, ..Default::default() })
    }

    /// Load both tables from `dir` (missing files are empty tables).
    pub fn load(dir: &Path) -> Result<ReferenceData, ReferenceError> {
        let mut out = ReferenceData::default();
        if let Some(path) = find(dir, "allowed_destinations") {
            out.allowed_destinations = load_destinations(&path)?;
            out.files.push(path);
        }
        if let Some(path) = find(dir, "agent_profiles") {
            out.agent_profiles = load_profiles(&path)?;
            out.files.push(path);
        }
        Ok(out)
    }

    /// `allowed_destinations`: host_pattern, host_like (the SQL LIKE form), category.
    pub fn destinations_batch(&self) -> Result<RecordBatch, TableError> {
        let mut pattern = StringBuilder::new();
        let mut like = StringBuilder::new();
        let mut category = StringBuilder::new();
        for d in &self.allowed_destinations {
            pattern.append_value(&d.host);
            like.append_value(wildcard_to_like(&d.host.to_ascii_lowercase()));
            category.append_value(&d.category);
        }
        let cols: Vec<ArrayRef> = vec![Arc::new(pattern.finish()), Arc::new(like.finish()), Arc::new(category.finish())];
        RecordBatch::try_new(destinations_schema(), cols).map_err(|source| TableError::Arrow { table: "allowed_destinations", source })
    }

    /// `agent_profiles` (see `profiles_schema`).
    pub fn profiles_batch(&self) -> Result<RecordBatch, TableError> {
        let mut pattern = StringBuilder::new();
        let mut like = StringBuilder::new();
        let mut tools = ListBuilder::new(StringBuilder::new());
        let mut start = Int32Builder::new();
        let mut end = Int32Builder::new();
        let mut days = ListBuilder::new(Int32Builder::new());
        let mut zone = StringBuilder::new();
        let mut scope = ListBuilder::new(StringBuilder::new());
        for p in &self.agent_profiles {
            pattern.append_value(&p.agent);
            like.append_value(wildcard_to_like(&p.agent));
            for t in &p.expected_tools {
                tools.values().append_value(t);
            }
            tools.append(true);
            // Validated at load; a default keeps this total.
            let (s, e) = parse_hours(&p.business_hours).unwrap_or((0, 24 * 60));
            start.append_value(s);
            end.append_value(e);
            for d in &p.business_days {
                if let Some(n) = weekday_number(d) {
                    days.values().append_value(n);
                }
            }
            days.append(true);
            zone.append_value(&p.time_zone);
            for s in &p.data_scope {
                scope.values().append_value(s);
            }
            scope.append(true);
        }
        let cols: Vec<ArrayRef> = vec![
            Arc::new(pattern.finish()),
            Arc::new(like.finish()),
            Arc::new(tools.finish()),
            Arc::new(start.finish()),
            Arc::new(end.finish()),
            Arc::new(days.finish()),
            Arc::new(zone.finish()),
            Arc::new(scope.finish()),
        ];
        RecordBatch::try_new(profiles_schema(), cols).map_err(|source| TableError::Arrow { table: "agent_profiles", source })
    }
}

/// Schema of `allowed_destinations`.
pub fn destinations_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("host_pattern", DataType::Utf8, false),
        Field::new("host_like", DataType::Utf8, false),
        Field::new("category", DataType::Utf8, false),
    ]))
}

/// Schema of `agent_profiles`. Business hours are minutes of the local day, end exclusive.
pub fn profiles_schema() -> SchemaRef {
    let list = |t: DataType| DataType::List(Arc::new(Field::new("item", t, true)));
    Arc::new(Schema::new(vec![
        Field::new("agent_pattern", DataType::Utf8, false),
        Field::new("agent_like", DataType::Utf8, false),
        Field::new("expected_tools", list(DataType::Utf8), false),
        Field::new("business_start_minute", DataType::Int32, false),
        Field::new("business_end_minute", DataType::Int32, false),
        Field::new("business_days", list(DataType::Int32), false),
        Field::new("time_zone", DataType::Utf8, false),
        Field::new("data_scope", list(DataType::Utf8), false),
    ]))
}

fn find(dir: &Path, name: &str) -> Option<PathBuf> {
    ["toml", "csv"].iter().map(|ext| dir.join(format!("{name}.{ext}"))).find(|p| p.is_file())
}

fn read(path: &Path) -> Result<String, ReferenceError> {
    std::fs::read_to_string(path).map_err(|e| ReferenceError { path: path.display().to_string(), message: e.to_string() })
}

fn bad(path: &Path, message: impl Into<String>) -> ReferenceError {
    ReferenceError { path: path.display().to_string(), message: message.into() }
}

fn is_csv(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "csv")
}

/// Rows of a simple CSV (header first, no quoting; blank and `#` lines skipped) as
/// (line number, header -> value) pairs.
fn csv_rows(path: &Path, text: &str) -> Result<Vec<(usize, Vec<(String, String)>)>, ReferenceError> {
    let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'));
    let Some((_, header)) = lines.next() else { return Ok(Vec::new()) };
    let names: Vec<String> = header.split(',').map(|h| h.trim().to_string()).collect();
    let mut rows = Vec::new();
    for (n, line) in lines {
        let values: Vec<&str> = line.split(',').map(str::trim).collect();
        if values.len() != names.len() {
            return Err(bad(path, format!("line {}: {} fields, the header has {}", n + 1, values.len(), names.len())));
        }
        rows.push((n + 1, names.iter().cloned().zip(values.into_iter().map(String::from)).collect()));
    }
    Ok(rows)
}

fn semicolon_list(v: &str) -> Vec<String> {
    v.split(';').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect()
}

fn load_destinations(path: &Path) -> Result<Vec<AllowedDestination>, ReferenceError> {
    let text = read(path)?;
    let out = if is_csv(path) {
        let mut out = Vec::new();
        for (n, row) in csv_rows(path, &text)? {
            let mut d = AllowedDestination { host: String::new(), category: String::new() };
            for (k, v) in row {
                match k.as_str() {
                    "host" => d.host = v,
                    "category" => d.category = v,
                    other => return Err(bad(path, format!("line {n}: unknown column {other:?} (host, category)"))),
                }
            }
            out.push(d);
        }
        out
    } else {
        toml::from_str::<DestinationsFile>(&text).map_err(|e| bad(path, e.to_string()))?.destination
    };
    if let Some(d) = out.iter().find(|d| d.host.trim().is_empty()) {
        return Err(bad(path, format!("a destination has an empty host pattern: {d:?}")));
    }
    Ok(out)
}

fn load_profiles(path: &Path) -> Result<Vec<AgentProfile>, ReferenceError> {
    let text = read(path)?;
    let out = if is_csv(path) {
        let mut out = Vec::new();
        for (n, row) in csv_rows(path, &text)? {
            let mut p = AgentProfile {
                agent: String::new(),
                expected_tools: Vec::new(),
                business_hours: default_hours(),
                business_days: default_days(),
                time_zone: default_zone(),
                data_scope: Vec::new(),
            };
            for (k, v) in row {
                match k.as_str() {
                    "agent" => p.agent = v,
                    "expected_tools" => p.expected_tools = semicolon_list(&v),
                    "business_hours" if !v.is_empty() => p.business_hours = v,
                    "business_days" if !v.is_empty() => p.business_days = semicolon_list(&v),
                    "time_zone" if !v.is_empty() => p.time_zone = v,
                    "data_scope" => p.data_scope = semicolon_list(&v),
                    "business_hours" | "business_days" | "time_zone" => {}
                    other => return Err(bad(path, format!("line {n}: unknown column {other:?}"))),
                }
            }
            out.push(p);
        }
        out
    } else {
        toml::from_str::<ProfilesFile>(&text).map_err(|e| bad(path, e.to_string()))?.profile
    };
    for p in &out {
        if p.agent.trim().is_empty() {
            return Err(bad(path, "a profile has an empty agent pattern"));
        }
        parse_hours(&p.business_hours).map_err(|m| bad(path, format!("profile {:?}: business_hours: {m}", p.agent)))?;
        for d in &p.business_days {
            if weekday_number(d).is_none() {
                return Err(bad(path, format!("profile {:?}: unknown day {d:?} (Mon..Sun)", p.agent)));
            }
        }
        LocalZone::parse(&p.time_zone).map_err(|m| bad(path, format!("profile {:?}: time_zone: {m}", p.agent)))?;
    }
    Ok(out)
}

/// `*` wildcards to a SQL LIKE pattern (`%` and `_` in the input are escaped).
pub fn wildcard_to_like(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 4);
    for c in pattern.chars() {
        match c {
            '*' => out.push('%'),
            '%' | '_' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

/// "09:00-18:00" -> (540, 1080) minutes of the day.
pub fn parse_hours(text: &str) -> Result<(i32, i32), String> {
    let (a, b) = text.split_once('-').ok_or_else(|| format!("{text:?} is not \"HH:MM-HH:MM\""))?;
    let minute = |t: &str| -> Result<i32, String> {
        let (h, m) = t.trim().split_once(':').ok_or_else(|| format!("{t:?} is not HH:MM"))?;
        let h: i32 = h.parse().map_err(|_| format!("bad hour in {t:?}"))?;
        let m: i32 = m.parse().map_err(|_| format!("bad minute in {t:?}"))?;
        if !(0..=24).contains(&h) || !(0..60).contains(&m) || (h == 24 && m != 0) {
            return Err(format!("{t:?} is not a time of day"));
        }
        Ok(h * 60 + m)
    };
    Ok((minute(a)?, minute(b)?))
}

/// ISO weekday number (Mon = 1 .. Sun = 7).
pub fn weekday_number(day: &str) -> Option<i32> {
    let d = day.trim().to_ascii_lowercase();
    let n = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"].iter().position(|p| d.starts_with(p))?;
    i32::try_from(n + 1).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_allowlist_parses() {
        let r = ReferenceData::builtin().unwrap();
        assert!(r.allowed_destinations.iter().any(|d| d.host == "*" && d.category == "saas"));
    }

    #[test]
    fn like_patterns() {
        assert_eq!(wildcard_to_like("*.openai.com"), "%.openai.com");
        assert_eq!(wildcard_to_like("a_b"), "a\\_b");
    }

    #[test]
    fn hours_and_days() {
        assert_eq!(parse_hours("09:00-18:30").unwrap(), (540, 1110));
        assert!(parse_hours("9-18").is_err());
        assert_eq!(weekday_number("Sunday"), Some(7));
        assert_eq!(weekday_number("xyz"), None);
    }

    #[test]
    fn loads_toml_and_csv() {
        let dir = std::env::temp_dir().join(format!("cw-ref-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("allowed_destinations.csv"), "host,category\n*.openai.com,llm\napi.stripe.com,saas\n").unwrap();
        std::fs::write(
            dir.join("agent_profiles.toml"),
            "[[profile]]\nagent = \"*/support-agent\"\nexpected_tools = [\"query_database\"]\nbusiness_hours = \"09:00-18:00\"\nbusiness_days = [\"Mon\",\"Fri\"]\ntime_zone = \"Europe/Berlin\"\n",
        )
        .unwrap();
        let r = ReferenceData::load(&dir).unwrap();
        assert_eq!(r.allowed_destinations.len(), 2);
        assert_eq!(r.agent_profiles[0].time_zone, "Europe/Berlin");
        assert_eq!(r.destinations_batch().unwrap().num_rows(), 2);
        assert_eq!(r.profiles_batch().unwrap().num_rows(), 1);
        std::fs::write(dir.join("agent_profiles.toml"), "[[profile]]\nagent = \"x\"\ntime_zone = \"Mars/Olympus\"\n").unwrap();
        let e = ReferenceData::load(&dir).unwrap_err();
        assert!(e.to_string().contains("agent_profiles.toml"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
