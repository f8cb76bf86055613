//! Turning the paths a user gives (files, folders, globs) into files to ingest.

use std::path::{Path, PathBuf};

use super::{InputError, InputFile};

/// Largest file read whole. Larger files are refused with a clear error rather than exhausting memory.
pub const MAX_FILE_BYTES: u64 = 512 * 1024 * 1024;

/// Expands files, folders (recursively, in name order, hidden files skipped) and glob patterns.
/// A path that matches nothing is reported as an error; the rest are still returned.
pub fn expand_paths(paths: &[String]) -> (Vec<PathBuf>, Vec<InputError>) {
    let mut files = Vec::new();
    let mut errors = Vec::new();
    for raw in paths {
        let path = Path::new(raw);
        if path.is_file() {
            files.push(path.to_path_buf());
        } else if path.is_dir() {
            walk_dir(path, &mut files, &mut errors);
        } else if raw.contains(['*', '?', '[']) {
            match glob::glob(raw) {
                Ok(matches) => {
                    let mut found = 0;
                    for entry in matches {
                        match entry {
                            Ok(p) if p.is_file() => {
                                files.push(p);
                                found += 1;
                            }
                            Ok(p) if p.is_dir() => {
                                walk_dir(&p, &mut files, &mut errors);
                                found += 1;
                            }
                            Ok(_) => {}
                            Err(e) => errors.push(InputError {
                                input: e.path().display().to_string(),
                                reason: e.error().to_string(),
                            }),
                        }
                    }
                    if found == 0 {
                        errors.push(InputError {
                            input: raw.clone(),
                            reason: "the pattern matches no file".into(),
                        });
                    }
                }
                Err(e) => errors.push(InputError {
                    input: raw.clone(),
                    reason: format!("invalid glob pattern: {e}"),
                }),
            }
        } else {
            errors.push(InputError {
                input: raw.clone(),
                reason: "no such file or directory".into(),
            });
        }
    }
    files.dedup();
    (files, errors)
}

fn walk_dir(dir: &Path, files: &mut Vec<PathBuf>, errors: &mut Vec<InputError>) {
    let mut entries: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).collect(),
        Err(e) => {
            errors.push(InputError {
                input: dir.display().to_string(),
                reason: e.to_string(),
            });
            return;
        }
    };
    entries.sort();
    for entry in entries {
        let hidden = entry
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.'));
        if hidden {
            continue;
        }
        if entry.is_dir() {
            walk_dir(&entry, files, errors);
        } else if entry.is_file() {
            files.push(entry);
        }
    }
}

/// Reads a file whole, refusing files above [`MAX_FILE_BYTES`].
pub fn read_input(path: &Path) -> Result<InputFile, InputError> {
    let fail = |reason: String| InputError {
        input: path.display().to_string(),
        reason,
    };
    let meta = std::fs::metadata(path).map_err(|e| fail(e.to_string()))?;
    if meta.len() > MAX_FILE_BYTES {
        return Err(fail(format!(
            "file is {} MiB, above the {} MiB limit for one file; split it",
            meta.len() / (1024 * 1024),
            MAX_FILE_BYTES / (1024 * 1024)
        )));
    }
    let bytes = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
    Ok(InputFile {
        path: path.to_path_buf(),
        bytes,
    })
}

/// Decodes bytes as UTF-8 (dropping a byte-order mark); bytes that are not UTF-8 are decoded as
/// ISO-8859-1, which maps every byte to one character and so loses nothing. Returns the text and the
/// encoding used (`utf8` or `latin1`).
pub fn decode_text(bytes: &[u8]) -> (String, &'static str) {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    match std::str::from_utf8(bytes) {
        Ok(s) => (s.to_string(), "utf8"),
        Err(_) => (bytes.iter().map(|&b| b as char).collect(), "latin1"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_paths_and_empty_globs_are_errors_but_do_not_stop_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.hl7"), "MSH|^~\\&|").unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/b.hl7"), "x").unwrap();
        std::fs::write(dir.path().join(".hidden"), "x").unwrap();
        let (files, errors) = expand_paths(&[
            dir.path().display().to_string(),
            dir.path().join("nope.hl7").display().to_string(),
            format!("{}/*.none", dir.path().display()),
        ]);
        assert_eq!(files.len(), 2, "{files:?}");
        assert_eq!(errors.len(), 2);
        assert!(errors[0].reason.contains("no such file"));
        assert!(errors[1].reason.contains("matches no file"));
    }

    #[test]
    fn invalid_utf8_is_decoded_losslessly_as_latin1() {
        let raw = b"PID|||1||M\xFCller";
        let (text, enc) = decode_text(raw);
        assert_eq!(enc, "latin1");
        assert!(text.ends_with("Müller"));
        let back: Vec<u8> = text.chars().map(|c| c as u32 as u8).collect();
        assert_eq!(back, raw);
        assert_eq!(decode_text(b"\xEF\xBB\xBFMSH").0, "MSH");
    }
}
