//! The web dashboard's tiles: each one SQL query over Gold (and, for pipeline health, the run ledger and
//! the Silver data-quality results), optionally for one hospital. Pure: no I/O. The serving layer runs the
//! SQL in the caller's policy session, so row scopes, masks and small-cell suppression apply to every
//! tile (docs/dashboard.md).
//!
//! The only value placed in the SQL is a hospital id, and only as a [`HospitalId`], which accepts
//! letters, digits, `_` and `-` (the same rule as the access-control scopes).

use crate::{Error, Result};

/// A validated hospital id (letters, digits, `_`, `-`; 1–64 characters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HospitalId(String);

impl HospitalId {
    /// Validates `s` as a hospital id.
    pub fn parse(s: &str) -> Result<HospitalId> {
        let s = s.trim();
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if ok {
            Ok(HospitalId(s.to_string()))
        } else {
            Err(Error::Query(format!(
                "hospital '{}' is not an id of letters, digits, '_' and '-'",
                s.chars().take(80).collect::<String>()
            )))
        }
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What a tile needs besides its id.
#[derive(Debug, Clone, Copy, Default)]
pub struct TileParams<'a> {
    /// Only this hospital; `None` for the whole network.
    pub hospital: Option<&'a HospitalId>,
    /// Show counts from 1 to [`crate::security::policy::SMALL_CELL_MAX`] as NULL in tiles over patient
    /// tables (the policy suppresses them in the aggregate tables already): for the roles whose aggregate
    /// views are suppressed.
    pub suppress_small_cells: bool,
    /// Only these departments (hospital, department; no department: the whole hospital) in the tiles over patient tables: a department
    /// user's view. The policy already limits their rows to patients who stayed in their departments;
    /// the dashboard counts the patients *in* them. Empty: no such filter.
    pub departments: &'a [(HospitalId, Option<HospitalId>)],
}

/// One tile of the dashboard.
#[derive(Debug, Clone, Copy)]
pub struct Tile {
    /// Id in `/api/dashboard/data/{id}` and in the page's `data-tile` attributes.
    pub id: &'static str,
    /// Title shown on the page.
    pub title: &'static str,
    /// What it shows and which KPI it reads (docs/kpis.md).
    pub doc: &'static str,
    /// Tables it reads (SQL names): the page re-fetches it when one of their versions changes.
    pub tables: &'static [&'static str],
    /// True when the hospital filter applies (pipeline tiles are network-wide).
    pub per_hospital: bool,
}

