//! Appends that commit straight to a table's Delta log, for a writer that appends batch after batch
//! to one table (the Bronze ADT writer behind the Event Hub trigger).
//!
//! After every commit delta-rs brings an open table up to date by re-reading the log entry of every
//! data file the table has, so a long-running writer's commits grow slower as the table grows, and a
//! commit that falls on the checkpoint interval also writes the checkpoint before it returns. A
//! [`BlindAppender`] writes the data files and the commit (`add` actions with statistics, the
//! app-transaction markers, commit info) itself and keeps only the version it last committed, so a
//! commit costs the same on a table of ten files and of ten thousand. Checkpoints are written in the
//! background, on the table's interval.
//!
//! It never writes over another writer's commit: the commit is a put-if-absent of the next version, and
//! when that version exists already the append reports [`Appended::Behind`], deletes the files it wrote
//! and leaves the catching up to the caller.

use std::collections::HashMap;

use deltalake::arrow::record_batch::RecordBatch;
use deltalake::kernel::transaction::{CommitData, TransactionError, PROTOCOL};
use deltalake::kernel::{Action, Add, Transaction};
use deltalake::logstore::{CommitOrBytes, LogStoreRef};
use deltalake::protocol::{DeltaOperation, SaveMode};
use deltalake::table::config::TablePropertiesExt;
use deltalake::table::state::DeltaTableState;
use deltalake::writer::{DeltaWriter, RecordBatchWriter};
use deltalake::DeltaTable;
use tokio::sync::oneshot::error::TryRecvError;

use super::{CommitMarker, Lake, TableRef};
use crate::{Error, Result};

/// What became of a [`BlindAppender::append`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// Committed as this table version.
    Committed(i64),
    /// Another writer committed the next version first; nothing of this append is in the table.
    Behind,
}

/// Appends record batches to one Delta table without reading its log back after each commit.
pub struct BlindAppender {
    table: TableRef,
    log_store: LogStoreRef,
    /// Where the table is and how to reach it, for the checkpoint thread's own connection.
    url: url::Url,
    options: HashMap<String, String>,
    /// The table as of the version this appender opened it at: its protocol and metadata are what
    /// every append is checked against, and stay current because a commit only lands on the version
    /// right after the last one this appender saw.
    opened: DeltaTableState,
    writer: RecordBatchWriter,
    version: i64,
    checkpoint_interval: i64,
    log_cleanup: bool,
    checkpointing: Option<tokio::sync::oneshot::Receiver<()>>,
}

impl std::fmt::Debug for BlindAppender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlindAppender")
            .field("table", &self.table)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

impl BlindAppender {
    /// An appender continuing from `delta`'s version, or `None` when blind appends do not fit the
    /// table: a log store that commits through temporary files, or a protocol delta-rs' writer
    /// cannot write (column mapping). The caller then appends through delta-rs' own write.
    pub fn for_table(lake: &Lake, table: TableRef, delta: &DeltaTable) -> Result<Option<Self>> {
        let log_store = delta.log_store();
        if log_store.name() != "DefaultLogStore" {
            return Ok(None);
        }
        let Some(version) = super::version_of(delta) else {
            return Ok(None);
        };
        let state = delta
            .snapshot()
            .map_err(|e| Error::delta(table.sql_name(), e))?;
        if PROTOCOL.can_write_to(state).is_err() {
            return Ok(None);
        }
        let Ok(writer) = RecordBatchWriter::for_table(delta) else {
            return Ok(None);
        };
        let config = state.table_config();
        Ok(Some(BlindAppender {
            table,
            log_store,
            url: lake.table_url(table)?,
            options: lake.options.clone(),
            opened: state.clone(),
            writer,
            version,
            checkpoint_interval: i64::try_from(config.checkpoint_interval().get())
                .unwrap_or(i64::MAX),
            log_cleanup: config.enable_expired_log_cleanup(),
            checkpointing: None,
        }))
    }

    /// The last version this appender committed (or opened the table at).
    pub fn version(&self) -> i64 {
        self.version
    }

