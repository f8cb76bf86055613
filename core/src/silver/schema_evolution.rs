//! Types of the extra patient attributes (schema evolution, PRODUCT §5).
//!
//! A patient attribute outside the core layout (`preferred_language`, `household_size`, …) arrives as
//! text. The first batch that carries it fixes its type: the narrowest of `long`, `double`, `date`,
//! `timestamp`, `boolean`, `string` that reads every value of that batch. The type then lives in the
//! Delta schema of the table that holds the column (no side file). A later value that does not read as
//! the column's type either widens the column, when it reads as the one allowed wider type (`long` →
//! `double`, `date` → `timestamp`), or is rescued: the typed column is null for that row and the raw
//! value goes to the row's `_rescued_data` JSON object (rule `DQ-SCHEMA-RESCUED`). No other change of
//! type is automatic (a `long` column never turns into `string`), and no value is dropped or invented.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use deltalake::arrow::array::{
    ArrayRef, BooleanArray, Date32Array, Float64Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use deltalake::arrow::compute::cast;
use deltalake::arrow::datatypes::{DataType, Field, Schema, TimeUnit};

use crate::storage::rows::Cell;
use crate::storage::{Lake, TableRef};
use crate::{Error, Result};

/// The column that keeps, per row, the raw values that fit neither their column's type nor an allowed
/// widening: a JSON object `{"column": "raw value", …}` (null when nothing was rescued).
pub const RESCUED_COLUMN: &str = "_rescued_data";

/// The type of an extra attribute column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum AttrType {
    /// 64-bit integer (`long`).
    Int,
    /// 64-bit float (`double`).
    Float,
    /// Calendar date `YYYY-MM-DD` (`date`).
    Date,
    /// RFC 3339 time with an offset, stored in UTC microseconds (`timestamp`).
    Timestamp,
    /// `true` / `false` (`boolean`).
    Bool,
    /// Anything (`string`).
    Text,
}

impl AttrType {
    /// The Delta name of the type.
    pub fn name(self) -> &'static str {
        match self {
            AttrType::Int => "long",
            AttrType::Float => "double",
            AttrType::Date => "date",
            AttrType::Timestamp => "timestamp",
            AttrType::Bool => "boolean",
            AttrType::Text => "string",
        }
    }

    /// The one wider type a column of this type may be widened to.
    pub fn wider(self) -> Option<AttrType> {
        match self {
            AttrType::Int => Some(AttrType::Float),
            AttrType::Date => Some(AttrType::Timestamp),
            _ => None,
        }
    }

    /// The Arrow type of the column.
    pub fn arrow(self) -> DataType {
        match self {
            AttrType::Int => DataType::Int64,
            AttrType::Float => DataType::Float64,
            AttrType::Date => DataType::Date32,
            AttrType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            AttrType::Bool => DataType::Boolean,
            AttrType::Text => DataType::Utf8,
        }
    }

    /// The type of a Delta column.
    fn from_delta(t: &deltalake::kernel::DataType) -> Option<AttrType> {
        use deltalake::kernel::DataType as D;
        [
            (D::LONG, AttrType::Int),
            (D::INTEGER, AttrType::Int),
            (D::DOUBLE, AttrType::Float),
            (D::DATE, AttrType::Date),
            (D::TIMESTAMP, AttrType::Timestamp),
            (D::BOOLEAN, AttrType::Bool),
            (D::STRING, AttrType::Text),
        ]
        .into_iter()
        .find(|(d, _)| d == t)
        .map(|(_, a)| a)
    }

    /// The narrowest type that reads both `self` and `other` values (`string` when none but text does).
    fn join(self, other: AttrType) -> AttrType {
        match (self, other) {
            (a, b) if a == b => a,
            (AttrType::Int, AttrType::Float) | (AttrType::Float, AttrType::Int) => AttrType::Float,
            (AttrType::Date, AttrType::Timestamp) | (AttrType::Timestamp, AttrType::Date) => {
                AttrType::Timestamp
            }
            _ => AttrType::Text,
        }
    }
}

