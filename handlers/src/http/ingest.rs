//! Bronze ingestion functions: AdtIngest (Event Hub), EhrBatchIngest (blob via Event Grid),
//! EhrBatchIngestHttp (ADF), DepartmentSync / DepartmentSyncTimer.

use std::sync::Arc;

use base64::Engine;
use chrono::Utc;
use patientflow_core::bronze::{self, IngestReport};
use patientflow_core::ops::ledger::StageOutput;
use serde_json::{json, Map, Value};

use super::error::AppError;
use super::eventhub::decode_batch;
use super::functions::{Invocation, Outcome};
use super::landing::{classify, scratch_path, FileKind, Landing};
use super::protocol::{get_ci, unwrap_json, HttpReply, HttpTriggerRequest, InvokeRequest};
use super::AppState;

fn quiet(_: &str, _: usize) {}

/// Runs a core future that is not `Send` (the file ingests take a `&dyn Fn` progress callback, which is
/// not `Sync`) on a blocking thread of the runtime, so the invocation future stays `Send`.
async fn off_thread<F, Fut, T>(make: F) -> Result<T, AppError>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = T>,
    T: Send + 'static,
{
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || handle.block_on(make()))
        .await
        .map_err(|e| AppError::Internal(format!("ingest task: {e}")))
}

/// One line summarising an ingest report.
pub fn summary(what: &str, r: &IngestReport) -> String {
    format!(
        "{what}: run {} inputs {} rows {} duplicates {} id_conflicts {} flagged {} already_ingested {} errors {}",
        r.run_id,
        r.inputs_seen,
        r.total_rows(),
        r.duplicates_skipped,
        r.id_conflicts,
        r.flagged_rows,
        r.inputs_already_ingested,
        r.errors.len()
    )
}

/// AdtIngest: the Event Hub batch into Bronze in one commit. A write failure fails the invocation (so
/// the retry policy holds the checkpoint); unparseable messages are stored flagged by the ingestor.
pub async fn adt_ingest(
    state: &Arc<AppState>,
    inv: &Invocation,
    req: &InvokeRequest,
) -> Result<Outcome, AppError> {
    let started_at = Utc::now();
    let batch = decode_batch(req, &state.settings.event_hub_name)?;
    let mut logs: Vec<String> = batch.notes.clone();
    for note in &batch.notes {
        tracing::warn!("{note}");
    }
    let n = batch.events.len();
    if n == 0 {
        logs.push("AdtIngest: empty batch, nothing to write".into());
        return Ok(Outcome {
            reply: None,
            logs,
            return_value: Some(json!(IngestReport::default())),
            run: None,
        });
    }
    let ingestor = state
        .adt_ingestor()
        .await
        .map_err(|e| AppError::stage("bronze.adt", e))?;
    let run_id = bronze::new_run_id("eventhub");
    match ingestor.ingest_events(batch.events, &run_id).await {
        Ok(report) => {
            logs.push(summary(
                &format!(
                    "AdtIngest hub {} partition {}",
                    batch.hub,
                    batch.partition.as_deref().unwrap_or("-")
                ),
                &report,
            ));
            let run = report.stage_report("bronze.adt", "eventhub", started_at, Utc::now());
            Ok(Outcome {
                reply: None,
                logs,
                return_value: Some(json!(report)),
                run: Some(run),
            })
        }
        Err(e) => {
            state.reset_adt_ingestor().await;
            tracing::debug!(invocation = %inv.id, "ADT ingestor reset after a failed write");
            Err(AppError::stage(
                "bronze.adt",
                format!("{n} events not written (the host retries the batch): {e}"),
            ))
        }
    }
}

