//! Dashboard: the web page (HTML, JS, CSS and the vendored chart library, embedded in the binary) and its
//! data calls under `/api/dashboard/data/`:
//! - `catalog`: the tiles (id, title, doc, tables), the caller's role and the hospitals they may pick;
//! - `version`: the versions of the tables the tiles read, polled by the page (it re-fetches a tile only
//!   when one of its tables changed);
//! - `{tile}?hospital=ID`: one tile's rows (`patientflow_core::serving::dashboard`).
//!
//! Every data call identifies the caller ([`auth::identify`]) and every query runs in the caller's policy
//! session ([`auth::query_as`]): row scopes, PHI masks and small-cell suppression apply. The page itself
//! holds no data. See docs/dashboard.md.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use patientflow_core::security::{Identity, Role};
use patientflow_core::serving::dashboard::{self as catalog, HospitalId, TileParams};
use patientflow_core::serving::query::{self, QueryLimits};
use patientflow_core::serving::tables::known_tables;
use serde_json::{json, Value};

use super::auth;
use super::error::AppError;
use super::functions::{Invocation, Outcome};
use super::protocol::{HttpReply, HttpTriggerRequest, InvokeRequest};
use super::AppState;

/// Limits of one tile's query.
const TILE_LIMITS: QueryLimits = QueryLimits {
    max_rows: 5_000,
    timeout: Duration::from_secs(30),
};

/// The page's files: path under `/api/dashboard/` → (content type, content).
const ASSETS: [(&str, &str, &str); 5] = [
    (
        "index.html",
        "text/html; charset=utf-8",
        include_str!("../../assets/dashboard/index.html"),
    ),
    (
        "dashboard.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/dashboard/dashboard.js"),
    ),
    (
        "dashboard.css",
        "text/css; charset=utf-8",
        include_str!("../../assets/dashboard/dashboard.css"),
    ),
    (
        "vendor/uPlot.iife.min.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/dashboard/vendor/uPlot.iife.min.js"),
    ),
    (
        "vendor/uPlot.min.css",
        "text/css; charset=utf-8",
        include_str!("../../assets/dashboard/vendor/uPlot.min.css"),
    ),
];

/// Dashboard: the page and its assets, or a data call (`data/...`). `path` comes from the
/// `dashboard/{*path}` route.
pub async fn dashboard(
    state: &Arc<AppState>,
    _inv: &Invocation,
    req: &InvokeRequest,
) -> Result<Outcome, AppError> {
    let http = HttpTriggerRequest::from_invocation(req)?;
    let path = http
        .params
        .get("path")
        .map(|p| p.trim_matches('/').to_string())
        .unwrap_or_default();
    let path = if path.is_empty() {
        "index.html".to_string()
    } else {
        path
    };
    if let Some(rest) = path.strip_prefix("data/") {
        return data(state, &http, rest).await;
    }
    let Some((_, content_type, body)) = ASSETS.iter().find(|(p, _, _)| *p == path) else {
        return Err(AppError::NotFound(format!("no dashboard asset '{path}'")));
    };
    let mut reply = HttpReply::text(200, content_type, body.to_string());
    reply
        .headers
        .insert("Cache-Control".into(), "no-cache".into());
    reply
        .headers
        .insert("X-Content-Type-Options".into(), "nosniff".into());
    Ok(Outcome::http(reply, format!("Dashboard: {path}")))
}

fn no_store(mut reply: HttpReply) -> HttpReply {
    reply
        .headers
        .insert("Cache-Control".into(), "no-store".into());
    reply
}

/// One data call.
async fn data(
    state: &Arc<AppState>,
    http: &HttpTriggerRequest,
    what: &str,
) -> Result<Outcome, AppError> {
    let read_path = format!("http:/api/dashboard/data/{what}");
    let identity = auth::identify(state, http, &read_path).await?;
    match what {
        "catalog" => catalog_reply(state, &identity, &read_path).await,
        "version" => version_reply(state).await,
        id => {
            let tile = catalog::tile(id)
                .ok_or_else(|| AppError::NotFound(format!("no dashboard tile '{id}'")))?;
            let hospital = match http.query.get("hospital").map(|h| h.trim()) {
                None | Some("") => None,
                Some(h) => Some(HospitalId::parse(h).map_err(AppError::from_core)?),
            };
            tile_reply(state, &identity, &read_path, tile, hospital.as_ref()).await
        }
    }
}

fn identity_json(identity: &Identity) -> Value {
    json!({
        "subject": identity.subject,
        "role": identity.role.as_str(),
        "scopes": identity.scopes.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "method": identity.method.as_str(),
    })
}