/// A value read as a column type.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `long`.
    Int(i64),
    /// `double`.
    Float(f64),
    /// `date`, days since 1970-01-01.
    Date(i32),
    /// `timestamp`, UTC microseconds.
    Timestamp(i64),
    /// `boolean`.
    Bool(bool),
    /// `string`.
    Text(String),
}

/// An integer written the canonical way (no sign `+`, no leading zeros: `007` is a code, not a number).
fn int(raw: &str) -> Option<i64> {
    raw.parse::<i64>().ok().filter(|n| n.to_string() == raw)
}

/// A decimal number: digits with at most one point and an optional exponent, no leading zeros.
fn float(raw: &str) -> Option<f64> {
    let digits = raw.strip_prefix('-').unwrap_or(raw);
    let mantissa = digits.split(['e', 'E']).next().unwrap_or_default();
    let whole = mantissa.split('.').next().unwrap_or_default();
    let plain = !digits.is_empty()
        && digits
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '-' | '+'))
        && digits.starts_with(|c: char| c.is_ascii_digit())
        && !(whole.len() > 1 && whole.starts_with('0'));
    if !plain {
        return None;
    }
    raw.parse::<f64>().ok().filter(|f| f.is_finite())
}

fn date(raw: &str) -> Option<NaiveDate> {
    if raw.len() != 10 {
        return None;
    }
    NaiveDate::parse_from_str(raw, "%Y-%m-%d").ok()
}

fn days(d: NaiveDate) -> i32 {
    (d - NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default()).num_days() as i32
}

fn timestamp(raw: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(raw)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Reads `raw` as `ty`; `None` when it does not fit. A `long` reads as `double` and a `date` as a
/// `timestamp` (midnight UTC), as the allowed widenings require.
pub fn read(ty: AttrType, raw: &str) -> Option<Value> {
    match ty {
        AttrType::Int => int(raw).map(Value::Int),
        AttrType::Float => float(raw).map(Value::Float),
        AttrType::Date => date(raw).map(|d| Value::Date(days(d))),
        AttrType::Timestamp => timestamp(raw)
            .or_else(|| {
                date(raw)
                    .and_then(|d| d.and_hms_opt(0, 0, 0))
                    .map(|t| t.and_utc())
            })
            .map(|t| Value::Timestamp(t.timestamp_micros())),
        AttrType::Bool => match raw.to_ascii_lowercase().as_str() {
            "true" => Some(Value::Bool(true)),
            "false" => Some(Value::Bool(false)),
            _ => None,
        },
        AttrType::Text => Some(Value::Text(raw.to_string())),
    }
}

/// The narrowest type that reads `raw`.
pub fn infer_one(raw: &str) -> AttrType {
    [
        AttrType::Int,
        AttrType::Float,
        AttrType::Date,
        AttrType::Timestamp,
        AttrType::Bool,
    ]
    .into_iter()
    .find(|t| read(*t, raw).is_some())
    .unwrap_or(AttrType::Text)
}

/// The type a column takes for a batch of its values: for a new column (`current` `None`) the
/// narrowest type that reads all of them; for an existing one its type, or the allowed wider type when
/// some value needs it. Values that fit neither are rescued by the caller.
pub fn resolve<'a>(
    current: Option<AttrType>,
    values: impl IntoIterator<Item = &'a str>,
) -> AttrType {
    let mut values = values.into_iter();
    match current {
        None => values
            .map(infer_one)
            .reduce(AttrType::join)
            .unwrap_or(AttrType::Text),
        Some(cur) => match cur.wider() {
            Some(w) if values.any(|v| read(cur, v).is_none() && read(w, v).is_some()) => w,
            _ => cur,
        },
    }
}

