//! Streaming mode: the ADT feed as an iterator in delivery order, for real-time replay.

use crate::config::SimConfig;
use crate::engine::Engine;
use crate::model::MessageFormat;
use crate::time::{self, HOUR};
use crate::SimError;
use chrono::{DateTime, Utc};
use std::collections::VecDeque;
use std::time::Duration;

/// One ADT message of the feed, as a hospital would send it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimedMessage {
    /// When the message reaches the ingest endpoint (millisecond precision).
    pub deliver_at: DateTime<Utc>,
    /// Sending hospital id (`MHA01` …).
    pub facility: String,
    /// Wire format of `payload`.
    pub format: MessageFormat,
    /// The message id (MSH-10 / `message_id`); for a message injected with
    /// `malformed_hl7`/`missing_msh10` this is the id the message should have carried.
    pub message_id: String,
    /// Trigger event (`A01` …) of the clean event behind the message.
    pub event_type: String,
    /// The message: HL7 ER7 segments with the hospital's segment terminator, or one JSON object
    /// without a trailing newline. Byte-identical to the message in the generated files.
    pub payload: String,
}

/// Iterator over the ADT feed of a configuration, in delivery order (ties: hospital order, then
/// emission order). It advances the simulation one simulated hour at a time, so memory stays
/// bounded by the hospitals' state; it ends after the last message of the run.
pub struct AdtStream {
    engine: Engine,
    clock: i64,
    buffer: VecDeque<TimedMessage>,
    finished: bool,
}

/// Stream the ADT feed of `cfg` (same messages, same bytes as `generate` writes to `adt/`).
pub fn stream(cfg: &SimConfig) -> Result<AdtStream, SimError> {
    let mut engine = Engine::new(cfg)?;
    engine.parallel = false;
    let clock = engine.start;
    Ok(AdtStream {
        engine,
        clock,
        buffer: VecDeque::new(),
        finished: false,
    })
}

impl AdtStream {
    /// Start of the simulated period.
    pub fn start(&self) -> DateTime<Utc> {
        time::to_utc(self.engine.start)
    }
    /// End of the simulated period (late messages may be delivered after it).
    pub fn end(&self) -> DateTime<Utc> {
        time::to_utc(self.engine.end)
    }

    fn refill(&mut self) {
        while self.buffer.is_empty() && !self.finished {
            let batch = if self.clock >= self.engine.end {
                self.engine.finish();
                self.finished = true;
                self.engine.drain(i64::MAX)
            } else {
                self.clock += HOUR;
                self.engine.run_until(self.clock);
                self.engine.drain(self.clock * 1000)
            };
            for s in &mut self.engine.sims {
                // Streaming keeps no manifest or EHR bookkeeping.
                s.manifest.clear();
                s.touched_encs.clear();
                s.touched_pats.clear();
            }
            for m in batch {
                let facility = self
                    .engine
                    .sims
                    .iter()
                    .find(|s| s.plan.index == m.hosp)
                    .map(|s| s.id())
                    .unwrap_or_default()
                    .to_string();
                self.buffer.push_back(TimedMessage {
                    deliver_at: DateTime::from_timestamp_millis(m.deliver_ms).unwrap_or_default(),
                    facility,
                    format: m.format,
                    message_id: m.message_id,
                    event_type: m.event.to_string(),
                    payload: m.payload,
                });
            }
        }
    }
}

impl Iterator for AdtStream {
    type Item = TimedMessage;
    fn next(&mut self) -> Option<TimedMessage> {
        self.refill();
        self.buffer.pop_front()
    }
}

/// Wall-clock time to wait between two deliveries when replaying at `speed` × real time
/// (`speed` 1 = real time, 60 = one simulated hour per minute). Zero when `next` is not after
/// `prev`, or when `speed` is not a positive finite number (replay as fast as possible).
pub fn pacing_delay(prev: DateTime<Utc>, next: DateTime<Utc>, speed: f64) -> Duration {
    if !(speed.is_finite() && speed > 0.0) {
        return Duration::ZERO;
    }
    let ms = (next - prev).num_milliseconds();
    if ms <= 0 {
        return Duration::ZERO;
    }
    Duration::from_secs_f64(ms as f64 / 1000.0 / speed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pacing() {
        let a = DateTime::from_timestamp(1_000, 0).unwrap();
        let b = DateTime::from_timestamp(1_060, 0).unwrap();
        assert_eq!(pacing_delay(a, b, 1.0), Duration::from_secs(60));
        assert_eq!(pacing_delay(a, b, 60.0), Duration::from_secs(1));
        assert_eq!(pacing_delay(b, a, 1.0), Duration::ZERO);
        assert_eq!(pacing_delay(a, b, 0.0), Duration::ZERO);
        assert_eq!(pacing_delay(a, b, f64::INFINITY), Duration::ZERO);
    }
}
