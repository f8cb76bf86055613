//! A column-oriented row builder for tables whose columns are not all known in advance (EHR extracts
//! and patient attributes gain columns over time). Each column takes the type of its first value.

use std::collections::HashMap;
use std::sync::Arc;

use deltalake::arrow::array::{
    ArrayRef, BooleanArray, Date32Array, Float64Array, Int64Array, StringArray,
    TimestampMicrosecondArray,
};
use deltalake::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use deltalake::arrow::record_batch::RecordBatch;

use crate::{Error, Result};

/// A cell value.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// Text (null when `None`).
    Str(Option<String>),
    /// 64-bit integer.
    Int(Option<i64>),
    /// UTC timestamp in microseconds.
    Ts(Option<i64>),
    /// Boolean flag.
    Bool(Option<bool>),
    /// Calendar date (days since 1970-01-01).
    Date(Option<i32>),
    /// 64-bit float.
    F64(Option<f64>),
}

impl Cell {
    /// A text cell from anything string-like.
    pub fn str(v: Option<impl Into<String>>) -> Cell {
        Cell::Str(v.map(Into::into))
    }

    /// A timestamp cell from a UTC time.
    pub fn ts(v: Option<chrono::DateTime<chrono::Utc>>) -> Cell {
        Cell::Ts(v.map(|t| t.timestamp_micros()))
    }

    /// A date cell.
    pub fn date(v: Option<chrono::NaiveDate>) -> Cell {
        Cell::Date(v.map(|d| {
            (d - chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default()).num_days() as i32
        }))
    }
}

#[derive(Debug)]
enum Column {
    Str(Vec<Option<String>>),
    Int(Vec<Option<i64>>),
    Ts(Vec<Option<i64>>),
    Bool(Vec<Option<bool>>),
    Date(Vec<Option<i32>>),
    F64(Vec<Option<f64>>),
}

impl Column {
    fn like(cell: &Cell, len: usize) -> Column {
        match cell {
            Cell::Str(_) => Column::Str(vec![None; len]),
            Cell::Int(_) => Column::Int(vec![None; len]),
            Cell::Ts(_) => Column::Ts(vec![None; len]),
            Cell::Bool(_) => Column::Bool(vec![None; len]),
            Cell::Date(_) => Column::Date(vec![None; len]),
            Cell::F64(_) => Column::F64(vec![None; len]),
        }
    }

    fn push(&mut self, cell: Option<Cell>) {
        match (self, cell) {
            (Column::Str(v), Some(Cell::Str(x))) => v.push(x),
            (Column::Int(v), Some(Cell::Int(x))) => v.push(x),
            (Column::Ts(v), Some(Cell::Ts(x))) => v.push(x),
            (Column::Bool(v), Some(Cell::Bool(x))) => v.push(x),
            (Column::Date(v), Some(Cell::Date(x))) => v.push(x),
            (Column::F64(v), Some(Cell::F64(x))) => v.push(x),
            (Column::F64(v), Some(Cell::Int(x))) => v.push(x.map(|i| i as f64)),
            // A mismatched type is stored as text rather than lost.
            (Column::Str(v), Some(Cell::Int(x))) => v.push(x.map(|i| i.to_string())),
            (Column::Str(v), Some(Cell::Ts(x))) => v.push(x.map(|i| i.to_string())),
            (Column::Str(v), Some(Cell::Bool(x))) => v.push(x.map(|b| b.to_string())),
            (Column::Str(v), Some(Cell::F64(x))) => v.push(x.map(|f| f.to_string())),
            (Column::Str(v), Some(Cell::Date(x))) => v.push(x.map(|d| d.to_string())),
            (Column::Str(v), None) => v.push(None),
            (Column::Int(v), _) => v.push(None),
            (Column::Ts(v), _) => v.push(None),
            (Column::Bool(v), _) => v.push(None),
            (Column::Date(v), _) => v.push(None),
            (Column::F64(v), _) => v.push(None),
        }
    }
}

/// Builds one record batch from rows of named cells; a name seen for the first time adds a column
/// (null in the rows before it).
#[derive(Debug, Default)]
pub struct RowsBuilder {
    names: Vec<String>,
    index: HashMap<String, usize>,
    columns: Vec<Column>,
    len: usize,
}

impl RowsBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of rows pushed.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no row was pushed.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends one row. Columns missing from `cells` are null in this row.
    pub fn push_row<'a>(&mut self, cells: impl IntoIterator<Item = (&'a str, Cell)>) {
        let mut row: Vec<Option<Cell>> = vec![None; self.columns.len()];
        for (name, cell) in cells {
            let idx = match self.index.get(name) {
                Some(&i) => i,
                None => {
                    let i = self.names.len();
                    self.names.push(name.to_string());
                    self.index.insert(name.to_string(), i);
                    self.columns.push(Column::like(&cell, self.len));
                    row.push(None);
                    i
                }
            };
            row[idx] = Some(cell);
        }
        for (col, cell) in self.columns.iter_mut().zip(row) {
            col.push(cell);
        }
        self.len += 1;
    }

    /// The record batch of all rows pushed so far.
    pub fn finish(self) -> Result<RecordBatch> {
        let mut fields = Vec::with_capacity(self.names.len());
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(self.names.len());
        for (name, col) in self.names.into_iter().zip(self.columns) {
            match col {
                Column::Str(v) => {
                    fields.push(Field::new(name, DataType::Utf8, true));
                    arrays.push(Arc::new(StringArray::from(v)));
                }
                Column::Int(v) => {
                    fields.push(Field::new(name, DataType::Int64, true));
                    arrays.push(Arc::new(Int64Array::from(v)));
                }
                Column::Date(v) => {
                    fields.push(Field::new(name, DataType::Date32, true));
                    arrays.push(Arc::new(Date32Array::from(v)));
                }
                Column::F64(v) => {
                    fields.push(Field::new(name, DataType::Float64, true));
                    arrays.push(Arc::new(Float64Array::from(v)));
                }
                Column::Bool(v) => {
                    fields.push(Field::new(name, DataType::Boolean, true));
                    arrays.push(Arc::new(BooleanArray::from(v)));
                }
                Column::Ts(v) => {
                    fields.push(Field::new(
                        name,
                        DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                        true,
                    ));
                    arrays.push(Arc::new(
                        TimestampMicrosecondArray::from(v).with_timezone("UTC"),
                    ));
                }
            }
        }
        RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)
            .map_err(|e| Error::Storage(format!("internal: building a Bronze batch failed: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn late_columns_are_null_in_earlier_rows() {
        let mut b = RowsBuilder::new();
        b.push_row([
            ("a", Cell::Str(Some("1".into()))),
            ("n", Cell::Int(Some(1))),
        ]);
        b.push_row([
            ("a", Cell::Str(Some("2".into()))),
            ("b", Cell::Str(Some("x".into()))),
        ]);
        let batch = b.finish().unwrap();
        assert_eq!(batch.num_rows(), 2);
        let b_col = batch.column_by_name("b").unwrap();
        assert!(b_col.is_null(0));
        assert!(!b_col.is_null(1));
        assert!(batch.column_by_name("n").unwrap().is_null(1));
    }
}