    /// Whether batches of `schema` can be appended as they are: the table's columns, in its order,
    /// of its types (nullability aside). A batch with a new column needs delta-rs' schema merge.
    pub fn accepts(&self, schema: &deltalake::arrow::datatypes::Schema) -> bool {
        let table = self.writer.arrow_schema();
        table.fields().len() == schema.fields().len()
            && table
                .fields()
                .iter()
                .zip(schema.fields())
                .all(|(t, b)| t.name() == b.name() && t.data_type().equals_datatype(b.data_type()))
    }

    /// Writes `batches` as new data files and commits them with `markers` and the commit-info
    /// `metadata` as the next table version. The batches must have the table's columns
    /// ([`BlindAppender::accepts`]).
    pub async fn append(
        &mut self,
        batches: Vec<RecordBatch>,
        markers: &[CommitMarker],
        metadata: HashMap<String, serde_json::Value>,
    ) -> Result<Appended> {
        let name = self.table.sql_name();
        let written = async {
            for batch in batches {
                self.writer.write(batch).await?;
            }
            self.writer.flush().await
        };
        let adds = match written.await {
            Ok(adds) => adds,
            Err(e) => {
                self.writer.reset();
                return Err(Error::delta(name, e));
            }
        };
        let operation = DeltaOperation::Write {
            mode: SaveMode::Append,
            partition_by: None,
            predicate: None,
        };
        let actions: Vec<Action> = adds.iter().cloned().map(Action::Add).collect();
        PROTOCOL
            .can_commit(&self.opened, &actions, &operation)
            .map_err(|e| Error::delta(&name, e.into()))?;
        let txns = markers
            .iter()
            .map(|m| Transaction::new(&m.app_id, m.version))
            .collect();
        let bytes = CommitData::new(actions, operation, metadata, txns)
            .get_bytes()
            .map_err(|e| Error::delta(&name, e.into()))?;
        let next = self.version + 1;
        let committed = self
            .log_store
            .write_commit_entry(
                next as u64,
                CommitOrBytes::LogBytes(bytes),
                uuid::Uuid::new_v4(),
            )
            .await;
        match committed {
            Ok(()) => {
                self.version = next;
                self.checkpoint_in_background();
                Ok(Appended::Committed(next))
            }
            Err(TransactionError::VersionAlreadyExists(_)) => {
                // Certainly not committed: the files are nobody's, so they go.
                delete_files(&self.log_store, self.table, &adds).await;
                Ok(Appended::Behind)
            }
            // Whether the commit landed is unknown (a timeout, say): the files stay, as a commit
            // that did land refers to them; unreferenced ones are what VACUUM removes.
            Err(e) => Err(Error::delta(name, e.into())),
        }
    }

    /// Waits for a checkpoint being written in the background, if any.
    pub async fn settle(&mut self) {
        if let Some(done) = self.checkpointing.take() {
            let _ = done.await;
        }
    }

    /// On the table's checkpoint interval (the same versions delta-rs checkpoints at), hands the
    /// checkpoint of the version just committed to the process's checkpoint thread. One per table at
    /// a time: while one is still being written the next interval's is skipped, and the one after
    /// covers it.
    fn checkpoint_in_background(&mut self) {
        if (self.version + 1) % self.checkpoint_interval != 0 {
            return;
        }
        let still_running = self
            .checkpointing
            .as_mut()
            .is_some_and(|done| done.try_recv().is_err_and(|e| e == TryRecvError::Empty));
        if still_running {
            return;
        }
        let (done, finished) = tokio::sync::oneshot::channel();
        let job = CheckpointJob {
            table: self.table.sql_name(),
            url: self.url.clone(),
            options: self.options.clone(),
            version: self.version,
            cleanup: self.log_cleanup,
            done,
        };
        match checkpoint_thread().and_then(|jobs| jobs.send(job).ok()) {
            Some(()) => self.checkpointing = Some(finished),
            None => tracing::warn!(table = %self.table, "the checkpoint thread is not running"),
        }
    }
}