/// A typed cell for the row builder; `None` when `raw` does not fit (the value is to be rescued).
pub fn cell(ty: AttrType, raw: Option<&str>) -> Option<Cell> {
    let value = match raw {
        Some(r) => Some(read(ty, r)?),
        None => None,
    };
    Some(match (ty, value) {
        (AttrType::Int, Some(Value::Int(v))) => Cell::Int(Some(v)),
        (AttrType::Float, Some(Value::Float(v))) => Cell::F64(Some(v)),
        (AttrType::Date, Some(Value::Date(v))) => Cell::Date(Some(v)),
        (AttrType::Timestamp, Some(Value::Timestamp(v))) => Cell::Ts(Some(v)),
        (AttrType::Bool, Some(Value::Bool(v))) => Cell::Bool(Some(v)),
        (AttrType::Text, Some(Value::Text(v))) => Cell::Str(Some(v)),
        (AttrType::Int, _) => Cell::Int(None),
        (AttrType::Float, _) => Cell::F64(None),
        (AttrType::Date, _) => Cell::Date(None),
        (AttrType::Timestamp, _) => Cell::Ts(None),
        (AttrType::Bool, _) => Cell::Bool(None),
        (AttrType::Text, _) => Cell::Str(None),
    })
}

/// The `_rescued_data` JSON of one row (`None` when nothing was rescued).
pub fn rescued_json(rescued: &BTreeMap<String, String>) -> Option<String> {
    (!rescued.is_empty()).then(|| serde_json::to_string(rescued).unwrap_or_default())
}

/// The types of a table's columns as its Delta schema has them (empty when the table does not exist).
pub async fn table_types(lake: &Lake, table: TableRef) -> Result<BTreeMap<String, AttrType>> {
    let Some(delta) = lake.open_table(table).await? else {
        return Ok(BTreeMap::new());
    };
    let snapshot = delta
        .snapshot()
        .map_err(|e| Error::delta(table.sql_name(), e))?;
    Ok(snapshot
        .schema()
        .fields()
        .filter_map(|f| Some((f.name().clone(), AttrType::from_delta(f.data_type())?)))
        .collect())
}

/// A widening of one column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Widening {
    /// The column.
    pub column: String,
    /// Its type before.
    pub from: AttrType,
    /// Its type after.
    pub to: AttrType,
    /// The first value that needed the wider type.
    pub value: String,
}

/// The result of typing the extra columns of a batch.
#[derive(Debug)]
pub struct TypedBatch {
    /// The batch with typed extra columns and, when something was rescued, `_rescued_data`.
    pub batch: RecordBatch,
    /// Columns widened from the table's type.
    pub widened: Vec<Widening>,
}

/// Types the text columns `extra` of `batch` against the table's current types `current`.
pub fn type_columns(
    batch: &RecordBatch,
    extra: &[String],
    current: &BTreeMap<String, AttrType>,
) -> Result<TypedBatch> {
    let n = batch.num_rows();
    let mut rescued: Vec<BTreeMap<String, String>> = vec![BTreeMap::new(); n];
    let mut widened = Vec::new();
    let mut fields = Vec::new();
    let mut arrays: Vec<ArrayRef> = Vec::new();
    for field in batch.schema().fields() {
        let name = field.name();
        let column = batch
            .column_by_name(name)
            .ok_or_else(|| Error::Storage(format!("internal: column {name} missing")))?;
        if !extra.contains(name) {
            fields.push(field.as_ref().clone());
            arrays.push(Arc::clone(column));
            continue;
        }
        let raws = crate::storage::columns::strings(batch, name)?;
        let prior = current.get(name).copied();
        let ty = resolve(prior, raws.iter().flatten().map(String::as_str));
        if let Some(from) = prior.filter(|p| *p != ty) {
            let value = raws
                .iter()
                .flatten()
                .find(|v| read(from, v).is_none() && read(ty, v).is_some())
                .cloned()
                .unwrap_or_default();
            widened.push(Widening {
                column: name.clone(),
                from,
                to: ty,
                value,
            });
        }
        let values: Vec<Option<Value>> = raws
            .iter()
            .enumerate()
            .map(|(i, raw)| {
                let raw = raw.as_deref()?;
                let v = read(ty, raw);
                if v.is_none() {
                    rescued[i].insert(name.clone(), raw.to_string());
                }
                v
            })
            .collect();
        fields.push(Field::new(name, ty.arrow(), true));
        arrays.push(array(ty, values));
    }
    if rescued.iter().any(|r| !r.is_empty()) {
        fields.push(Field::new(RESCUED_COLUMN, DataType::Utf8, true));
        arrays.push(Arc::new(StringArray::from(
            rescued.iter().map(rescued_json).collect::<Vec<_>>(),
        )));
    }
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)
        .map_err(|e| Error::Storage(format!("internal: typing attribute columns: {e}")))?;
    Ok(TypedBatch { batch, widened })
}