/// Ingests local files: reference files through the reference ingest, the rest through the EHR profiles.
async fn ingest_files(
    state: &Arc<AppState>,
    files: &[(String, std::path::PathBuf)],
    profile: Option<&bronze::profiles::Profile>,
    run_prefix: &str,
) -> Result<(IngestReport, Vec<String>), AppError> {
    let lake = state.lake().await?;
    let mut reference = Vec::new();
    let mut ehr = Vec::new();
    let mut ignored = Vec::new();
    for (name, path) in files {
        match classify(name) {
            FileKind::Reference => reference.push(path.display().to_string()),
            FileKind::Ehr => ehr.push(path.display().to_string()),
            FileKind::Other => ignored.push(name.clone()),
        }
    }
    let run_id = bronze::new_run_id(run_prefix);
    let mut report = IngestReport {
        run_id: run_id.clone(),
        ..Default::default()
    };
    if !reference.is_empty() {
        let (lake, run) = (lake.clone(), run_id.clone());
        let r = off_thread(move || async move {
            bronze::reference::ingest_paths(&lake, &reference, &run, &quiet).await
        })
        .await?
        .map_err(|e| AppError::stage("bronze.reference", e))?;
        report.absorb(r);
    }
    if !ehr.is_empty() {
        let (lake, run, profile) = (lake.clone(), run_id.clone(), profile.cloned());
        let r = off_thread(move || async move {
            bronze::ehr::ingest_paths(&lake, &ehr, profile.as_ref(), &run, &quiet).await
        })
        .await?
        .map_err(|e| AppError::stage("bronze.ehr", e))?;
        report.absorb(r);
    }
    Ok((report, ignored))
}

/// EhrBatchIngest: the blob trigger. `Data.blob` holds the content (base64 with `dataType: binary`, or
/// text), `Metadata.name` the path below the container (`{name}` of `landing/{name}`), `Metadata.Uri` the
/// blob URL.
pub async fn ehr_blob(
    state: &Arc<AppState>,
    _inv: &Invocation,
    req: &InvokeRequest,
) -> Result<Outcome, AppError> {
    let started_at = Utc::now();
    let name = blob_name(req).ok_or_else(|| {
        AppError::BadRequest(
            "the blob trigger payload names no blob (Metadata.name / Metadata.Uri missing)".into(),
        )
    })?;
    if classify(&name) == FileKind::Other {
        let line = format!("EhrBatchIngest: {name} ignored (not an EHR extract or reference file)");
        return Ok(Outcome {
            reply: None,
            logs: vec![line],
            return_value: Some(json!({"ignored": [name]})),
            run: None,
        });
    }
    let content = blob_content(req)?;
    let scratch =
        tempfile::tempdir().map_err(|e| AppError::Internal(format!("temporary folder: {e}")))?;
    let path = scratch_path(scratch.path(), &name)?;
    tokio::fs::write(&path, &content)
        .await
        .map_err(|e| AppError::Internal(format!("{}: {e}", path.display())))?;
    let stage = stage_of(&[name.as_str()]);
    let (report, _) = ingest_files(state, &[(name.clone(), path)], None, "blob").await?;
    let mut logs = vec![summary(&format!("EhrBatchIngest {name}"), &report)];
    for n in &report.inputs_not_applicable {
        logs.push(format!(
            "EhrBatchIngest: {name} ignored: no source profile recognises it ({n})"
        ));
    }
    if !report.errors.is_empty() {
        let reasons: Vec<String> = report.errors.iter().map(|e| e.reason.clone()).collect();
        return Err(AppError::stage(
            stage,
            format!("{name} could not be ingested: {}", reasons.join("; ")),
        ));
    }
    Ok(Outcome {
        reply: None,
        logs,
        return_value: Some(json!(report)),
        run: Some(report.stage_report(stage, "blob", started_at, Utc::now())),
    })
}