/// A checkpoint for the checkpoint thread to write.
struct CheckpointJob {
    table: String,
    url: url::Url,
    options: HashMap<String, String>,
    version: i64,
    cleanup: bool,
    done: tokio::sync::oneshot::Sender<()>,
}

/// The process's checkpoint thread, started on first use: one thread at the lowest CPU priority with
/// its own runtime and storage clients, so reading a table's log for its checkpoint never holds up
/// the runtime answering the next batch, and the tables it checkpoints stay open between jobs (each
/// checkpoint reads only the commits since the previous one). `None` when it could not be started.
fn checkpoint_thread() -> Option<&'static std::sync::mpsc::Sender<CheckpointJob>> {
    static JOBS: std::sync::OnceLock<Option<std::sync::mpsc::Sender<CheckpointJob>>> =
        std::sync::OnceLock::new();
    JOBS.get_or_init(|| {
        let (send, receive) = std::sync::mpsc::channel::<CheckpointJob>();
        std::thread::Builder::new()
            .name("delta-checkpoint".into())
            .spawn(move || write_checkpoints(receive))
            .map_err(|e| tracing::warn!(error = %e, "could not start the checkpoint thread"))
            .ok()
            .map(|_| send)
    })
    .as_ref()
}

/// The checkpoint thread's loop: one job at a time, until the process ends.
fn write_checkpoints(jobs: std::sync::mpsc::Receiver<CheckpointJob>) {
    lower_priority_of_this_thread();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "no runtime for the checkpoint thread");
            return;
        }
    };
    let mut open: HashMap<url::Url, DeltaTable> = HashMap::new();
    while let Ok(job) = jobs.recv() {
        let cached = open.remove(&job.url);
        let written = runtime.block_on(checkpoint(
            cached,
            job.url.clone(),
            &job.options,
            job.version,
            job.cleanup,
        ));
        match written {
            Ok(table) => {
                open.insert(job.url, table);
            }
            Err(e) => {
                tracing::warn!(table = %job.table, version = job.version, error = %e, "background checkpoint failed")
            }
        }
        let _ = job.done.send(());
    }
}

/// Lowers the calling thread's CPU priority to the minimum (nice 19 on Linux): the threads it
/// starts, such as the Delta kernel's I/O thread, inherit it. A refusal leaves it as it was.
fn lower_priority_of_this_thread() {
    if let Err(e) =
        thread_priority::set_current_thread_priority(thread_priority::ThreadPriority::Min)
    {
        tracing::debug!(error = ?e, "the checkpoint thread keeps the normal priority");
    }
}