/// Every tile, in page order.
pub const TILES: [Tile; 16] = [
    Tile {
        id: "summary",
        title: "Occupancy now",
        doc: "Inpatient beds occupied / staffed (non-emergency departments) and ED spaces occupied / staffed \
              at \"now\", summed over gold_kpi_occupancy_current (KPI 1.1); the percentage is the ratio of the sums.",
        tables: &["gold_kpi_occupancy_current"],
        per_hospital: true,
    },
    Tile {
        id: "hospitals",
        title: "Hospitals",
        doc: "Per hospital: inpatient occupancy, ED occupancy and departments at or over 85 % \
              (gold_kpi_occupancy_current_hospital, KPI 1.1).",
        tables: &["gold_kpi_occupancy_current_hospital", "gold_dim_hospital"],
        per_hospital: true,
    },
    Tile {
        id: "occupancy",
        title: "Occupancy by department now",
        doc: "Occupied vs staffed beds per department at \"now\" with the 85 % and 95 % thresholds \
              (gold_kpi_occupancy_current, KPI 1.1).",
        tables: &["gold_kpi_occupancy_current"],
        per_hospital: true,
    },
    Tile {
        id: "census_48h",
        title: "Census, last 48 hours",
        doc: "Hourly census snapshots (gold_fact_census_hourly, KPI 1.2): inpatient beds occupied and staffed, \
              ED spaces occupied and ED boarders, summed per hour over the last 48 census hours.",
        tables: &["gold_fact_census_hourly", "gold_dim_department"],
        per_hospital: true,
    },
    Tile {
        id: "census_monthly",
        title: "Midnight census by month (KH03)",
        doc: "Σ occupied bed-days / Σ available bed-days × 100 per local month over the inpatient departments \
              (gold_kpi_midnight_census, KPI 1.3: sum first, then divide).",
        tables: &["gold_kpi_midnight_census", "gold_dim_department"],
        per_hospital: true,
    },
    Tile {
        id: "sex_now",
        title: "Sex of current patients",
        doc: "Occupied beds and spaces per sex group at \"now\" and their share (gold_kpi_sex_distribution, KPI 2).",
        tables: &["gold_kpi_sex_distribution"],
        per_hospital: true,
    },
    Tile {
        id: "age_now",
        title: "Age band of current patients",
        doc: "Occupied beds and spaces per age band at \"now\" (the occupied_age_* columns of \
              gold_kpi_occupancy_current, KPI 3).",
        tables: &["gold_kpi_occupancy_current"],
        per_hospital: true,
    },
    Tile {
        id: "alos",
        title: "Average length of stay by department and month",
        doc: "Σ LOS / discharges per discharging department and discharge month, in days (HCUP) and hours \
              (gold_kpi_alos_department_monthly, KPI 4).",
        tables: &["gold_kpi_alos_department_monthly"],
        per_hospital: true,
    },
    Tile {
        id: "wait_by_hour",
        title: "Admission wait by hour of arrival",
        doc: "Median and 90th percentile of arrival → admission through the ED, in minutes, per admitting \
              department and local hour of arrival, all months (gold_kpi_admission_wait, KPI 5; the NULL-hour \
              row is all hours). Percentiles are not re-aggregated across departments.",
        tables: &["gold_kpi_admission_wait"],
        per_hospital: true,
    },
    Tile {
        id: "bottlenecks",
        title: "Current bottlenecks",
        doc: "Ongoing episodes of high occupancy (≥ 85 %), ED boarding and boarding bound for a department, \
              ≥ 2 consecutive census hours (gold_kpi_bottlenecks, KPI 6).",
        tables: &["gold_kpi_bottlenecks"],
        per_hospital: true,
    },
    Tile {
        id: "ed_boarding",
        title: "ED boarding now",
        doc: "At the latest census hour: ED boarders (admitted patients in the ED > 4 h) on ED rows and the \
              boarders waiting for each destination department (gold_fact_census_hourly, KPI 6).",
        tables: &["gold_fact_census_hourly"],
        per_hospital: true,
    },
    Tile {
        id: "long_stays",
        title: "Current long stays",
        doc: "Admitted patients in house at \"now\" per department and how many have stayed 7+, 14+ and 21+ \
              days (gold_kpi_current_los, KPI 4; counts only, no patient rows).",
        tables: &["gold_kpi_current_los"],
        per_hospital: true,
    },
    Tile {
        id: "dq_latest",
        title: "Data quality, latest Silver run",
        doc: "Per source, the latest Silver run's records in, valid records and findings \
              (silver_dq_results, the per-source summary rows).",
        tables: &["silver_dq_results"],
        per_hospital: false,
    },
    Tile {
        id: "dq_trend",
        title: "Data quality trend",
        doc: "Per Silver run: records in, valid records and findings over every source (silver_dq_results).",
        tables: &["silver_dq_results"],
        per_hospital: false,
    },
    Tile {
        id: "pipeline",
        title: "Pipeline health",
        doc: "The latest run of each stage from ops_run_ledger with its status, duration and rows, and the \
              runs and failures of the last 24 hours.",
        tables: &["ops_run_ledger"],
        per_hospital: false,
    },
    Tile {
        id: "feed_lag",
        title: "Feed lag by hospital",
        doc: "Per sending facility: the latest ADT message landed in Bronze (bronze_adt_messages.ingested_at) \
              and the seconds since then (the wall clock).",
        tables: &["bronze_adt_messages"],
        per_hospital: true,
    },
];

/// The tile with this id.
pub fn tile(id: &str) -> Option<&'static Tile> {
    TILES.iter().find(|t| t.id == id)
}

/// The tables whose versions the page polls: every table a tile reads.
pub fn polled_tables() -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for t in &TILES {
        for name in t.tables {
            if !out.contains(name) {
                out.push(name);
            }
        }
    }
    out
}

/// `column = 'HOSPITAL'`, or `TRUE` for the network.
fn hospital_filter(column: &str, hospital: Option<&HospitalId>) -> String {
    match hospital {
        // HospitalId holds letters, digits, '_' and '-' only: nothing in it can end the literal.
        Some(h) => format!("{column} = '{}'", h.as_str()),
        None => "TRUE".into(),
    }
}