/// The tiles, who the caller is and the hospitals they may pick.
async fn catalog_reply(
    state: &Arc<AppState>,
    identity: &Identity,
    read_path: &str,
) -> Result<Outcome, AppError> {
    let tiles: Vec<Value> = catalog::TILES
        .iter()
        .map(|t| json!({"id": t.id, "title": t.title, "doc": t.doc, "tables": t.tables, "per_hospital": t.per_hospital}))
        .collect();
    let hospitals = match auth::query_as(
        state,
        identity,
        read_path,
        "SELECT hospital_id, name FROM gold_dim_hospital ORDER BY hospital_id",
        TILE_LIMITS,
    )
    .await
    {
        Ok(r) => query::to_json_rows(&r).map_err(AppError::from_core)?,
        Err(_) => json!([]),
    };
    // Scoped roles pick among their own hospitals only (their rows are scoped anyway).
    let hospitals: Vec<Value> = hospitals
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|h| {
            !identity.role.is_scoped()
                || identity
                    .scopes
                    .iter()
                    .any(|s| Some(s.hospital.as_str()) == h["hospital_id"].as_str())
        })
        .collect();
    let reply = HttpReply::json(
        200,
        json!({"tiles": tiles, "identity": identity_json(identity), "hospitals": hospitals,
               "poll_ms": 5000, "thresholds_pct": [85, 95]}),
    );
    Ok(Outcome::http(no_store(reply), "Dashboard: catalog"))
}

/// The versions the server saw last, so that a change made by another process renews the policy
/// sessions at once instead of after their maximum age.
fn last_versions() -> &'static Mutex<BTreeMap<String, Option<i64>>> {
    static LAST: OnceLock<Mutex<BTreeMap<String, Option<i64>>>> = OnceLock::new();
    LAST.get_or_init(|| Mutex::new(BTreeMap::new()))
}

/// The current version of every table a tile reads (no rows are read: the Delta logs only).
async fn version_reply(state: &Arc<AppState>) -> Result<Outcome, AppError> {
    let lake = state.lake().await?;
    let names = catalog::polled_tables();
    let refs: Vec<_> = known_tables()
        .into_iter()
        .filter(|t| names.contains(&t.sql_name().as_str()))
        .collect();
    let opened = futures::future::join_all(refs.iter().map(|t| lake.open_table(*t))).await;
    let mut versions = BTreeMap::new();
    for (t, table) in refs.iter().zip(opened) {
        let v = table
            .map_err(AppError::from_core)?
            .as_ref()
            .and_then(patientflow_core::storage::version_of);
        versions.insert(t.sql_name(), v);
    }
    {
        let mut last = last_versions().lock().unwrap_or_else(|e| e.into_inner());
        if !last.is_empty() && *last != versions {
            state.security.invalidate();
        }
        *last = versions.clone();
    }
    let reply = HttpReply::json(
        200,
        json!({"versions": versions, "checked_at": chrono::Utc::now().to_rfc3339()}),
    );
    Ok(Outcome::http(no_store(reply), "Dashboard: version"))
}

/// True when a query failed because the caller's policy session does not hold a table it reads.
fn not_visible(e: &AppError) -> bool {
    match e {
        AppError::Forbidden(_) => true,
        AppError::BadRequest(m) => {
            let m = m.to_ascii_lowercase();
            m.contains("table") && m.contains("not found")
        }
        _ => false,
    }
}

/// The tables of a tile that do not exist yet in the lake.
async fn missing_tables(state: &Arc<AppState>, tile: &catalog::Tile) -> Vec<String> {
    let Ok(lake) = state.lake().await else {
        return vec![];
    };
    let mut out = Vec::new();
    for t in known_tables() {
        let name = t.sql_name();
        if tile.tables.contains(&name.as_str()) && matches!(lake.open_table(t).await, Ok(None)) {
            out.push(name);
        }
    }
    out
}

