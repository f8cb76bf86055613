//! Access control over real HTTP against the real binary (`patientflow serve`) and the CLI: every role ×
//! the SQL endpoint and `patientflow query --token` × representative queries → zero rows outside scope
//! and zero unmasked PHI; forged, expired, tampered and wrong-audience tokens and a forged Easy Auth
//! principal → 401/403, audited, nothing returned; PHI reads leave audit rows that are read back.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use patientflow_core::security::settings::TokenSettings;
use patientflow_core::security::{token, Role, Scope};
use patientflow_core::storage::Lake;
use patientflow_simulator::{Hospitals, SimConfig};
use patientflow_tests::binary;
use patientflow_tests::security::{admin_token, settings_json, token as mint, HS256_KEY};
use serde_json::{json, Value};

#[path = "gold_common.rs"]
mod common;
use common::*;

/// Request headers of a case.
type Headers = Vec<(&'static str, String)>;

/// A `serve` process on a lake; killed when dropped.
struct Serve {
    child: Child,
    base: String,
    client: reqwest::Client,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Serve {
    async fn start(lake: &Path, security: &Path) -> Serve {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(binary())
            .args([
                "serve",
                "--no-timers",
                "--port",
                &port.to_string(),
                "--lake",
            ])
            .arg(lake)
            .arg("--security")
            .arg(security)
            .env_remove("PATIENTFLOW_LAKE")
            .env_remove("PATIENTFLOW_SECURITY")
            .env_remove("PATIENTFLOW_SECURITY_FILE")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting patientflow serve");
        let s = Serve {
            child,
            base: format!("http://127.0.0.1:{port}"),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(120))
                .build()
                .unwrap(),
        };
        let started = Instant::now();
        while s.client.get(format!("{}/", s.base)).send().await.is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "serve did not start"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        s
    }

    /// POSTs SQL with the given headers; the status and the JSON body.
    async fn sql_with(&self, sql: &str, headers: &[(&str, String)]) -> (u16, Value) {
        let mut r = self
            .client
            .post(format!("{}/api/query", self.base))
            .json(&json!({ "sql": sql, "max_rows": 100000 }));
        for (k, v) in headers {
            r = r.header(*k, v);
        }
        let r = r.send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn sql(&self, token: &str, sql: &str) -> (u16, Value) {
        self.sql_with(sql, &[("Authorization", format!("Bearer {token}"))])
            .await
    }

    /// Rows of an administrator's query.
    async fn admin_rows(&self, sql: &str) -> Vec<Value> {
        let (status, v) = self.sql(&admin_token(), sql).await;
        assert_eq!(status, 200, "{sql}: {v}");
        v["rows"].as_array().cloned().unwrap()
    }
}

/// The distinct values of the first column of an administrator's query.
async fn truth(s: &Serve, sql: &str) -> BTreeSet<String> {
    s.admin_rows(sql)
        .await
        .iter()
        .filter_map(|r| r.as_object()?.values().next()?.as_str().map(str::to_string))
        .collect()
}

/// Builds a two-day, two-hospital lake through the pipeline; returns the lake path.
async fn build_lake(dir: &Path) -> std::path::PathBuf {
    let cfg = SimConfig {
        days: 2,
        hospitals: Hospitals::Ids(vec!["MHA01".into(), "MHA02".into()]),
        dirty_rate: 0.05,
        ..SimConfig::default()
    };
    let data = generate(&cfg, dir);
    let path = dir.join("lake");
    let lake = Lake::open(path.to_str().unwrap()).await.unwrap();
    ingest(&lake, &data, |_| true).await;
    refresh(&lake, true).await;
    path
}

fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (*b as u32) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn principal(oid: &str, roles: &[&str]) -> String {
    let mut claims = vec![
        json!({"typ": "http://schemas.microsoft.com/identity/claims/objectidentifier", "val": oid}),
    ];
    claims.extend(roles.iter().map(|r| json!({"typ": "roles", "val": r})));
    base64(
        json!({"auth_typ": "aad", "claims": claims, "name_typ": "name", "role_typ": "roles"})
            .to_string()
            .as_bytes(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_role_over_http_and_the_cli_sees_only_its_scope_and_no_unmasked_phi() {
    let dir = tempfile::tempdir().unwrap();
    let lake = build_lake(dir.path()).await;
    let security = dir.path().join("security.json");
    std::fs::write(&security, settings_json()).unwrap();
    let s = Serve::start(&lake, &security).await;

    let family = truth(
        &s,
        "SELECT DISTINCT family_name FROM silver_dim_patient WHERE family_name IS NOT NULL",
    )
    .await;
    let mrns = truth(
        &s,
        "SELECT DISTINCT mrn FROM silver_dim_patient WHERE mrn IS NOT NULL",
    )
    .await;
    let births = truth(&s, "SELECT DISTINCT CAST(birth_date AS VARCHAR) FROM silver_dim_patient WHERE birth_date IS NOT NULL").await;
    assert!(
        family.len() > 20 && mrns.len() > 20,
        "the lake has patients"
    );
    let tables = truth(
        &s,
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'",
    )
    .await;
    assert!(tables.len() > 20, "{tables:?}");

    let mut queries: Vec<String> = tables
        .iter()
        .map(|t| format!("SELECT * FROM {t}"))
        .collect();
    queries.extend(
        [
            "SELECT p.family_name, p.mrn, p.birth_date, e.hospital_id, e.last_department FROM silver_encounters e \
             JOIN silver_dim_patient p ON e.patient_key = p.patient_key",
            "SELECT * FROM gold_dim_patient WHERE patient_key IN (SELECT patient_key FROM gold_fact_encounter)",
            "WITH x AS (SELECT mrn, family_name, hospital_id FROM silver_dim_patient) SELECT * FROM x",
            "SELECT hospital_id, COUNT(*) AS n, MIN(family_name) AS f, MAX(mrn) AS m FROM silver_dim_patient GROUP BY hospital_id",
            "SELECT table_name, column_name FROM information_schema.columns",
        ]
        .map(String::from),
    );
    let roles: Vec<(Role, Vec<&str>)> = vec![
        (Role::Admin, vec![]),
        (Role::Analyst, vec![]),
        (Role::Operator, vec![]),
        (Role::HospitalManager, vec!["MHA01"]),
        (Role::DepartmentStaff, vec!["MHA01/ED"]),
    ];
    println!(
        "{:<18} {:>8} {:>8} {:>8} {:>8}",
        "role", "queries", "allowed", "rows", "leaks"
    );
    for (role, scopes) in &roles {
        let subject = format!("http-{role}");
        let t = mint(&subject, *role, scopes, Duration::from_secs(3600));
        let (mut allowed, mut rows_seen, mut leaks) = (0, 0, 0);
        for q in &queries {
            let (status, v) = s.sql(&t, q).await;
            if status != 200 {
                assert_eq!(status, 400, "{role}: {q}: {v}");
                assert!(*role != Role::Admin, "admin reads everything: {q}: {v}");
                continue;
            }
            allowed += 1;
            for row in v["rows"].as_array().unwrap() {
                rows_seen += 1;
                for (col, val) in row.as_object().unwrap() {
                    let Some(val) = val.as_str() else { continue };
                    if role.masks_phi()
                        && (family.contains(val)
                            || patientflow_tests::security::contains_token(val, &mrns)
                            || (col.contains("birth") && births.contains(val)))
                    {
                        leaks += 1;
                        eprintln!("{role}: PHI {col}='{val}' in {q}");
                    }
                    if *role != Role::Admin
                        && ["payload", "raw_record", "raw_value"].contains(&col.as_str())
                    {
                        leaks += 1;
                        eprintln!("{role}: raw {col} in {q}");
                    }
                    let reference = q.starts_with("SELECT * FROM ")
                        && (q.contains("dim_hospital")
                            || q.contains("dim_department")
                            || q.ends_with("_hospitals")
                            || q.ends_with("_departments"));
                    if role.is_scoped() && col == "hospital_id" && val != "MHA01" && !reference {
                        leaks += 1;
                        eprintln!("{role}: hospital {val} outside scope in {q}");
                    }
                }
            }
        }
        println!(
            "{:<18} {:>8} {:>8} {:>8} {:>8}",
            role.as_str(),
            queries.len(),
            allowed,
            rows_seen,
            leaks
        );
        assert_eq!(leaks, 0, "{role}: rows outside scope or unmasked PHI");
        assert!(allowed > 0, "{role} can read something");
        if *role == Role::Admin {
            assert_eq!(allowed, queries.len());
        }
    }

    // The dashboard's data calls, every tile for every role (network view and both hospitals): the
    // same policy, so the same checks.
    let (status, catalog) = {
        let r = s
            .client
            .get(format!("{}/api/dashboard/data/catalog", s.base))
            .bearer_auth(admin_token())
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json::<Value>().await.unwrap())
    };
    assert_eq!(status, 200, "{catalog}");
    let tiles: Vec<String> = catalog["tiles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_string())
        .collect();
    // This lake was built without the runtime, so it has no run ledger: tiles over it have no data.
    let without_ledger: BTreeSet<String> = catalog["tiles"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| {
            t["tables"]
                .as_array()
                .unwrap()
                .iter()
                .any(|x| x == "ops_run_ledger")
        })
        .map(|t| t["id"].as_str().unwrap().to_string())
        .collect();
    assert!(tiles.len() >= 10, "{tiles:?}");
    println!(
        "{:<18} {:>8} {:>9} {:>8} {:>8}",
        "role", "calls", "available", "rows", "leaks"
    );
    for (role, scopes) in &roles {
        let t = mint(
            &format!("dash-{role}"),
            *role,
            scopes,
            Duration::from_secs(3600),
        );
        let (mut calls, mut available, mut rows_seen, mut leaks) = (0, 0, 0, 0);
        for tile in &tiles {
            for hospital in [None, Some("MHA01"), Some("MHA02")] {
                let mut r = s
                    .client
                    .get(format!("{}/api/dashboard/data/{tile}", s.base))
                    .bearer_auth(&t);
                if let Some(h) = hospital {
                    r = r.query(&[("hospital", h)]);
                }
                let r = r.send().await.unwrap();
                let status = r.status().as_u16();
                let v: Value = r.json().await.unwrap();
                calls += 1;
                assert_eq!(status, 200, "{role} {tile} {hospital:?}: {v}");
                if v["available"] != true {
                    assert!(
                        *role != Role::Admin || without_ledger.contains(tile),
                        "admin sees the {tile} tile: {v}"
                    );
                    assert!(
                        v.get("rows")
                            .is_none_or(|r| r.as_array().is_some_and(|a| a.is_empty())),
                        "{v}"
                    );
                    continue;
                }
                available += 1;
                for row in v["rows"].as_array().unwrap() {
                    rows_seen += 1;
                    for (col, val) in row.as_object().unwrap() {
                        let Some(val) = val.as_str() else { continue };
                        if family.contains(val)
                            || patientflow_tests::security::contains_token(val, &mrns)
                            || (col.contains("birth") && births.contains(val))
                        {
                            leaks += 1;
                            eprintln!("{role}: PHI {col}='{val}' on the {tile} tile");
                        }
                        if role.is_scoped() && col == "hospital_id" && val != "MHA01" {
                            leaks += 1;
                            eprintln!("{role}: hospital {val} outside scope on the {tile} tile");
                        }
                    }
                }
            }
        }
        println!(
            "{:<18} {:>8} {:>9} {:>8} {:>8}",
            role.as_str(),
            calls,
            available,
            rows_seen,
            leaks
        );
        assert_eq!(leaks, 0, "{role}: dashboard rows outside scope or with PHI");
        assert!(
            available > 0 || *role == Role::Operator,
            "{role} sees some tiles"
        );
    }

    // The CLI with an identity: the same policy, audited.
    let staff = mint(
        "cli-staff",
        Role::DepartmentStaff,
        &["MHA02/ED"],
        Duration::from_secs(600),
    );
    let out = Command::new(binary())
        .args(["query", "--format", "json", "--lake"])
        .arg(&lake)
        .args(["--security"])
        .arg(&security)
        .args(["--token", &staff])
        .arg("SELECT DISTINCT e.hospital_id, p.family_name FROM silver_encounters e JOIN silver_dim_patient p ON e.patient_key = p.patient_key")
        .env_remove("PATIENTFLOW_LAKE")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = v.as_array().unwrap();
    assert!(!rows.is_empty());
    assert!(rows.iter().all(|r| r["hospital_id"] == "MHA02"), "{rows:?}");
    let analyst = mint("cli-analyst", Role::Analyst, &[], Duration::from_secs(600));
    let out = Command::new(binary())
        .args(["query", "--format", "json", "--lake"])
        .arg(&lake)
        .args(["--security"])
        .arg(&security)
        .args([
            "--token",
            &analyst,
            "SELECT DISTINCT family_name, mrn FROM silver_dim_patient",
        ])
        .env_remove("PATIENTFLOW_LAKE")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    for r in v.as_array().unwrap() {
        assert!(
            !family.contains(r["family_name"].as_str().unwrap_or("")),
            "{r}"
        );
        assert!(!mrns.contains(r["mrn"].as_str().unwrap_or("")), "{r}");
    }

    // Every PHI read left an audit row: the department staff over HTTP and over the CLI.
    let started = Instant::now();
    loop {
        let rows = s
            .admin_rows(
                "SELECT subject, read_path, phi_returned FROM security_audit WHERE phi_returned",
            )
            .await;
        let subjects: BTreeSet<String> = rows
            .iter()
            .map(|r| {
                format!(
                    "{}@{}",
                    r["subject"].as_str().unwrap(),
                    r["read_path"].as_str().unwrap()
                )
            })
            .collect();
        if subjects.contains("http-department_staff@sql_endpoint")
            && subjects.contains("cli-staff@cli_query")
        {
            assert!(
                !subjects
                    .iter()
                    .any(|x| x.starts_with("http-analyst") || x.starts_with("cli-analyst")),
                "{subjects:?}"
            );
            println!("PHI reads audited: {subjects:?}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "PHI reads not audited: {subjects:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_credentials_over_http_get_401_or_403_are_audited_and_return_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let lake = build_lake(dir.path()).await;
    let security = dir.path().join("security.json");
    std::fs::write(&security, settings_json()).unwrap();
    let s = Serve::start(&lake, &security).await;
    let sql = "SELECT family_name, mrn FROM silver_dim_patient";

    let other = |aud: &str, iss: &str, key: &str| {
        let t = TokenSettings {
            issuer: iss.into(),
            audience: aud.into(),
            ..Default::default()
        };
        token::issue_hs256(
            key.as_bytes(),
            &t,
            "mallory",
            Role::Admin,
            &[],
            Duration::from_secs(600),
        )
        .unwrap()
    };
    let valid = admin_token();
    let mut tampered = valid.clone();
    {
        // Flip one character of the claims part: the signature no longer matches.
        let dot = tampered.find('.').unwrap() + 5;
        let c = tampered.as_bytes()[dot];
        tampered.replace_range(dot..dot + 1, if c == b'A' { "B" } else { "A" });
    }
    let expired = mint("late", Role::Admin, &[], Duration::from_secs(1));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let no_scope = {
        let t = TokenSettings {
            issuer: "patientflow-local".into(),
            audience: "patientflow".into(),
            ..Default::default()
        };
        token::issue_hs256(
            HS256_KEY.as_bytes(),
            &t,
            "scopeless",
            Role::DepartmentStaff,
            &[] as &[Scope],
            Duration::from_secs(600),
        )
        .unwrap()
    };
    let forged = principal("forged-oid", &["PatientFlow.Admin"]);
    let cases: Vec<(&str, Headers, u16)> = vec![
        ("no credentials", vec![], 401),
        (
            "garbage token",
            vec![("Authorization", "Bearer not.a.jwt".into())],
            401,
        ),
        (
            "tampered",
            vec![("Authorization", format!("Bearer {tampered}"))],
            401,
        ),
        (
            "expired",
            vec![("Authorization", format!("Bearer {expired}"))],
            401,
        ),
        (
            "wrong audience",
            vec![(
                "Authorization",
                format!(
                    "Bearer {}",
                    other("someone-else", "patientflow-local", HS256_KEY)
                ),
            )],
            401,
        ),
        (
            "wrong issuer",
            vec![(
                "Authorization",
                format!("Bearer {}", other("patientflow", "evil", HS256_KEY)),
            )],
            401,
        ),
        (
            "wrong key",
            vec![(
                "Authorization",
                format!(
                    "Bearer {}",
                    other(
                        "patientflow",
                        "patientflow-local",
                        "another-key-0123456789abcdef0123"
                    )
                ),
            )],
            401,
        ),
        (
            "forged principal header",
            vec![("X-MS-CLIENT-PRINCIPAL", forged.clone())],
            401,
        ),
        (
            "no entitlement",
            vec![("Authorization", format!("Bearer {no_scope}"))],
            403,
        ),
    ];
    for (name, headers, want) in &cases {
        let (status, v) = s.sql_with(sql, headers).await;
        assert_eq!(status, *want, "{name}: {v}");
        assert!(v.get("rows").is_none(), "{name}: nothing returned: {v}");
        assert!(
            v["error"]["message"].is_string(),
            "{name}: a clear error: {v}"
        );
        println!("{name:<24} → {status} {}", v["error"]["message"]);
    }
    // A forged header beside a valid token: the token decides, the forgery is still audited.
    let analyst = mint(
        "analyst-with-header",
        Role::Analyst,
        &[],
        Duration::from_secs(600),
    );
    let (status, v) = s
        .sql_with(
            sql,
            &[
                ("Authorization", format!("Bearer {analyst}")),
                ("X-MS-CLIENT-PRINCIPAL", forged),
            ],
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["role"], "analyst");

    let started = Instant::now();
    loop {
        let rows = s
            .admin_rows(
                "SELECT subject, decision, reason FROM security_audit WHERE decision = 'denied'",
            )
            .await;
        let forgeries = rows
            .iter()
            .filter(|r| r["reason"].as_str().is_some_and(|x| x.contains("forgery")))
            .count();
        if rows.len() > cases.len() && forgeries >= 2 {
            println!(
                "denials audited: {} (forgery attempts {forgeries})",
                rows.len()
            );
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "denials not audited: {} rows, {forgeries} forgeries: {rows:?}",
            rows.len()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_easy_auth_the_principal_header_maps_app_roles_to_entitlements() {
    let dir = tempfile::tempdir().unwrap();
    let lake = build_lake(dir.path()).await;
    let security = dir.path().join("security.json");
    let mut settings: Value = serde_json::from_str(&settings_json()).unwrap();
    settings["trust_easy_auth"] = json!(true);
    settings["app_roles"] = json!({
        "PatientFlow.HospitalManager": {"role": "hospital_manager", "scopes": ["MHA02"]},
        "PatientFlow.Operator": {"role": "operator"}
    });
    std::fs::write(&security, settings.to_string()).unwrap();
    let s = Serve::start(&lake, &security).await;
    let header = |roles: &[&str]| vec![("X-MS-CLIENT-PRINCIPAL", principal("oid-42", roles))];

    let (status, v) = s
        .sql_with(
            "SELECT DISTINCT hospital_id, family_name FROM silver_dim_patient",
            &header(&["PatientFlow.HospitalManager"]),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    let rows = v["rows"].as_array().unwrap();
    assert!(!rows.is_empty());
    assert!(
        rows.iter().all(|r| r["hospital_id"] == "MHA02"
            && (r["family_name"] == "***" || r["family_name"].is_null())),
        "{rows:?}"
    );
    assert!(rows.iter().any(|r| r["family_name"] == "***"), "{rows:?}");
    let (status, _) = s
        .sql_with(
            "SELECT * FROM silver_dim_patient",
            &header(&["PatientFlow.Operator"]),
        )
        .await;
    assert_eq!(status, 400, "the operator has no patient tables");
    let (status, v) = s
        .sql_with(
            "SELECT COUNT(*) FROM silver_dq_results",
            &header(&["PatientFlow.Operator"]),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    let (status, v) = s.sql_with("SELECT 1", &header(&["Some.Other.Role"])).await;
    assert_eq!(status, 403, "{v}");
    let (status, v) = s
        .sql_with("SELECT 1", &[("X-MS-CLIENT-PRINCIPAL", "%%%".into())])
        .await;
    assert_eq!(status, 401, "{v}");
}

fn base64url(bytes: &[u8]) -> String {
    base64(bytes)
        .trim_end_matches('=')
        .replace('+', "-")
        .replace('/', "_")
}

/// An RS256 JWT signed by the `openssl` command with the test key (an implementation independent of
/// the app's).
fn rs256_token(kid: &str, claims: &Value) -> String {
    let header = json!({"alg": "RS256", "typ": "JWT", "kid": kid});
    let input = format!(
        "{}.{}",
        base64url(header.to_string().as_bytes()),
        base64url(claims.to_string().as_bytes())
    );
    let key = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/security/rs256-test-key.pem");
    let mut child = Command::new("openssl")
        .args(["dgst", "-sha256", "-binary", "-sign"])
        .arg(&key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("openssl is needed to sign the test tokens");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    format!("{input}.{}", base64url(&out.stdout))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entra_style_rs256_tokens_verify_against_the_jwks_url() {
    // The identity provider's key endpoint, served over real HTTP.
    let jwks = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/security/jwks.json"),
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let idp = listener.local_addr().unwrap();
    let app = axum::Router::new().route(
        "/tenant/discovery/v2.0/keys",
        axum::routing::get(move || {
            let jwks = jwks.clone();
            async move { ([("content-type", "application/json")], jwks) }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let dir = tempfile::tempdir().unwrap();
    let lake = build_lake(dir.path()).await;
    let issuer = "https://login.microsoftonline.com/tenant/v2.0";
    let security = dir.path().join("security.json");
    std::fs::write(
        &security,
        json!({
            "tokens": {"jwks_url": format!("http://{idp}/tenant/discovery/v2.0/keys"),
                       "issuer": issuer, "audience": "api://patientflow", "leeway_seconds": 0},
            "pseudonym_key": patientflow_tests::security::PSEUDONYM_KEY,
            "app_roles": {"PatientFlow.Analyst": {"role": "analyst"}},
            "users": {"oid-staff": {"role": "department_staff", "scopes": ["MHA01/ICU"]}}
        })
        .to_string(),
    )
    .unwrap();
    let s = Serve::start(&lake, &security).await;
    let now = chrono::Utc::now().timestamp();
    let claims = |oid: &str, roles: &[&str], aud: &str, exp: i64| {
        json!({"sub": format!("sub-{oid}"), "oid": oid, "iss": issuer, "aud": aud,
               "iat": now, "nbf": now - 5, "exp": exp, "roles": roles})
    };
    let bearer = |t: String| vec![("Authorization", format!("Bearer {t}"))];
    let sql = "SELECT DISTINCT hospital_id, department FROM silver_location_stays";

    let analyst = rs256_token(
        "test-key-1",
        &claims(
            "oid-a",
            &["PatientFlow.Analyst"],
            "api://patientflow",
            now + 600,
        ),
    );
    let (status, v) = s.sql_with(sql, &bearer(analyst)).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["role"], "analyst");
    let staff = rs256_token(
        "test-key-1",
        &claims("oid-staff", &[], "api://patientflow", now + 600),
    );
    let (status, v) = s.sql_with(sql, &bearer(staff)).await;
    assert_eq!(status, 200, "{v}");
    let rows = v["rows"].as_array().unwrap();
    assert!(!rows.is_empty());
    assert!(rows.iter().all(|r| r["hospital_id"] == "MHA01"), "{rows:?}");
    // Entra tokens carry no scopes of their own: a made-up role claim is not an entitlement.
    let (status, _) = s
        .sql_with(
            sql,
            &bearer(rs256_token(
                "test-key-1",
                &claims("oid-x", &["admin"], "api://patientflow", now + 600),
            )),
        )
        .await;
    assert_eq!(status, 403);
    for (name, t) in [
        (
            "unknown kid",
            rs256_token(
                "other-key",
                &claims(
                    "oid-a",
                    &["PatientFlow.Analyst"],
                    "api://patientflow",
                    now + 600,
                ),
            ),
        ),
        (
            "wrong audience",
            rs256_token(
                "test-key-1",
                &claims("oid-a", &["PatientFlow.Analyst"], "api://other", now + 600),
            ),
        ),
        (
            "expired",
            rs256_token(
                "test-key-1",
                &claims(
                    "oid-a",
                    &["PatientFlow.Analyst"],
                    "api://patientflow",
                    now - 60,
                ),
            ),
        ),
        ("local HS256 token where none is configured", admin_token()),
    ] {
        let (status, v) = s.sql_with(sql, &bearer(t)).await;
        assert_eq!(status, 401, "{name}: {v}");
    }
}
