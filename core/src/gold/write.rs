//! Building Gold batches with fixed schemas, and writing them: whole-table overwrites and predicate
//! replacements, each in one commit with the Silver versions it reflects.

use std::sync::Arc;

use deltalake::arrow::array::{
    ArrayRef, BooleanArray, Date32Array, Float64Array, Int32Array, Int64Array, RecordBatch,
    StringArray, TimestampMicrosecondArray,
};
use deltalake::arrow::compute::cast;
use deltalake::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use deltalake::kernel::transaction::CommitProperties;
use deltalake::kernel::Transaction;
use deltalake::operations::write::SchemaMode;
use deltalake::protocol::SaveMode;

use crate::storage::{target_file_size, CommitMarker, Lake, TableRef};
use crate::{Error, Result};

/// Columns of one batch, added in order.
#[derive(Debug, Default)]
pub struct Columns {
    fields: Vec<Field>,
    arrays: Vec<ArrayRef>,
}

impl Columns {
    /// No columns yet.
    pub fn new() -> Self {
        Self::default()
    }

    fn push(&mut self, name: &str, data_type: DataType, array: ArrayRef) -> &mut Self {
        self.fields.push(Field::new(name, data_type, true));
        self.arrays.push(array);
        self
    }

    /// A text column.
    pub fn str(&mut self, name: &str, values: Vec<Option<String>>) -> &mut Self {
        self.push(name, DataType::Utf8, Arc::new(StringArray::from(values)))
    }

    /// A 64-bit integer column.
    pub fn i64(&mut self, name: &str, values: Vec<Option<i64>>) -> &mut Self {
        self.push(name, DataType::Int64, Arc::new(Int64Array::from(values)))
    }

    /// A 32-bit integer column (keys, hours, ages).
    pub fn i32(&mut self, name: &str, values: Vec<Option<i32>>) -> &mut Self {
        self.push(name, DataType::Int32, Arc::new(Int32Array::from(values)))
    }

    /// A double column.
    pub fn f64(&mut self, name: &str, values: Vec<Option<f64>>) -> &mut Self {
        self.push(
            name,
            DataType::Float64,
            Arc::new(Float64Array::from(values)),
        )
    }

    /// A boolean column.
    pub fn bool(&mut self, name: &str, values: Vec<Option<bool>>) -> &mut Self {
        self.push(
            name,
            DataType::Boolean,
            Arc::new(BooleanArray::from(values)),
        )
    }

    /// A UTC timestamp column from microseconds.
    pub fn ts(&mut self, name: &str, values: Vec<Option<i64>>) -> &mut Self {
        self.push(
            name,
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            Arc::new(TimestampMicrosecondArray::from(values).with_timezone("UTC")),
        )
    }

    /// A date column from days since 1970-01-01.
    pub fn date(&mut self, name: &str, values: Vec<Option<i32>>) -> &mut Self {
        self.push(name, DataType::Date32, Arc::new(Date32Array::from(values)))
    }

    /// The batch.
    pub fn finish(&mut self) -> Result<RecordBatch> {
        let fields = std::mem::take(&mut self.fields);
        let arrays = std::mem::take(&mut self.arrays);
        RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)
            .map_err(|e| Error::Storage(format!("internal: building a Gold batch failed: {e}")))
    }
}

/// Days since 1970-01-01 of a date.
pub fn epoch_days(d: chrono::NaiveDate) -> i32 {
    (d - chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default()).num_days() as i32
}

/// Casts string views and large strings (as DataFusion may read them) to plain UTF-8, so a batch read
/// from one table can be written to another.
pub fn plain_strings(batch: &RecordBatch) -> Result<RecordBatch> {
    let mut fields = Vec::with_capacity(batch.num_columns());
    let mut arrays = Vec::with_capacity(batch.num_columns());
    for (field, array) in batch.schema().fields().iter().zip(batch.columns()) {
        match field.data_type() {
            DataType::Utf8View | DataType::LargeUtf8 => {
                let a = cast(array, &DataType::Utf8).map_err(|e| {
                    Error::Storage(format!(
                        "internal: cannot cast column {}: {e}",
                        field.name()
                    ))
                })?;
                fields.push(Field::new(field.name(), DataType::Utf8, true));
                arrays.push(a);
            }
            _ => {
                fields.push(Field::new(field.name(), field.data_type().clone(), true));
                arrays.push(Arc::clone(array));
            }
        }
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)
        .map_err(|e| Error::Storage(format!("internal: re-typing a batch failed: {e}")))
}

fn props(markers: &[CommitMarker]) -> CommitProperties {
    let txns: Vec<Transaction> = markers
        .iter()
        .map(|m| Transaction::new(&m.app_id, m.version))
        .collect();
    CommitProperties::default().with_application_transactions(txns)
}

/// Replaces the whole table with `batches` (all of one schema), partitioned by `partitions`, in one
/// commit with `markers`.
pub async fn overwrite(
    lake: &Lake,
    table: TableRef,
    batches: Vec<RecordBatch>,
    partitions: &[&str],
    markers: &[CommitMarker],
) -> Result<()> {
    let Some(first) = batches.first() else {
        return Err(Error::Storage(format!(
            "internal: overwrite of {table} without a batch"
        )));
    };
    let delta = lake.open_or_create(table, &first.schema()).await?;
    delta
        .write(batches)
        .with_save_mode(SaveMode::Overwrite)
        .with_schema_mode(SchemaMode::Overwrite)
        .with_partition_columns(partitions.iter().map(|p| p.to_string()))
        .with_target_file_size(target_file_size())
        .with_commit_properties(props(markers))
        .await
        .map_err(|e| Error::delta(table.sql_name(), e))?;
    Ok(())
}

/// Replaces the rows matching `predicate` with `batch` (whose rows all match it), in one commit with
/// `markers`; an empty batch deletes them. The table must exist.
pub async fn replace(
    lake: &Lake,
    table: TableRef,
    batch: RecordBatch,
    predicate: &str,
    markers: &[CommitMarker],
) -> Result<()> {
    let Some(delta) = lake.open_table(table).await? else {
        return Err(Error::Storage(format!(
            "internal: {table} must exist before a partial rewrite"
        )));
    };
    if batch.num_rows() == 0 {
        lake.delete_where(table, delta, predicate, markers).await?;
        return Ok(());
    }
    delta
        .write(vec![batch])
        .with_save_mode(SaveMode::Overwrite)
        .with_replace_where(predicate.to_string())
        .with_schema_mode(SchemaMode::Merge)
        .with_target_file_size(target_file_size())
        .with_commit_properties(props(markers))
        .await
        .map_err(|e| Error::delta(table.sql_name(), e))?;
    Ok(())
}

/// Quotes a string for SQL.
pub fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// `col IN ('a', 'b', …)`.
pub fn in_list<'a>(column: &str, values: impl IntoIterator<Item = &'a String>) -> String {
    let list: Vec<String> = values.into_iter().map(|v| quote(v)).collect();
    format!("{column} IN ({})", list.join(", "))
}