/// `(hospital_id = 'H' AND department_code = 'D') OR …`, or `TRUE` when no departments are given.
fn department_filter(departments: &[(HospitalId, Option<HospitalId>)]) -> String {
    if departments.is_empty() {
        return "TRUE".into();
    }
    let parts: Vec<String> = departments
        .iter()
        .map(|(h, d)| match d {
            Some(d) => format!(
                "(hospital_id = '{}' AND department_code = '{}')",
                h.as_str(),
                d.as_str()
            ),
            None => format!("(hospital_id = '{}')", h.as_str()),
        })
        .collect();
    format!("({})", parts.join(" OR "))
}

/// `CASE` that shows counts 1–10 as NULL when asked to.
fn small(expr: &str, suppress: bool) -> String {
    if suppress {
        let max = crate::security::policy::SMALL_CELL_MAX;
        format!("CASE WHEN {expr} BETWEEN 1 AND {max} THEN NULL ELSE {expr} END")
    } else {
        expr.to_string()
    }
}

/// The SQL of one tile.
pub fn sql(tile: &Tile, params: TileParams<'_>) -> String {
    let hospital = if tile.per_hospital {
        params.hospital
    } else {
        None
    };
    let h = |column: &str| hospital_filter(column, hospital);
    let s = params.suppress_small_cells;
    match tile.id {
        "summary" => format!(
            "SELECT MAX(as_of) AS as_of, COUNT(DISTINCT hospital_id) AS hospitals, COUNT(*) AS departments, \
             SUM(CASE WHEN department_type <> 'Emergency' THEN occupied_beds END) AS inpatient_occupied_beds, \
             SUM(CASE WHEN department_type <> 'Emergency' THEN staffed_beds END) AS inpatient_staffed_beds, \
             ROUND(100.0 * SUM(CASE WHEN department_type <> 'Emergency' THEN occupied_beds END) \
               / NULLIF(SUM(CASE WHEN department_type <> 'Emergency' THEN staffed_beds END), 0), 4) AS inpatient_occupancy_pct, \
             SUM(CASE WHEN department_type = 'Emergency' THEN occupied_beds END) AS ed_occupied, \
             SUM(CASE WHEN department_type = 'Emergency' THEN staffed_beds END) AS ed_staffed_spaces, \
             SUM(CASE WHEN occupancy_pct >= 85 THEN 1 ELSE 0 END) AS departments_at_or_over_85_pct \
             FROM gold_kpi_occupancy_current WHERE {}",
            h("hospital_id")
        ),
        "hospitals" => format!(
            "SELECT o.hospital_id, h.name, o.as_of, o.inpatient_occupied_beds, o.inpatient_staffed_beds, \
             o.inpatient_occupancy_pct, o.ed_occupied, o.ed_staffed_spaces, o.ed_occupancy_pct, \
             o.departments_at_or_over_85_pct, o.departments \
             FROM gold_kpi_occupancy_current_hospital o LEFT JOIN gold_dim_hospital h ON h.hospital_id = o.hospital_id \
             WHERE {} ORDER BY o.hospital_id",
            h("o.hospital_id")
        ),
        "occupancy" => format!(
            "SELECT hospital_id, department_code, department_type, occupied_beds, staffed_beds, occupancy_pct, \
             available_beds FROM gold_kpi_occupancy_current WHERE {} ORDER BY hospital_id, department_code",
            h("hospital_id")
        ),
        "census_48h" => format!(
            "SELECT c.hour_start, \
             SUM(CASE WHEN NOT COALESCE(d.is_emergency, FALSE) THEN c.occupied_beds END) AS inpatient_occupied, \
             SUM(CASE WHEN NOT COALESCE(d.is_emergency, FALSE) THEN c.staffed_beds END) AS inpatient_staffed, \
             SUM(CASE WHEN d.is_emergency THEN c.occupied_beds END) AS ed_occupied, \
             SUM(c.ed_boarders) AS ed_boarders \
             FROM gold_fact_census_hourly c LEFT JOIN gold_dim_department d ON d.department_sk = c.department_sk \
             WHERE {} AND c.hour_start > (SELECT MAX(hour_start) FROM gold_fact_census_hourly WHERE {}) - INTERVAL '48 hours' \
             GROUP BY c.hour_start ORDER BY c.hour_start",
            h("c.hospital_id"),
            h("hospital_id")
        ),
        "census_monthly" => format!(
            "SELECT m.month_key, SUM(m.occupied_bed_days) AS occupied_bed_days, \
             SUM(m.available_bed_days) AS available_bed_days, \
             ROUND(100.0 * SUM(m.occupied_bed_days) / NULLIF(SUM(m.available_bed_days), 0), 4) AS occupancy_pct \
             FROM gold_kpi_midnight_census m JOIN gold_dim_department d \
               ON d.hospital_id = m.hospital_id AND d.department_code = m.department_code AND d.is_current \
             WHERE {} AND NOT d.is_emergency GROUP BY m.month_key ORDER BY m.month_key",
            h("m.hospital_id")
        ),
        "sex_now" => format!(
            "SELECT sex_group, SUM(occupied_beds) AS occupied_beds, \
             ROUND(100.0 * SUM(occupied_beds) / NULLIF(SUM(SUM(occupied_beds)) OVER (), 0), 4) AS share_pct \
             FROM gold_kpi_sex_distribution WHERE {} GROUP BY sex_group ORDER BY sex_group",
            h("hospital_id")
        ),
        "age_now" => format!(
            "SELECT SUM(occupied_age_0_17) AS age_0_17, SUM(occupied_age_18_44) AS age_18_44, \
             SUM(occupied_age_45_64) AS age_45_64, SUM(occupied_age_65_84) AS age_65_84, \
             SUM(occupied_age_85_plus) AS age_85_plus, SUM(occupied_age_unknown) AS age_unknown \
             FROM gold_kpi_occupancy_current WHERE {}",
            h("hospital_id")
        ),
        "alos" => format!(
            "SELECT department_code, month_key, SUM(discharges) AS discharges, \
             ROUND(SUM(los_hours_total) / NULLIF(SUM(discharges), 0), 4) AS alos_hours, \
             ROUND(CAST(SUM(los_days_total) AS DOUBLE) / NULLIF(SUM(discharges), 0), 4) AS alos_days \
             FROM gold_kpi_alos_department_monthly WHERE {} \
             GROUP BY department_code, month_key ORDER BY department_code, month_key",
            h("hospital_id")
        ),
        "wait_by_hour" => format!(
            "SELECT hospital_id, department_code, hour_of_day, admissions, wait_median_minutes, wait_p90_minutes \
             FROM gold_kpi_admission_wait WHERE {} AND month_key IS NULL \
             ORDER BY hospital_id, department_code, hour_of_day NULLS FIRST",
            h("hospital_id")
        ),
        "bottlenecks" => format!(
            "SELECT hospital_id, department_code, kind, threshold, start_hour, hours, peak_value, mean_value \
             FROM gold_kpi_bottlenecks WHERE {} AND ongoing \
             ORDER BY hours DESC, hospital_id, department_code, kind",
            h("hospital_id")
        ),
        "ed_boarding" => format!(
            "SELECT hospital_id, department_code, hour_start, occupied_beds, ed_boarders, boarders_waiting \
             FROM gold_fact_census_hourly WHERE {} \
             AND hour_start = (SELECT MAX(hour_start) FROM gold_fact_census_hourly WHERE {}) \
             AND (COALESCE(ed_boarders, 0) > 0 OR COALESCE(boarders_waiting, 0) > 0) \
             ORDER BY hospital_id, department_code",
            h("hospital_id"),
            h("hospital_id")
        ),
        "long_stays" => format!(
            "SELECT hospital_id, department_code, {} AS in_house, {} AS los_7_plus, {} AS los_14_plus, \
             {} AS los_21_plus FROM (SELECT hospital_id, department_code, COUNT(*) AS n, \
             SUM(CASE WHEN los_7_plus_days THEN 1 ELSE 0 END) AS n7, \
             SUM(CASE WHEN los_14_plus_days THEN 1 ELSE 0 END) AS n14, \
             SUM(CASE WHEN los_21_plus_days THEN 1 ELSE 0 END) AS n21 \
             FROM gold_kpi_current_los WHERE {} AND {} GROUP BY hospital_id, department_code) l \
             ORDER BY hospital_id, department_code",
            small("n", s),
            small("n7", s),
            small("n14", s),
            small("n21", s),
            h("hospital_id"),
            department_filter(params.departments)
        ),
        "dq_latest" => "SELECT r.source, r.run_at, r.records_in, r.records_valid, r.findings, \
             ROUND(100.0 * r.records_valid / NULLIF(r.records_in, 0), 4) AS valid_pct \
             FROM silver_dq_results r JOIN (SELECT source, MAX(run_at) AS last_run FROM silver_dq_results \
             WHERE rule_id = '*' GROUP BY source) l ON l.source = r.source AND l.last_run = r.run_at \
             WHERE r.rule_id = '*' ORDER BY r.source"
            .to_string(),
        "dq_trend" => "SELECT run_at, SUM(records_in) AS records_in, SUM(records_valid) AS records_valid, \
             SUM(findings) AS findings, \
             ROUND(100.0 * SUM(records_valid) / NULLIF(SUM(records_in), 0), 4) AS valid_pct \
             FROM silver_dq_results WHERE rule_id = '*' GROUP BY run_at ORDER BY run_at"
            .to_string(),
        "pipeline" => "SELECT l.stage, l.status, l.trigger, l.finished_at, l.duration_ms, l.rows_in, l.rows_out, \
             l.rows_quarantined, s.runs_24h, s.failed_24h \
             FROM ops_run_ledger l JOIN (SELECT stage, MAX(finished_at) AS last_finished, \
             SUM(CASE WHEN finished_at > now() - INTERVAL '24 hours' THEN 1 ELSE 0 END) AS runs_24h, \
             SUM(CASE WHEN status = 'failed' AND finished_at > now() - INTERVAL '24 hours' THEN 1 ELSE 0 END) AS failed_24h \
             FROM ops_run_ledger GROUP BY stage) s ON s.stage = l.stage AND s.last_finished = l.finished_at \
             ORDER BY l.stage"
            .to_string(),
        "feed_lag" => format!(
            "SELECT facility AS hospital_id, COUNT(*) AS messages, MAX(ingested_at) AS last_ingested_at, \
             CAST(date_part('epoch', now()) - date_part('epoch', MAX(ingested_at)) AS BIGINT) AS lag_seconds \
             FROM bronze_adt_messages WHERE {} GROUP BY facility ORDER BY facility",
            h("facility")
        ),
        other => unreachable!("tile {other} has no SQL"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tile_has_sql_and_a_unique_id() {
        let mut ids: Vec<&str> = TILES.iter().map(|t| t.id).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), TILES.len());
        let h = HospitalId::parse("MHA01").unwrap();
        for t in &TILES {
            let network = sql(t, TileParams::default());
            assert!(network.starts_with("SELECT"), "{}", t.id);
            assert!(!network.contains("MHA01"));
            let one = sql(
                t,
                TileParams {
                    hospital: Some(&h),
                    suppress_small_cells: true,
                    departments: &[],
                },
            );
            assert_eq!(one.contains("'MHA01'"), t.per_hospital, "{}", t.id);
            for table in t.tables {
                assert!(one.contains(table), "{} does not read {table}", t.id);
            }
        }
        assert!(polled_tables().contains(&"ops_run_ledger"));
    }

    #[test]
    fn hospital_ids_are_validated_before_they_reach_sql() {
        for bad in [
            "",
            "MHA01' OR '1'='1",
            "MHA 01",
            "a;b",
            &"x".repeat(65),
            "Ä",
        ] {
            assert!(HospitalId::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            HospitalId::parse(" MHA-01_b ").unwrap().as_str(),
            "MHA-01_b"
        );
    }

    #[test]
    fn small_cells_are_suppressed_only_when_asked() {
        let t = tile("long_stays").unwrap();
        assert!(!sql(t, TileParams::default()).contains("BETWEEN 1 AND"));
        let p = TileParams {
            hospital: None,
            suppress_small_cells: true,
            departments: &[],
        };
        assert!(sql(t, p).contains("BETWEEN 1 AND 10"));
        let ed = [(
            HospitalId::parse("MHA01").unwrap(),
            Some(HospitalId::parse("ED").unwrap()),
        )];
        let p = TileParams {
            departments: &ed,
            ..TileParams::default()
        };
        assert!(sql(t, p).contains("(hospital_id = 'MHA01' AND department_code = 'ED')"));
    }
}
