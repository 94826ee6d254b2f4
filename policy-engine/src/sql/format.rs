//! Output formats of query results: an aligned table (arrow's pretty printer), JSON lines and CSV.

use std::io::Write;
use std::str::FromStr;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::arrow::csv::WriterBuilder as CsvWriterBuilder;
use datafusion::arrow::json::writer::{JsonArray, LineDelimited, WriterBuilder as JsonWriterBuilder};
use datafusion::arrow::util::pretty::pretty_format_batches;

use super::error::SqlError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputFormat {
    /// An aligned text table with a header.
    #[default]
    Table,
    /// One JSON object per row and line (nulls written as null).
    Json,
    /// CSV with a header line.
    Csv,
}

impl FromStr for OutputFormat {
    type Err = SqlError;
    fn from_str(s: &str) -> Result<Self, SqlError> {
        match s.to_ascii_lowercase().as_str() {
            "table" => Ok(OutputFormat::Table),
            "json" | "jsonl" | "ndjson" => Ok(OutputFormat::Json),
            "csv" => Ok(OutputFormat::Csv),
            _ => Err(SqlError::UnknownFormat(s.to_string())),
        }
    }
}

/// Writes `batches` to `out` in `format`. The batches should include at least one (possibly empty)
/// batch so that a result with no rows still prints its header.
pub fn write_batches(format: OutputFormat, batches: &[RecordBatch], out: &mut dyn Write) -> Result<(), SqlError> {
    match format {
        OutputFormat::Table => {
            let table = pretty_format_batches(batches)?;
            writeln!(out, "{table}")?;
            let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
            writeln!(out, "{rows} row{}", if rows == 1 { "" } else { "s" })?;
        }
        OutputFormat::Json => {
            let mut writer = JsonWriterBuilder::new().with_explicit_nulls(true).build::<_, LineDelimited>(&mut *out);
            for b in batches {
                writer.write(b)?;
            }
            writer.finish()?;
        }
        OutputFormat::Csv => {
            let mut writer = CsvWriterBuilder::new().with_header(true).build(&mut *out);
            for b in batches {
                writer.write(&nested_as_text(b)?)?;
            }
        }
    }
    Ok(())
}

/// CSV has no lists or structs: such columns become their display text (`[email, phone]`).
fn nested_as_text(batch: &RecordBatch) -> Result<RecordBatch, SqlError> {
    let schema = batch.schema();
    if !schema.fields().iter().any(|f| f.data_type().is_nested()) {
        return Ok(batch.clone());
    }
    let options = FormatOptions::default();
    let mut fields = Vec::with_capacity(schema.fields().len());
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    for (field, column) in schema.fields().iter().zip(batch.columns()) {
        if !field.data_type().is_nested() {
            fields.push(field.as_ref().clone());
            columns.push(column.clone());
            continue;
        }
        let formatter = ArrayFormatter::try_new(column.as_ref(), &options)?;
        let text: StringArray = (0..column.len())
            .map(|i| if column.is_null(i) { None } else { Some(formatter.value(i).to_string()) })
            .collect();
        fields.push(Field::new(field.name(), DataType::Utf8, true));
        columns.push(Arc::new(text));
    }
    Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?)
}

/// The rows of `batches` as one JSON array of objects (the HTTP endpoint's answer).
pub fn json_array(batches: &[RecordBatch]) -> Result<Vec<u8>, SqlError> {
    let mut buf = Vec::new();
    {
        let mut writer = JsonWriterBuilder::new().with_explicit_nulls(true).build::<_, JsonArray>(&mut buf);
        for b in batches {
            writer.write(b)?;
        }
        writer.finish()?;
    }
    if buf.is_empty() {
        buf.extend_from_slice(b"[]");
    }
    Ok(buf)
}
