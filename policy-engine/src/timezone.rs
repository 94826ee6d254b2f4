//! Local time of a timestamp in an agent's time zone (IANA name via chrono-tz, or a fixed
//! offset like "+02:00"), as SQL functions for business-hours policies:
//! `cw_local_minute(ts, zone)` (minute of the local day, 0..1439) and
//! `cw_local_weekday(ts, zone)` (ISO weekday, Mon = 1 .. Sun = 7). An unknown zone gives NULL.

use std::str::FromStr;
use std::sync::Arc;

use chrono::{Datelike, FixedOffset, TimeZone, Timelike};
use datafusion::arrow::array::{Array, ArrayRef, Int32Array, StringArray, TimestampNanosecondArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::DataFusionError;
use datafusion::logical_expr::{ColumnarValue, ScalarUDF, Volatility, create_udf};

/// A time zone of an agent profile.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LocalZone {
    Named(chrono_tz::Tz),
    Fixed(FixedOffset),
}

impl LocalZone {
    /// "Europe/Berlin", "UTC", "+02:00", "-0530".
    pub fn parse(text: &str) -> Result<LocalZone, String> {
        let t = text.trim();
        if t.starts_with('+') || t.starts_with('-') {
            let sign = if t.starts_with('-') { -1 } else { 1 };
            let digits: String = t[1..].chars().filter(|c| c.is_ascii_digit()).collect();
            if digits.len() != 4 && digits.len() != 2 {
                return Err(format!("{text:?} is not an offset like +02:00"));
            }
            let h: i32 = digits[..2].parse().map_err(|_| format!("bad offset {text:?}"))?;
            let m: i32 = if digits.len() == 4 { digits[2..].parse().map_err(|_| format!("bad offset {text:?}"))? } else { 0 };
            return FixedOffset::east_opt(sign * (h * 3600 + m * 60))
                .map(LocalZone::Fixed)
                .ok_or_else(|| format!("offset {text:?} out of range"));
        }
        chrono_tz::Tz::from_str(t).map(LocalZone::Named).map_err(|_| format!("unknown time zone {text:?}"))
    }

    /// (minute of the local day, ISO weekday) of a UTC nanosecond timestamp.
    pub fn local(&self, ts_ns: i64) -> (i32, i32) {
        let utc = chrono::DateTime::from_timestamp_nanos(ts_ns);
        let (h, m, wd) = match self {
            LocalZone::Named(tz) => {
                let l = tz.from_utc_datetime(&utc.naive_utc());
                (l.hour(), l.minute(), l.weekday().number_from_monday())
            }
            LocalZone::Fixed(off) => {
                let l = off.from_utc_datetime(&utc.naive_utc());
                (l.hour(), l.minute(), l.weekday().number_from_monday())
            }
        };
        // All three are small (< 1440).
        ((h * 60 + m) as i32, wd as i32)
    }
}

/// The SQL functions `cw_local_minute` and `cw_local_weekday`.
pub fn local_time_udfs() -> Vec<ScalarUDF> {
    let ts = DataType::Timestamp(TimeUnit::Nanosecond, Some(crate::tables::UTC.into()));
    let make = |name: &str, pick: fn((i32, i32)) -> i32| {
        create_udf(
            name,
            vec![ts.clone(), DataType::Utf8],
            DataType::Int32,
            Volatility::Immutable,
            Arc::new(move |args: &[ColumnarValue]| local_fn(args, pick)),
        )
    };
    vec![make("cw_local_minute", |(m, _)| m), make("cw_local_weekday", |(_, d)| d)]
}

fn local_fn(args: &[ColumnarValue], pick: fn((i32, i32)) -> i32) -> Result<ColumnarValue, DataFusionError> {
    let arrays = ColumnarValue::values_to_arrays(args)?;
    let [ts, zone] = arrays.as_slice() else {
        return Err(DataFusionError::Execution("expects (timestamp, time zone)".into()));
    };
    let ts_ns: ArrayRef = cast(ts, &DataType::Timestamp(TimeUnit::Nanosecond, None))?;
    let zone: ArrayRef = cast(zone, &DataType::Utf8)?;
    let ts_ns = ts_ns
        .as_any()
        .downcast_ref::<TimestampNanosecondArray>()
        .ok_or_else(|| DataFusionError::Execution("timestamp argument expected".into()))?;
    let zone = zone
        .as_any()
        .downcast_ref::<StringArray>()
        .ok_or_else(|| DataFusionError::Execution("time zone argument expected".into()))?;
    let mut last: Option<(String, Option<LocalZone>)> = None;
    let out: Int32Array = (0..ts_ns.len())
        .map(|i| {
            if ts_ns.is_null(i) || zone.is_null(i) {
                return None;
            }
            let name = zone.value(i);
            let z = match &last {
                Some((n, z)) if n == name => *z,
                _ => {
                    let z = LocalZone::parse(name).ok();
                    last = Some((name.to_string(), z));
                    z
                }
            };
            z.map(|z| pick(z.local(ts_ns.value(i))))
        })
        .collect();
    Ok(ColumnarValue::Array(Arc::new(out)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zones() {
        // 2023-11-14T22:13:20Z is a Tuesday.
        let ts = 1_700_000_000_000_000_000;
        assert_eq!(LocalZone::parse("UTC").unwrap().local(ts), (22 * 60 + 13, 2));
        assert_eq!(LocalZone::parse("Europe/Berlin").unwrap().local(ts), (23 * 60 + 13, 2));
        assert_eq!(LocalZone::parse("+05:00").unwrap().local(ts), (3 * 60 + 13, 3));
        assert!(LocalZone::parse("Mars/Olympus").is_err());
    }
}
