//! Background appenders: rows queued without waiting, written by one task in batches (the audit trail,
//! the run ledger's Event Hub rows).

use std::future::Future;

use tokio::sync::{mpsc, oneshot};

/// What goes through a background appender's queue.
pub enum Queued<T> {
    /// A row to write.
    Row(Box<T>),
    /// Answered once every row queued before it has been written (or failed).
    Flush(oneshot::Sender<()>),
}

/// Starts the task that drains the queue: it takes what has queued up (at most `max_batch` rows), hands
/// the rows to `write` as one batch, then answers the flushes queued among them.
pub fn spawn_appender<T, F, Fut>(
    capacity: usize,
    max_batch: usize,
    mut write: F,
) -> mpsc::Sender<Queued<T>>
where
    T: Send + 'static,
    F: FnMut(Vec<T>) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let (tx, mut rx) = mpsc::channel::<Queued<T>>(capacity);
    tokio::spawn(async move {
        while let Some(first) = rx.recv().await {
            let mut rows = Vec::new();
            let mut flushes = Vec::new();
            let mut next = Some(first);
            while let Some(m) = next.take() {
                match m {
                    Queued::Row(r) => rows.push(*r),
                    Queued::Flush(s) => flushes.push(s),
                }
                if rows.len() < max_batch {
                    next = rx.try_recv().ok();
                }
            }
            if !rows.is_empty() {
                write(rows).await;
            }
            for s in flushes {
                let _ = s.send(());
            }
        }
    });
    tx
}

/// Waits until every row queued on `tx` before this call has been written (or failed).
pub async fn flush<T>(tx: &mpsc::Sender<Queued<T>>) {
    let (s, r) = oneshot::channel();
    if tx.send(Queued::Flush(s)).await.is_ok() {
        let _ = r.await;
    }
}