fn blob_name(req: &InvokeRequest) -> Option<String> {
    let text = |v: Value| match v {
        Value::String(s) if !s.trim().is_empty() => Some(s),
        _ => None,
    };
    if let Some(name) = req.metadata("name").and_then(text) {
        return Some(name);
    }
    // From the URI: https://acct.blob.core.windows.net/<container>/<path…>
    let uri = req.metadata("Uri").and_then(text)?;
    let parsed = url::Url::parse(&uri).ok()?;
    let mut segments: Vec<String> = parsed
        .path_segments()?
        .map(percent_decode)
        .filter(|s| !s.is_empty())
        .collect();
    if parsed
        .host_str()
        .is_some_and(|h| h.starts_with("127.0.0.1") || h.starts_with("localhost"))
        && !segments.is_empty()
    {
        segments.remove(0); // emulator URLs carry the account first
    }
    (segments.len() >= 2).then(|| segments[1..].join("/"))
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(b) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The blob's bytes: base64 (`dataType: binary`) when the text decodes strictly as base64, else the text.
fn blob_content(req: &InvokeRequest) -> Result<Vec<u8>, AppError> {
    let raw = get_ci(&req.data, "blob")
        .or_else(|| req.data.values().next())
        .ok_or_else(|| {
            AppError::BadRequest("Data.blob is missing: not a blob trigger payload".into())
        })?;
    let value = match raw {
        Value::String(s) => match serde_json::from_str::<Value>(s) {
            // JSON-in-string: a string body double-encoded by the host.
            Ok(Value::String(inner)) => inner,
            _ => s.clone(),
        },
        Value::Null => String::new(),
        other => other.to_string(),
    };
    let compact: String = value.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    if !compact.is_empty() && compact.len().is_multiple_of(4) {
        if let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(compact.as_bytes()) {
            return Ok(bytes);
        }
    }
    Ok(value.into_bytes())
}

/// The body EhrBatchIngestHttp accepts (docs/deployment.md §8): ADF's
/// `{"container", "folder", "extract_date", "files": [{"name", "type"}], "run_id", "source"}`, or
/// `"paths": ["ehr/x.csv"]` (paths in the landing area), or inline `"content": [{"name", "text"|"base64"}]`,
/// and optionally `"profile"`.
struct EhrRequest {
    folder: String,
    extract_date: Option<String>,
    names: Vec<String>,
    inline: Vec<(String, Vec<u8>)>,
    profile: Option<String>,
    adf_run_id: Option<String>,
    source: Option<String>,
}

fn str_field(m: &Map<String, Value>, k: &str) -> Option<String> {
    get_ci(m, k)
        .and_then(|v| v.as_str())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

fn parse_ehr_request(
    body: &Map<String, Value>,
    landing_name: &str,
) -> Result<EhrRequest, AppError> {
    if let Some(c) = str_field(body, "container") {
        let configured = landing_name
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or(landing_name);
        if c != configured {
            return Err(AppError::BadRequest(format!(
                "container '{c}' is not the landing container '{configured}' (PATIENTFLOW_LANDING_CONTAINER)"
            )));
        }
    }
    let folder = str_field(body, "folder").unwrap_or_default();
    let join = |name: &str| {
        if folder.is_empty() {
            name.to_string()
        } else {
            format!("{}/{}", folder.trim_end_matches('/'), name)
        }
    };
    let mut names = Vec::new();
    if let Some(files) = get_ci(body, "files") {
        let Value::Array(items) = unwrap_json(files) else {
            return Err(AppError::BadRequest("'files' must be an array".into()));
        };
        for item in items {
            match item {
                Value::String(s) => names.push(join(&s)),
                Value::Object(o) => {
                    let name = str_field(&o, "name").ok_or_else(|| {
                        AppError::BadRequest("a 'files' entry has no name".into())
                    })?;
                    if str_field(&o, "type").is_some_and(|t| t.eq_ignore_ascii_case("folder")) {
                        names.push(format!("{}/", join(&name)));
                    } else {
                        names.push(join(&name));
                    }
                }
                _ => {
                    return Err(AppError::BadRequest(
                        "'files' entries are names or {\"name\", \"type\"} objects".into(),
                    ))
                }
            }
        }
    }
    if let Some(paths) = get_ci(body, "paths") {
        let Value::Array(items) = unwrap_json(paths) else {
            return Err(AppError::BadRequest(
                "'paths' must be an array of landing paths".into(),
            ));
        };
        for p in items {
            names.push(
                p.as_str()
                    .ok_or_else(|| AppError::BadRequest("'paths' entries must be strings".into()))?
                    .to_string(),
            );
        }
    }
    let mut inline = Vec::new();
    if let Some(content) = get_ci(body, "content") {
        let Value::Array(items) = unwrap_json(content) else {
            return Err(AppError::BadRequest(
                "'content' must be an array of {\"name\", \"text\"|\"base64\"}".into(),
            ));
        };
        for item in items {
            let Value::Object(o) = item else {
                return Err(AppError::BadRequest(
                    "'content' entries are {\"name\", \"text\"|\"base64\"} objects".into(),
                ));
            };
            let name = str_field(&o, "name")
                .ok_or_else(|| AppError::BadRequest("a 'content' entry has no name".into()))?;
            let bytes = if let Some(text) = get_ci(&o, "text").and_then(|v| v.as_str()) {
                text.as_bytes().to_vec()
            } else if let Some(b64) = get_ci(&o, "base64").and_then(|v| v.as_str()) {
                base64::engine::general_purpose::STANDARD
                    .decode(b64.trim())
                    .map_err(|e| {
                        AppError::BadRequest(format!("content of {name} is not base64: {e}"))
                    })?
            } else {
                return Err(AppError::BadRequest(format!(
                    "content entry {name} has neither 'text' nor 'base64'"
                )));
            };
            inline.push((name, bytes));
        }
    }
    Ok(EhrRequest {
        folder,
        extract_date: str_field(body, "extract_date"),
        names,
        inline,
        profile: str_field(body, "profile"),
        adf_run_id: str_field(body, "run_id"),
        source: str_field(body, "source"),
    })
}

/// EhrBatchIngestHttp (`POST /api/ehr/ingest`, called by ADF's DailyEhrIngestion): ingests the named
/// files (or the day's files of the folder, or inline content) and answers a JSON object with the report.
/// 200 when every input was ingested (or already was); 422 with the report when some could not be.
pub async fn ehr_http(
    state: &Arc<AppState>,
    _inv: &Invocation,
    req: &InvokeRequest,
) -> Result<Outcome, AppError> {
    let started_at = Utc::now();
    let http = HttpTriggerRequest::from_invocation(req)?;
    let body = http.json_body()?;
    let request = parse_ehr_request(&body, &state.settings.landing)?;
    let profile = match &request.profile {
        Some(name) => Some(
            bronze::ehr::builtin_profile(name).map_err(|e| AppError::BadRequest(e.to_string()))?,
        ),
        None => None,
    };
    let lake = state.lake().await?;
    let scratch =
        tempfile::tempdir().map_err(|e| AppError::Internal(format!("temporary folder: {e}")))?;
    let mut files: Vec<(String, std::path::PathBuf)> = Vec::new();
    let mut missing = Vec::new();
    let needs_landing = request.inline.is_empty() || !request.names.is_empty();
    if needs_landing {
        let landing = Landing::open(&state.settings, lake)?;
        let mut names = request.names.clone();
        if names.is_empty() {
            names = landing.list(&request.folder).await?;
            if let Some(date) = &request.extract_date {
                names.retain(|n| n.rsplit('/').next().unwrap_or(n).contains(date.as_str()));
            }
        }
        for name in names {
            if name.ends_with('/') {
                for child in landing.list(&name).await? {
                    if let Some(p) = landing.fetch(&child, scratch.path()).await? {
                        files.push((child, p));
                    }
                }
                continue;
            }
            match landing.fetch(&name, scratch.path()).await? {
                Some(p) => files.push((name, p)),
                None => missing.push(name),
            }
        }
    }
    for (name, bytes) in &request.inline {
        let path = scratch_path(&scratch.path().join("inline"), name)?;
        std::fs::write(&path, bytes)
            .map_err(|e| AppError::Internal(format!("{}: {e}", path.display())))?;
        files.push((name.clone(), path));
    }
    let stage = stage_of(&files.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>());
    let (mut report, ignored) = ingest_files(state, &files, profile.as_ref(), "ehr-http").await?;
    for m in &missing {
        report.errors.push(bronze::InputError {
            input: m.clone(),
            reason: "no such file in the landing area".into(),
        });
    }
    let status = if report.errors.is_empty() {
        "succeeded"
    } else {
        "partial"
    };
    let line = format!(
        "{} source={} adf_run_id={}",
        summary("EhrBatchIngestHttp", &report),
        request.source.as_deref().unwrap_or("-"),
        request.adf_run_id.as_deref().unwrap_or("-")
    );
    let body = json!({
        "status": status,
        "run_id": report.run_id,
        "adf_run_id": request.adf_run_id,
        "files": files.len() + missing.len(),
        "ignored": ignored,
        "report": report,
    });
    let code = if report.errors.is_empty() { 200 } else { 422 };
    let mut outcome = Outcome::http(HttpReply::json(code, body), line);
    if code != 200 {
        outcome.logs.push(format!(
            "pipeline_run_failed stage=bronze.ehr function=EhrBatchIngestHttp error={} inputs could not be ingested",
            report.errors.len()
        ));
    }
    // Data Factory's DailyEhrIngestion names its run; anything else calling the route is `http`.
    let trigger = if request.adf_run_id.is_some()
        || request
            .source
            .as_deref()
            .is_some_and(|s| s.starts_with("adf"))
    {
        "adf"
    } else {
        "http"
    };
    let mut run = report.stage_report(stage, trigger, started_at, Utc::now());
    if let Value::Object(details) = &mut run.details {
        details.insert("adf_run_id".into(), json!(request.adf_run_id));
        details.insert("source".into(), json!(request.source));
        details.insert("ignored".into(), json!(ignored));
    }
    outcome.return_value = Some(json!(report));
    outcome.run = Some(run);
    Ok(outcome)
}

/// The stage of an ingest of these landing files: `bronze.ehr` when any is an EHR extract,
/// `bronze.reference` when all are hospital or department files.
fn stage_of(names: &[&str]) -> &'static str {
    let kinds: Vec<FileKind> = names.iter().map(|n| classify(n)).collect();
    if !kinds.is_empty() && kinds.iter().all(|k| *k == FileKind::Reference) {
        "bronze.reference"
    } else {
        "bronze.ehr"
    }
}

/// DepartmentSync (HTTP, body optional: `{"folder": "...", "paths": [...]}`) and DepartmentSyncTimer:
/// reference files of the landing area into Bronze.
pub async fn department_sync(
    state: &Arc<AppState>,
    inv: &Invocation,
    req: &InvokeRequest,
) -> Result<Outcome, AppError> {
    let started_at = Utc::now();
    let http_trigger = inv.function.is_http();
    let body = if http_trigger {
        HttpTriggerRequest::from_invocation(req)?.json_body()?
    } else {
        Map::new()
    };
    let folder =
        str_field(&body, "folder").unwrap_or_else(|| state.settings.reference_folder.clone());
    let explicit: Vec<String> = match get_ci(&body, "paths").map(unwrap_json) {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        Some(_) => {
            return Err(AppError::BadRequest(
                "'paths' must be an array of landing paths".into(),
            ))
        }
    };
    let lake = state.lake().await.map_err(|e| {
        if http_trigger {
            e
        } else {
            AppError::stage("bronze.reference", e)
        }
    })?;
    let landing = Landing::open(&state.settings, lake)?;
    let names = if explicit.is_empty() {
        landing.list(&folder).await?
    } else {
        explicit
    };
    let names: Vec<String> = names
        .into_iter()
        .filter(|n| classify(n) == FileKind::Reference)
        .collect();
    let scratch =
        tempfile::tempdir().map_err(|e| AppError::Internal(format!("temporary folder: {e}")))?;
    let mut files = Vec::new();
    for n in &names {
        if let Some(p) = landing.fetch(n, scratch.path()).await? {
            files.push((n.clone(), p));
        }
    }
    let (report, _) = if files.is_empty() {
        (
            IngestReport {
                run_id: bronze::new_run_id("reference"),
                ..Default::default()
            },
            Vec::new(),
        )
    } else {
        ingest_files(state, &files, None, "reference").await?
    };
    let line = if files.is_empty() {
        format!(
            "{}: no reference files (hospitals*, departments*, capacity*) in {} {folder}",
            inv.function.name(),
            landing.describe()
        )
    } else {
        summary(inv.function.name(), &report)
    };
    if !report.errors.is_empty() && !http_trigger {
        let reasons: Vec<String> = report
            .errors
            .iter()
            .map(|e| format!("{}: {}", e.input, e.reason))
            .collect();
        return Err(AppError::stage("bronze.reference", reasons.join("; ")));
    }
    let mut run = report.stage_report(
        "bronze.reference",
        inv.function.ledger_trigger(),
        started_at,
        Utc::now(),
    );
    if files.is_empty() {
        run.details = json!({"reason": line});
    }
    let mut outcome = Outcome {
        reply: None,
        logs: vec![line],
        return_value: Some(json!(report)),
        run: Some(run),
    };
    if http_trigger {
        let code = if report.errors.is_empty() { 200 } else { 422 };
        let status = if files.is_empty() {
            "skipped"
        } else if code == 200 {
            "succeeded"
        } else {
            "partial"
        };
        outcome.reply = Some(HttpReply::json(
            code,
            json!({"status": status, "files": names, "report": report}),
        ));
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adf_body_is_read_as_documented() {
        let body: Map<String, Value> = serde_json::from_str(
            r#"{"container":"landing","folder":"ehr","extract_date":"2026-01-14",
                "files":[{"name":"patients_2026-01-14.csv","type":"File"},{"name":"sub","type":"Folder"}],
                "run_id":"r1","source":"adf:DailyEhrIngestion"}"#,
        )
        .unwrap();
        let r = parse_ehr_request(&body, "landing").unwrap();
        assert_eq!(r.names, vec!["ehr/patients_2026-01-14.csv", "ehr/sub/"]);
        assert_eq!(r.adf_run_id.as_deref(), Some("r1"));
        let bad: Map<String, Value> = serde_json::from_str(r#"{"container":"other"}"#).unwrap();
        assert!(parse_ehr_request(&bad, "landing").is_err());
        let inline: Map<String, Value> = serde_json::from_str(
            r#"{"content":[{"name":"a.csv","text":"x"},{"name":"b.csv","base64":"eQ=="}]}"#,
        )
        .unwrap();
        let r = parse_ehr_request(&inline, "landing").unwrap();
        assert_eq!(r.inline[1].1, b"y");
    }

    #[test]
    fn blob_payloads_decode_base64_or_text() {
        let req = InvokeRequest::parse(
            br#"{"Data":{"blob":"aWQsbmFtZQox"},"Metadata":{"name":"\"ehr/patients.csv\""}}"#,
        )
        .unwrap();
        assert_eq!(blob_content(&req).unwrap(), b"id,name\n1");
        assert_eq!(blob_name(&req).as_deref(), Some("ehr/patients.csv"));
        let req = InvokeRequest::parse(
            br#"{"Data":{"blob":"\"id,name\\n1\""},"Metadata":{"Uri":"http://127.0.0.1:10000/devstoreaccount1/landing/ehr/a%20b.csv"}}"#,
        )
        .unwrap();
        assert_eq!(blob_content(&req).unwrap(), b"id,name\n1");
        assert_eq!(blob_name(&req).as_deref(), Some("ehr/a b.csv"));
    }
}
