//! Buffered, byte-counting file output.

use crate::SimError;
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// A buffered output file that counts its bytes.
pub struct Sink {
    w: BufWriter<File>,
    path: PathBuf,
    bytes: u64,
}

impl Sink {
    /// Write raw text.
    pub fn text(&mut self, s: &str) -> Result<(), SimError> {
        self.w
            .write_all(s.as_bytes())
            .map_err(|e| SimError::io(&self.path, e))?;
        self.bytes += s.len() as u64;
        Ok(())
    }

    /// Write one CSV record (RFC 4180 quoting where needed) with an LF line ending.
    pub fn csv_row<S: AsRef<str>>(&mut self, fields: &[S]) -> Result<(), SimError> {
        let mut line = String::with_capacity(160);
        for (i, f) in fields.iter().enumerate() {
            if i > 0 {
                line.push(',');
            }
            push_csv_field(&mut line, f.as_ref());
        }
        line.push('\n');
        self.text(&line)
    }
}

/// Append a CSV field, quoting it when it contains a comma, quote or line break.
pub fn push_csv_field(out: &mut String, f: &str) {
    if f.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&f.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(f);
    }
}

/// The output folder: creates files and keeps totals.
pub struct Outputs {
    root: PathBuf,
    /// Files written.
    pub files: u64,
    /// Bytes written.
    pub bytes: u64,
}

impl Outputs {
    /// Output rooted at `root` (created if missing).
    pub fn new(root: &Path) -> Result<Self, SimError> {
        fs::create_dir_all(root).map_err(|e| SimError::io(root, e))?;
        Ok(Outputs {
            root: root.to_path_buf(),
            files: 0,
            bytes: 0,
        })
    }

    /// Create (truncate) a file at a relative path, creating parent folders.
    pub fn create(&self, rel: &str) -> Result<Sink, SimError> {
        let path = self.root.join(rel);
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(|e| SimError::io(dir, e))?;
        }
        let f = File::create(&path).map_err(|e| SimError::io(&path, e))?;
        Ok(Sink {
            w: BufWriter::with_capacity(256 * 1024, f),
            path,
            bytes: 0,
        })
    }

    /// Flush and account a finished file.
    pub fn close(&mut self, mut sink: Sink) -> Result<(), SimError> {
        sink.w.flush().map_err(|e| SimError::io(&sink.path, e))?;
        self.files += 1;
        self.bytes += sink.bytes;
        Ok(())
    }

    /// Copy a written file to another relative path.
    pub fn copy(&mut self, from_rel: &str, to_rel: &str) -> Result<(), SimError> {
        let from = self.root.join(from_rel);
        let to = self.root.join(to_rel);
        let n = fs::copy(&from, &to).map_err(|e| SimError::io(&to, e))?;
        self.files += 1;
        self.bytes += n;
        Ok(())
    }
}
