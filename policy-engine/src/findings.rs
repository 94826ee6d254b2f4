//! Turns a policy's result rows into findings: one per (chain, key columns), with the evidence
//! steps, the evidence columns as strings, and the optional `pii_types` / `risk_score` columns.
//! Rows with the same identity are merged (steps united, distinct values joined by ",").

use std::collections::{BTreeMap, BTreeSet};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};

/// Column names with a meaning of their own.
pub const CHAIN_ID: &str = "chain_id";
pub const EVIDENCE_STEPS: &str = "evidence_steps";
pub const PII_TYPES: &str = "pii_types";
pub const RISK_SCORE: &str = "risk_score";

/// What one policy found on one chain (for one key).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Finding {
    pub chain_id: String,
    /// Values of the policy's key columns, in the policy's order.
    pub key: Vec<String>,
    pub steps: BTreeSet<i32>,
    pub evidence: BTreeMap<String, String>,
    pub pii_types: Option<BTreeSet<String>>,
    pub risk_score: Option<f64>,
}

/// A result that does not fit the contract (no chain_id column, ...).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct FindingError(pub String);

/// Findings of the result batches, in first-row order.
pub fn findings(batches: &[RecordBatch], key_columns: &[String]) -> Result<Vec<Finding>, FindingError> {
    let mut out: Vec<Finding> = Vec::new();
    let mut index: BTreeMap<(String, Vec<String>), usize> = BTreeMap::new();
    // Evidence values per finding and column, distinct in order of appearance.
    let mut values: Vec<BTreeMap<String, Vec<String>>> = Vec::new();
    let options = FormatOptions::default().with_null("");
    for batch in batches {
        let schema = batch.schema();
        let chain_col = batch
            .column_by_name(CHAIN_ID)
            .ok_or_else(|| FindingError(format!("the result has no {CHAIN_ID} column (columns: {})", column_names(batch))))?;
        for k in key_columns {
            if batch.column_by_name(k).is_none() {
                return Err(FindingError(format!("key column {k:?} is not in the result (columns: {})", column_names(batch))));
            }
        }
        let formatters: Vec<(String, ArrayFormatter)> = schema
            .fields()
            .iter()
            .zip(batch.columns())
            .filter(|(f, _)| ![CHAIN_ID, EVIDENCE_STEPS, PII_TYPES, RISK_SCORE].contains(&f.name().as_str()))
            .map(|(f, c)| {
                ArrayFormatter::try_new(c.as_ref(), &options)
                    .map(|fmt| (f.name().clone(), fmt))
                    .map_err(|e| FindingError(format!("column {}: {e}", f.name())))
            })
            .collect::<Result<_, _>>()?;
        let chain_fmt = ArrayFormatter::try_new(chain_col.as_ref(), &options).map_err(|e| FindingError(e.to_string()))?;
        let steps_col = batch.column_by_name(EVIDENCE_STEPS);
        let pii_col = batch.column_by_name(PII_TYPES);
        let risk_col = batch.column_by_name(RISK_SCORE);
        for row in 0..batch.num_rows() {
            if chain_col.is_null(row) {
                continue;
            }
            let chain_id = chain_fmt.value(row).to_string();
            let key: Vec<String> = key_columns
                .iter()
                .map(|k| formatters.iter().find(|(n, _)| n == k).map(|(_, f)| f.value(row).to_string()).unwrap_or_default())
                .collect();
            let slot = *index.entry((chain_id.clone(), key.clone())).or_insert_with(|| {
                out.push(Finding { chain_id, key, ..Default::default() });
                values.push(BTreeMap::new());
                out.len() - 1
            });
            let (finding, vals) = (&mut out[slot], &mut values[slot]);
            if let Some(col) = steps_col {
                finding.steps.extend(ints_at(col, row)?);
            }
            if let Some(col) = pii_col {
                finding.pii_types.get_or_insert_with(BTreeSet::new).extend(strings_at(col, row)?);
            }
            if let Some(col) = risk_col
                && let Some(r) = float_at(col, row)
            {
                finding.risk_score = Some(finding.risk_score.map_or(r, |old: f64| old.max(r)));
            }
            for (name, fmt) in &formatters {
                let v = fmt.value(row).to_string();
                if v.is_empty() {
                    continue;
                }
                let list = vals.entry(name.clone()).or_default();
                if !list.contains(&v) {
                    list.push(v);
                }
            }
        }
    }
    for (finding, vals) in out.iter_mut().zip(values) {
        finding.evidence = vals.into_iter().map(|(k, v)| (k, v.join(","))).collect();
    }
    Ok(out)
}