fn array(ty: AttrType, values: Vec<Option<Value>>) -> ArrayRef {
    let it = values.into_iter();
    match ty {
        AttrType::Int => Arc::new(Int64Array::from_iter(it.map(|v| match v {
            Some(Value::Int(x)) => Some(x),
            _ => None,
        }))),
        AttrType::Float => Arc::new(Float64Array::from_iter(it.map(|v| match v {
            Some(Value::Float(x)) => Some(x),
            _ => None,
        }))),
        AttrType::Date => Arc::new(Date32Array::from_iter(it.map(|v| match v {
            Some(Value::Date(x)) => Some(x),
            _ => None,
        }))),
        AttrType::Timestamp => Arc::new(
            TimestampMicrosecondArray::from_iter(it.map(|v| match v {
                Some(Value::Timestamp(x)) => Some(x),
                _ => None,
            }))
            .with_timezone("UTC"),
        ),
        AttrType::Bool => Arc::new(BooleanArray::from_iter(it.map(|v| match v {
            Some(Value::Bool(x)) => Some(x),
            _ => None,
        }))),
        AttrType::Text => Arc::new(StringArray::from_iter(it.map(|v| match v {
            Some(Value::Text(x)) => Some(x),
            _ => None,
        }))),
    }
}

/// Rewrites every row of `table` with the widened columns cast to their new type (a `long` becomes the
/// same number as a `double`, a `date` midnight UTC), in one commit without markers: a crash after it
/// leaves a widened table whose next write simply finds the wider type.
pub async fn widen_table(lake: &Lake, table: TableRef, widened: &[Widening]) -> Result<()> {
    if widened.is_empty() || lake.open_table(table).await?.is_none() {
        return Ok(());
    }
    let sql = format!("SELECT * FROM {}", table.sql_name());
    let batches: Vec<RecordBatch> = lake
        .sql(&[table], &sql)
        .await?
        .into_iter()
        .filter(|b| b.num_rows() > 0)
        .collect();
    let Some(first) = batches.first() else {
        return Ok(());
    };
    let target = |f: &Field| -> DataType {
        match widened.iter().find(|w| w.column == *f.name()) {
            Some(w) => w.to.arrow(),
            None => match f.data_type() {
                DataType::Utf8View | DataType::LargeUtf8 => DataType::Utf8,
                t => t.clone(),
            },
        }
    };
    let schema = Arc::new(Schema::new(
        first
            .schema()
            .fields()
            .iter()
            .map(|f| Field::new(f.name(), target(f.as_ref()), true))
            .collect::<Vec<_>>(),
    ));
    let mut out = Vec::with_capacity(batches.len());
    for b in &batches {
        let columns = schema
            .fields()
            .iter()
            .map(|f| {
                let c = b.column_by_name(f.name()).ok_or_else(|| {
                    Error::Storage(format!("internal: column {} missing", f.name()))
                })?;
                cast(c, f.data_type())
                    .map_err(|e| Error::Storage(format!("widening {table}.{}: {e}", f.name())))
            })
            .collect::<Result<Vec<_>>>()?;
        out.push(
            RecordBatch::try_new(Arc::clone(&schema), columns)
                .map_err(|e| Error::Storage(format!("widening {table}: {e}")))?,
        );
    }
    lake.rewrite(table, out, None, &[]).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_values_fix_the_narrowest_type() {
        assert_eq!(resolve(None, ["3", "12"]), AttrType::Int);
        assert_eq!(resolve(None, ["3", "2.5"]), AttrType::Float);
        assert_eq!(resolve(None, ["2026-01-01"]), AttrType::Date);
        assert_eq!(
            resolve(None, ["2026-01-01", "2026-01-02T08:00:00-06:00"]),
            AttrType::Timestamp
        );
        assert_eq!(resolve(None, ["true", "False"]), AttrType::Bool);
        assert_eq!(resolve(None, ["3", "abc"]), AttrType::Text);
        assert_eq!(resolve(None, ["es"]), AttrType::Text);
        // Codes with leading zeros stay text: reading them as numbers would change them.
        assert_eq!(resolve(None, ["007"]), AttrType::Text);
        assert_eq!(resolve(None, ["+3"]), AttrType::Text);
        assert_eq!(resolve(None, ["1", "true"]), AttrType::Text);
    }

    #[test]
    fn only_the_allowed_widenings_happen() {
        assert_eq!(resolve(Some(AttrType::Int), ["3", "2.5"]), AttrType::Float);
        assert_eq!(
            resolve(Some(AttrType::Date), ["2026-01-02T08:00:00Z"]),
            AttrType::Timestamp
        );
        // Text does not fit an integer column and is no allowed widening: the column stays long.
        assert_eq!(resolve(Some(AttrType::Int), ["abc"]), AttrType::Int);
        assert_eq!(
            resolve(Some(AttrType::Float), ["abc", "3"]),
            AttrType::Float
        );
        assert_eq!(resolve(Some(AttrType::Bool), ["3"]), AttrType::Bool);
        assert_eq!(resolve(Some(AttrType::Text), ["3"]), AttrType::Text);
    }

    #[test]
    fn cells_are_typed_or_rescued_never_changed() {
        assert_eq!(cell(AttrType::Float, Some("3")), Some(Cell::F64(Some(3.0))));
        assert_eq!(cell(AttrType::Int, Some("abc")), None);
        assert_eq!(cell(AttrType::Int, None), Some(Cell::Int(None)));
        assert_eq!(
            cell(AttrType::Timestamp, Some("1970-01-02")),
            Some(Cell::Ts(Some(86_400_000_000)))
        );
    }

    #[test]
    fn a_batch_is_typed_widened_and_rescued() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Utf8, true),
            Field::new("n", DataType::Utf8, true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec![Some("a"), Some("b"), Some("c")])),
                Arc::new(StringArray::from(vec![Some("2.5"), Some("abc"), None])),
            ],
        )
        .unwrap();
        let current = BTreeMap::from([("n".to_string(), AttrType::Int)]);
        let typed = type_columns(&batch, &["n".to_string()], &current).unwrap();
        assert_eq!(
            typed.widened,
            vec![Widening {
                column: "n".into(),
                from: AttrType::Int,
                to: AttrType::Float,
                value: "2.5".into()
            }]
        );
        let n = crate::storage::columns::floats(&typed.batch, "n").unwrap();
        assert_eq!(n, vec![Some(2.5), None, None]);
        let rescued = crate::storage::columns::strings(&typed.batch, RESCUED_COLUMN).unwrap();
        assert_eq!(
            rescued,
            vec![None, Some(r#"{"n":"abc"}"#.to_string()), None]
        );
    }
}