/// Deletes the data files of an append that was not committed.
async fn delete_files(log_store: &LogStoreRef, table: TableRef, adds: &[Add]) {
    use object_store::ObjectStoreExt;
    let store = log_store.object_store(None);
    for add in adds {
        let deleted = match object_store::path::Path::from_url_path(&add.path) {
            Ok(path) => store.delete(&path).await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = deleted {
            tracing::warn!(table = %table.sql_name(), path = %add.path, error = %e,
                "could not delete the data file of an append that lost the race for its version");
        }
    }
}

/// Writes the checkpoint of `version` and, when the table says so, removes log entries past the
/// log retention that the checkpoint makes unnecessary. Returns the table as of `version`.
async fn checkpoint(
    cached: Option<DeltaTable>,
    url: url::Url,
    options: &HashMap<String, String>,
    version: i64,
    cleanup: bool,
) -> deltalake::DeltaResult<DeltaTable> {
    let version = version as u64;
    let table = match cached {
        Some(mut table) if table.version().is_some_and(|v| v < version) => {
            table.update_incremental(Some(version)).await?;
            table
        }
        _ => {
            deltalake::DeltaTableBuilder::from_url(url)?
                .with_storage_options(options.clone())
                .with_version(version)
                .load()
                .await?
        }
    };
    deltalake::checkpoints::create_checkpoint(&table, None).await?;
    if cleanup {
        deltalake::checkpoints::cleanup_metadata(&table, None).await?;
    }
    Ok(table)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use deltalake::arrow::array::{Int64Array, StringArray};
    use deltalake::arrow::datatypes::{DataType, Field, Schema};

    use super::*;
    use crate::storage::Layer;

    const PROBE: TableRef = TableRef::new(Layer::Bronze, "blind_probe");

    fn schema() -> Arc<Schema> {
        Arc::new(Schema::new(vec![
            Field::new("facility", DataType::Utf8, true),
            Field::new("n", DataType::Int64, true),
        ]))
    }

    fn batch(facility: &str, from: i64, rows: i64) -> RecordBatch {
        let ns: Vec<i64> = (from..from + rows).collect();
        RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(StringArray::from(vec![facility; rows as usize])),
                Arc::new(Int64Array::from(ns)),
            ],
        )
        .unwrap()
    }

    async fn appender(lake: &Lake) -> BlindAppender {
        let delta = lake.open_or_create(PROBE, &schema()).await.unwrap();
        BlindAppender::for_table(lake, PROBE, &delta)
            .unwrap()
            .expect("a local table takes blind appends")
    }

    async fn query_text(lake: &Lake, sql: &str) -> String {
        let rows = lake.sql(&[PROBE], sql).await.unwrap();
        deltalake::arrow::util::pretty::pretty_format_batches(&rows)
            .unwrap()
            .to_string()
    }

    fn parquet_files(dir: &std::path::Path) -> usize {
        std::fs::read_dir(dir)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == "parquet")
            })
            .count()
    }

    #[tokio::test]
    async fn blind_appends_are_ordinary_delta_commits() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open(dir.path().to_str().unwrap()).await.unwrap();
        let mut a = appender(&lake).await;
        assert_eq!(a.version(), 0);
        let marker = CommitMarker {
            app_id: "probe-run".into(),
            version: 7,
        };
        let meta = HashMap::from([("patientflow.run_id".to_string(), serde_json::json!("r1"))]);
        assert_eq!(
            a.append(
                vec![batch("MHA01", 0, 3)],
                std::slice::from_ref(&marker),
                meta
            )
            .await
            .unwrap(),
            Appended::Committed(1)
        );
        assert_eq!(
            a.append(vec![batch("MHA02", 3, 2)], &[], HashMap::new())
                .await
                .unwrap(),
            Appended::Committed(2)
        );

        // delta-rs reads what was committed: rows, the marker, commit info and file statistics.
        let table = lake.open_table(PROBE).await.unwrap().unwrap();
        assert_eq!(table.version(), Some(2));
        assert_eq!(
            lake.marker_version(&table, "probe-run").await.unwrap(),
            Some(7)
        );
        let text = query_text(
            &lake,
            "SELECT facility, count(*) AS c, sum(n) AS s FROM bronze_blind_probe GROUP BY facility ORDER BY facility",
        )
        .await;
        assert!(text.contains("| MHA01    | 3 | 3 |"), "{text}");
        assert!(text.contains("| MHA02    | 2 | 7 |"), "{text}");
        let commit = lake_commit(&table, 1).await;
        assert!(commit.contains("\"patientflow.run_id\":\"r1\""), "{commit}");
        assert!(commit.contains("\"operation\":\"WRITE\""), "{commit}");
        // Statistics for the data-skipping columns, as delta-rs' own writes carry them.
        let add: serde_json::Value = commit
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .find_map(|v| v.get("add").cloned())
            .expect("an add action");
        let stats: serde_json::Value =
            serde_json::from_str(add["stats"].as_str().expect("stats")).unwrap();
        assert_eq!(stats["numRecords"], 3, "{stats}");
        assert_eq!(
            (&stats["minValues"]["n"], &stats["maxValues"]["n"]),
            (&0.into(), &2.into())
        );
    }

    async fn lake_commit(table: &DeltaTable, version: u64) -> String {
        let bytes = table
            .log_store()
            .read_commit_entry(version)
            .await
            .unwrap()
            .unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn a_lost_race_commits_nothing_and_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open(dir.path().to_str().unwrap()).await.unwrap();
        let mut first = appender(&lake).await;
        let mut second = appender(&lake).await;
        assert_eq!(
            first
                .append(vec![batch("MHA01", 0, 2)], &[], HashMap::new())
                .await
                .unwrap(),
            Appended::Committed(1)
        );
        assert_eq!(
            second
                .append(vec![batch("MHA02", 10, 5)], &[], HashMap::new())
                .await
                .unwrap(),
            Appended::Behind
        );
        assert_eq!(second.version(), 0, "a lost race does not move the version");
        let table_dir = dir.path().join("bronze/blind_probe");
        assert_eq!(parquet_files(&table_dir), 1, "the loser's file is deleted");
        let rows = lake
            .sql(&[PROBE], "SELECT count(*) FROM bronze_blind_probe")
            .await
            .unwrap();
        let n = rows[0]
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap()
            .value(0);
        assert_eq!(n, 2);
    }

    #[tokio::test]
    async fn checkpoints_follow_the_table_interval_in_the_background() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open(dir.path().to_str().unwrap()).await.unwrap();
        let mut a = appender(&lake).await;
        let log = dir.path().join("bronze/blind_probe/_delta_log");
        // delta-rs' default interval is 100 commits: versions 1..=98 leave no checkpoint.
        for i in 0..98 {
            a.append(vec![batch("MHA01", i, 1)], &[], HashMap::new())
                .await
                .unwrap();
        }
        a.settle().await;
        assert!(!log.join("_last_checkpoint").exists());
        a.append(vec![batch("MHA01", 98, 1)], &[], HashMap::new())
            .await
            .unwrap();
        a.settle().await;
        assert_eq!(a.version(), 99);
        assert!(log.join("00000000000000000099.checkpoint.parquet").exists());
        let table = lake.open_table(PROBE).await.unwrap().unwrap();
        assert_eq!(table.version(), Some(99));
        assert_eq!(table.snapshot().unwrap().log_data().num_files(), 99);
    }

    #[tokio::test]
    async fn lake_appends_of_two_processes_interleave_and_new_columns_still_merge() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_str().unwrap();
        // Two lakes on one folder: two processes, each with its own open tables.
        let (a, b) = (
            Lake::open(root).await.unwrap(),
            Lake::open(root).await.unwrap(),
        );
        let append = |lake: &Lake, batch: RecordBatch| {
            let lake = lake.clone();
            async move {
                lake.append(PROBE, vec![batch], &[], HashMap::new())
                    .await
                    .unwrap()
            }
        };
        assert_eq!(
            append(&a, batch("MHA01", 0, 2)).await,
            1,
            "created, then written"
        );
        assert_eq!(append(&b, batch("MHA02", 2, 2)).await, 2);
        // a's appender is at 1: it loses the race for 2 and delta-rs' write catches up.
        assert_eq!(append(&a, batch("MHA01", 4, 1)).await, 3);
        assert_eq!(
            append(&a, batch("MHA01", 5, 1)).await,
            4,
            "straight to the log"
        );
        // A new column goes through delta-rs' schema merge.
        let wider = Arc::new(Schema::new(vec![
            Field::new("facility", DataType::Utf8, true),
            Field::new("n", DataType::Int64, true),
            Field::new("note", DataType::Utf8, true),
        ]));
        let noted = RecordBatch::try_new(
            wider,
            vec![
                Arc::new(StringArray::from(vec!["MHA02"])),
                Arc::new(Int64Array::from(vec![6])),
                Arc::new(StringArray::from(vec!["late"])),
            ],
        )
        .unwrap();
        assert_eq!(append(&b, noted).await, 5);
        // a still has the narrower columns: behind again, and the merge fills the new one with nulls.
        assert_eq!(append(&a, batch("MHA01", 7, 1)).await, 6);
        let text = query_text(
            &a,
            "SELECT concat(count(*), ',', sum(n), ',', count(note)) AS v FROM bronze_blind_probe",
        )
        .await;
        assert!(text.contains("8,28,1"), "rows, their sum, notes: {text}");
    }
}