fn column_names(batch: &RecordBatch) -> String {
    batch.schema().fields().iter().map(|f| f.name().as_str()).collect::<Vec<_>>().join(", ")
}

/// Step numbers in an int, list-of-int or comma-separated string cell.
fn ints_at(col: &ArrayRef, row: usize) -> Result<Vec<i32>, FindingError> {
    if col.is_null(row) {
        return Ok(Vec::new());
    }
    match col.data_type() {
        DataType::List(_) => {
            let inner = col.as_list::<i32>().value(row);
            (0..inner.len()).map(|i| scalar_int(&inner, i)).filter_map(Result::transpose).collect()
        }
        DataType::LargeList(_) => {
            let inner = col.as_list::<i64>().value(row);
            (0..inner.len()).map(|i| scalar_int(&inner, i)).filter_map(Result::transpose).collect()
        }
        _ => Ok(scalar_int(col, row)?.map(|v| vec![v]).unwrap_or_else(|| split_ints(col, row))),
    }
}

fn scalar_int(col: &ArrayRef, row: usize) -> Result<Option<i32>, FindingError> {
    if col.is_null(row) {
        return Ok(None);
    }
    use datafusion::arrow::datatypes::{Int8Type, Int16Type, Int32Type, Int64Type, UInt32Type, UInt64Type};
    let v: Option<i64> = match col.data_type() {
        DataType::Int8 => Some(col.as_primitive::<Int8Type>().value(row).into()),
        DataType::Int16 => Some(col.as_primitive::<Int16Type>().value(row).into()),
        DataType::Int32 => Some(col.as_primitive::<Int32Type>().value(row).into()),
        DataType::Int64 => Some(col.as_primitive::<Int64Type>().value(row)),
        DataType::UInt32 => Some(col.as_primitive::<UInt32Type>().value(row).into()),
        DataType::UInt64 => i64::try_from(col.as_primitive::<UInt64Type>().value(row)).ok(),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => return Ok(None),
        other => return Err(FindingError(format!("{EVIDENCE_STEPS} must be int, list of int or a comma string, not {other}"))),
    };
    Ok(v.and_then(|v| i32::try_from(v).ok()))
}

fn split_ints(col: &ArrayRef, row: usize) -> Vec<i32> {
    let text = match col.data_type() {
        DataType::Utf8 => col.as_string::<i32>().value(row).to_string(),
        DataType::LargeUtf8 => col.as_string::<i64>().value(row).to_string(),
        DataType::Utf8View => col.as_string_view().value(row).to_string(),
        _ => String::new(),
    };
    text.split(',').filter_map(|s| s.trim().parse().ok()).collect()
}

/// Strings in a list-of-string or comma-separated string cell.
fn strings_at(col: &ArrayRef, row: usize) -> Result<Vec<String>, FindingError> {
    if col.is_null(row) {
        return Ok(Vec::new());
    }
    let options = FormatOptions::default();
    let from_array = |a: &ArrayRef| -> Result<Vec<String>, FindingError> {
        let f = ArrayFormatter::try_new(a.as_ref(), &options).map_err(|e| FindingError(e.to_string()))?;
        Ok((0..a.len()).filter(|i| !a.is_null(*i)).map(|i| f.value(i).to_string()).collect())
    };
    match col.data_type() {
        DataType::List(_) => from_array(&col.as_list::<i32>().value(row)),
        DataType::LargeList(_) => from_array(&col.as_list::<i64>().value(row)),
        _ => {
            let one = from_array(&col.slice(row, 1))?;
            Ok(one.iter().flat_map(|s| s.split(',')).map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect())
        }
    }
}

fn float_at(col: &ArrayRef, row: usize) -> Option<f64> {
    use datafusion::arrow::datatypes::{Float32Type, Float64Type, Int64Type};
    if col.is_null(row) {
        return None;
    }
    match col.data_type() {
        DataType::Float64 => Some(col.as_primitive::<Float64Type>().value(row)),
        DataType::Float32 => Some(col.as_primitive::<Float32Type>().value(row).into()),
        DataType::Int64 => Some(col.as_primitive::<Int64Type>().value(row) as f64),
        _ => None,
    }
}