/// One tile's rows.
async fn tile_reply(
    state: &Arc<AppState>,
    identity: &Identity,
    read_path: &str,
    tile: &catalog::Tile,
    hospital: Option<&HospitalId>,
) -> Result<Outcome, AppError> {
    // A department user's view is their departments (ids checked like any hospital id).
    let departments: Vec<(HospitalId, Option<HospitalId>)> =
        if identity.role == Role::DepartmentStaff {
            identity
                .scopes
                .iter()
                .filter_map(|s| {
                    let d = match s.department.as_deref() {
                        Some(d) => Some(HospitalId::parse(d).ok()?),
                        None => None,
                    };
                    Some((HospitalId::parse(&s.hospital).ok()?, d))
                })
                .collect()
        } else {
            Vec::new()
        };
    let params = TileParams {
        hospital,
        suppress_small_cells: identity.role == Role::Analyst,
        departments: &departments,
    };
    let sql = catalog::sql(tile, params);
    let base = json!({
        "tile": tile.id,
        "title": tile.title,
        "hospital": if tile.per_hospital { hospital.map(HospitalId::as_str) } else { None },
        "role": identity.role.as_str(),
    });
    let mut body = base.as_object().cloned().unwrap_or_default();
    let line;
    match auth::query_as(state, identity, read_path, &sql, TILE_LIMITS).await {
        Ok(result) => {
            let columns = super::serving::columns_json(&result);
            let rows = query::to_json_rows(&result).map_err(AppError::from_core)?;
            line = format!(
                "Dashboard: tile {} {} rows in {} ms",
                tile.id,
                result.num_rows(),
                result.elapsed.as_millis()
            );
            body.insert("available".into(), json!(true));
            body.insert("columns".into(), json!(columns));
            body.insert("rows".into(), rows);
            body.insert("truncated".into(), json!(result.truncated));
            // The tiles over patient tables suppress small cells in their own SQL (see the catalog).
            let own = params.suppress_small_cells && tile.tables.contains(&"gold_kpi_current_los");
            body.insert("suppressed".into(), json!(result.suppressed || own));
            body.insert(
                "elapsed_ms".into(),
                json!(result.elapsed.as_millis() as u64),
            );
            body.insert("sql".into(), json!(sql));
        }
        Err(e) if not_visible(&e) => {
            let missing = missing_tables(state, tile).await;
            let reason = if missing.is_empty() {
                format!("not available to the {} role", identity.role)
            } else {
                format!(
                    "no data yet ({} not written yet: the first refresh has not run)",
                    missing.join(", ")
                )
            };
            line = format!("Dashboard: tile {} not shown: {reason}", tile.id);
            body.insert("available".into(), json!(false));
            body.insert("reason".into(), json!(reason));
        }
        Err(e) => return Err(e),
    }
    Ok(Outcome::http(
        no_store(HttpReply::json(200, Value::Object(body))),
        line,
    ))
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt;

    use super::super::{app, auth, AppState, Settings};

    async fn get(state: &std::sync::Arc<AppState>, uri: &str) -> (StatusCode, String) {
        let req = Request::builder().uri(uri).body(Body::empty()).unwrap();
        let resp = app(state.clone()).oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    #[tokio::test]
    async fn the_page_is_public_and_the_data_calls_need_an_identity() {
        let dir = tempfile::tempdir().unwrap();
        let lake = dir.path().join("lake");
        let closed = AppState::with_security(
            Settings::from_env(lake.to_str().unwrap()),
            auth::Security::closed(),
        );
        for page in [
            "/api/dashboard",
            "/api/dashboard/",
            "/api/dashboard/dashboard.js",
            "/api/dashboard/vendor/uPlot.iife.min.js",
        ] {
            let (s, _) = get(&closed, page).await;
            assert_eq!(s, StatusCode::OK, "{page}");
        }
        assert_eq!(
            get(&closed, "/api/dashboard/nope.js").await.0,
            StatusCode::NOT_FOUND
        );
        for call in ["catalog", "version", "summary"] {
            let (s, b) = get(&closed, &format!("/api/dashboard/data/{call}")).await;
            assert_eq!(s, StatusCode::UNAUTHORIZED, "{call}: {b}");
        }

        // Demo mode on an empty lake: tiles say there is no data yet, bad ids are refused.
        let demo = AppState::with_security(
            Settings::from_env(lake.to_str().unwrap()),
            auth::Security::new(patientflow_core::security::SecuritySettings {
                anonymous_demo: true,
                ..Default::default()
            })
            .unwrap(),
        );
        let (s, b) = get(&demo, "/api/dashboard/data/occupancy").await;
        assert_eq!(s, StatusCode::OK, "{b}");
        let v: serde_json::Value = serde_json::from_str(&b).unwrap();
        assert_eq!(v["available"], false, "{v}");
        assert!(v["reason"].as_str().unwrap().contains("no data yet"), "{v}");
        let (s, _) = get(&demo, "/api/dashboard/data/occupancy?hospital=a'b").await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        let (s, _) = get(&demo, "/api/dashboard/data/no_such_tile").await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        let (s, b) = get(&demo, "/api/dashboard/data/catalog").await;
        assert_eq!(s, StatusCode::OK);
        assert!(b.contains("\"role\":\"analyst\""), "{b}");
    }
}
