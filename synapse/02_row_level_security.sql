-- Access control on Synapse serverless SQL: the same five roles, scopes, masks and small-cell suppression as
-- the app's policy layer (core/src/security/policy.rs; docs/security.md). Run after 01_gold_views.sql.
--
-- WHY VIEWS AND NOT A SECURITY POLICY. Serverless SQL pools have no CREATE SECURITY POLICY (no native
-- row-level security), no dynamic data masking, no in-database tables and no scalar functions (inline
-- table-valued functions only). So:
--   * entitlements are a CSV file in the lake, read through a view (sec.user_access);
--   * the caller is identified with SUSER_SNAME() (the Entra UPN) and IS_MEMBER() (database roles, into
--     which the Entra groups of the app roles are added);
--   * every Gold table is exposed to end users only as a view in gold_secure that filters rows on
--     hospital / department, masks PHI columns and suppresses small cells according to the caller's
--     entitlement; the base views (schema gold) are granted to pf_admin only;
--   * nothing is granted on the base views, the entitlement views or the pseudonym key to the other
--     roles: the gold_secure views reach them through ownership chaining (every schema here is owned by
--     dbo), so a caller can read the secure views without being able to read what they are built on.
--
-- THIS IS NOT A HARD BOUNDARY ON ITS OWN. A principal that can run its own OPENROWSET against the lake
-- (ADMINISTER DATABASE BULK OPERATIONS, or Storage Blob Data Reader on the account, or the workspace's
-- Synapse Administrator / SQL Administrator role) reads the files directly and bypasses every view here.
-- Keep end users off storage RBAC (the views read the lake with the workspace managed identity, the
-- credential of 00_database.sql, never with the caller's identity), give them no Synapse RBAC role beyond
-- what connecting needs, DENY them ADMINISTER DATABASE BULK OPERATIONS (below), and grant SELECT only on
-- gold_secure. Check with a test account of each role that the gold_secure views answer and that an ad-hoc
-- OPENROWSET is refused before giving access to real data.
--
-- Bronze and Silver (raw HL7 / JSON payloads, quarantined raw records) are not exposed on Synapse at all:
-- only an admin reads them, from the lake or through the app.
USE patientflow;
GO

-- The lake's security folder (the app's audit table security/audit/ and the entitlement file).
CREATE EXTERNAL DATA SOURCE patientflow_security
    WITH (LOCATION = 'https://<account>.dfs.core.windows.net/<container>/<prefix>/security/',
          CREDENTIAL = WorkspaceIdentity);
GO

CREATE SCHEMA sec;
GO
CREATE SCHEMA sec_private;
GO
CREATE SCHEMA gold_secure;
GO

-- ------------------------------------------------------------------------------------------------------
-- Database roles, one per app role (Entra app roles PatientFlow.DepartmentStaff | HospitalManager |
-- Analyst | Operator | Admin). Add to each the Entra group that is assigned the app role:
--   CREATE USER [PF Analysts] FROM EXTERNAL PROVIDER;
--   ALTER ROLE pf_analyst ADD MEMBER [PF Analysts];
-- (serverless has no sp_addrolemember: use ALTER ROLE ... ADD MEMBER). Scoped roles need a scope per
-- group: create one database role per scoped group, e.g. pf_staff_mha01_ed, add the group to it and to
-- pf_department_staff, and give it a 'db_role' row in the entitlement file (below).
CREATE ROLE pf_department_staff;
GO
CREATE ROLE pf_hospital_manager;
GO
CREATE ROLE pf_analyst;
GO
CREATE ROLE pf_operator;
GO
CREATE ROLE pf_admin;
GO

-- ------------------------------------------------------------------------------------------------------
-- Entitlements: security/user_access.csv in the lake, one row per principal and scope, with a header row:
--   upn,scope_level,hospital_id,department_code,role,principal_kind
--   ann@contoso.org,department,MHA01,ED,department_staff,user
--   ann@contoso.org,department,MHA01,ICU,department_staff,user
--   bob@contoso.org,hospital,MHA02,,hospital_manager,user
--   pf_staff_mha01_ed,department,MHA01,ED,department_staff,db_role
--   pf_analyst,network,,,analyst,db_role
--   pf_operator,network,,,operator,db_role
--   pf_admin,network,,,admin,db_role
-- upn: the user's UPN as SUSER_SNAME() returns it (principal_kind user, the default), or the name of a
--   database role whose members get the entitlement (principal_kind db_role).
-- role: department_staff | hospital_manager | analyst | operator | admin (the app's role names).
-- scope_level = 'department' (hospital_id + department_code), scope_level = 'hospital' (hospital_id; a
--   hospital manager's scopes are always whole hospitals), scope_level = 'network' (no scope: analyst,
--   operator, admin).
-- The rows mirror the app's security settings (users → user rows, groups / app_roles → db_role rows);
-- docs/security.md § Synapse shows how to derive them. The Power BI model reads this view too (user rows
-- only: USERPRINCIPALNAME() cannot see database roles).
CREATE OR ALTER VIEW sec.user_access AS
SELECT *
FROM OPENROWSET(BULK 'user_access.csv', DATA_SOURCE = 'patientflow_security', FORMAT = 'CSV',
                PARSER_VERSION = '2.0', HEADER_ROW = TRUE)
     WITH (upn VARCHAR(256) COLLATE Latin1_General_100_BIN2_UTF8,
           scope_level VARCHAR(16) COLLATE Latin1_General_100_BIN2_UTF8,
           hospital_id VARCHAR(16) COLLATE Latin1_General_100_BIN2_UTF8,
           department_code VARCHAR(64) COLLATE Latin1_General_100_BIN2_UTF8,
           role VARCHAR(32) COLLATE Latin1_General_100_BIN2_UTF8,
           principal_kind VARCHAR(16) COLLATE Latin1_General_100_BIN2_UTF8) AS a;
GO

-- The caller's entitlement: ONE role per caller, like the app (which takes the first matching user entry,
-- then app role, then group). Here: the caller's own user rows first, then database-role rows; among
-- several, the least privileged role. A row whose scope_level does not fit its role is ignored. No row:
-- the caller sees nothing in gold_secure.
CREATE OR ALTER VIEW sec.caller AS
SELECT TOP (1)
    principal_kind = CASE WHEN a.principal_kind = 'db_role' THEN 'db_role' ELSE 'user' END,
    principal = a.upn,
    a.role
FROM sec.user_access a
WHERE ((a.role = 'department_staff' AND a.scope_level IN ('department', 'hospital'))
       OR (a.role = 'hospital_manager' AND a.scope_level IN ('hospital', 'department'))
       OR (a.role IN ('analyst', 'operator', 'admin') AND a.scope_level = 'network'))
  AND ((ISNULL(a.principal_kind, '') IN ('', 'user') AND LOWER(a.upn) = LOWER(SUSER_SNAME()))
       OR (a.principal_kind = 'db_role' AND IS_MEMBER(a.upn) = 1))
ORDER BY CASE WHEN a.principal_kind = 'db_role' THEN 1 ELSE 0 END,
         CASE a.role WHEN 'department_staff' THEN 0 WHEN 'hospital_manager' THEN 1 WHEN 'operator' THEN 2
                     WHEN 'analyst' THEN 3 ELSE 4 END,
         a.upn;
GO

-- The scopes of that entitlement (every row of the same principal and role).
CREATE OR ALTER VIEW sec.caller_scope AS
SELECT a.role, a.scope_level, a.hospital_id, a.department_code
FROM sec.user_access a
JOIN sec.caller c
  ON c.principal = a.upn
 AND c.role = a.role
 AND c.principal_kind = CASE WHEN a.principal_kind = 'db_role' THEN 'db_role' ELSE 'user' END;
GO

-- What the caller's role does to columns: masked = names '***', birth date → year only, zip → 3 digits,
-- identifiers → keyed pseudonym (hospital_manager, analyst; operator never reaches patient rows);
-- suppress = counts 1–10 of the aggregate views → NULL (analyst).
CREATE OR ALTER VIEW sec.caller_flags AS
SELECT c.role,
       masked = CASE WHEN c.role IN ('department_staff', 'admin') THEN 0 ELSE 1 END,
       suppress = CASE WHEN c.role = 'analyst' THEN 1 ELSE 0 END
FROM sec.caller c;
GO

-- Is a row of (hospital, up to three department columns) visible to the caller? One row when it is.
--   analyst, admin: every row;
--   hospital_manager: rows of the scopes' hospitals;
--   department_staff: rows of a 'department' scope's hospital and department (any of the row's
--     department columns), or of a whole-hospital scope ('hospital');
--   operator: no row of a patient or aggregate table (reference tables only).
-- Scope values are data compared with =, never spliced into SQL text.
CREATE OR ALTER FUNCTION sec.row_visible(@hospital_id VARCHAR(16), @d1 VARCHAR(64), @d2 VARCHAR(64),
                                         @d3 VARCHAR(64))
RETURNS TABLE
AS RETURN
    SELECT TOP (1) 1 AS ok
    FROM sec.caller_scope s
    WHERE s.role IN ('analyst', 'admin')
       OR (s.role = 'hospital_manager' AND s.hospital_id = @hospital_id)
       OR (s.role = 'department_staff' AND s.hospital_id = @hospital_id
           AND (s.scope_level = 'hospital'
                OR (s.scope_level = 'department' AND s.department_code IN (@d1, @d2, @d3))));
GO

-- ------------------------------------------------------------------------------------------------------
-- Keyed pseudonyms, identical to the app's: HMAC-SHA256(deployment key, value), first 8 bytes as 16
-- lower-case hex characters, so a pseudonym from Synapse matches one from the app's SQL endpoint.
-- The key is the app's pseudonym key (security settings pseudonym_key / pseudonym_key_file; Key Vault).
-- Paste its bytes as hex below when deploying (never commit it):
--   printf %s "$(cat pseudonym.key)" | xxd -p | tr -d '\n'     (the app trims a trailing newline too)
-- HMAC pads keys up to 64 bytes with zeros; a key longer than 64 bytes is first hashed: for such a key
-- paste the hex of its SHA-256 instead. Nobody but dbo may read sec_private (DENY below); the secure views
-- use it through ownership chaining, so callers can neither read the key nor compute the pseudonym of a
-- value they guess.
CREATE OR ALTER VIEW sec_private.pseudonym_key AS
SELECT key_bytes.k FROM (VALUES (CAST(0x00 AS VARBINARY(64)))) AS key_bytes(k);
GO

CREATE OR ALTER FUNCTION sec_private.pseudonym(@value VARCHAR(8000))
RETURNS TABLE
AS RETURN
    WITH padded AS (
        SELECT CAST(k AS BINARY(64)) AS k FROM sec_private.pseudonym_key
    ), pads AS (
        -- key XOR ipad (0x36…) and key XOR opad (0x5C…), 8 bytes at a time (T-SQL XORs integers only).
        SELECT
            ipad = CAST(CAST(SUBSTRING(k, 1, 8) AS BIGINT) ^ CAST(0x3636363636363636 AS BIGINT) AS BINARY(8))
                 + CAST(CAST(SUBSTRING(k, 9, 8) AS BIGINT) ^ CAST(0x3636363636363636 AS BIGINT) AS BINARY(8))
                 + CAST(CAST(SUBSTRING(k, 17, 8) AS BIGINT) ^ CAST(0x3636363636363636 AS BIGINT) AS BINARY(8))
                 + CAST(CAST(SUBSTRING(k, 25, 8) AS BIGINT) ^ CAST(0x3636363636363636 AS BIGINT) AS BINARY(8))
                 + CAST(CAST(SUBSTRING(k, 33, 8) AS BIGINT) ^ CAST(0x3636363636363636 AS BIGINT) AS BINARY(8))
                 + CAST(CAST(SUBSTRING(k, 41, 8) AS BIGINT) ^ CAST(0x3636363636363636 AS BIGINT) AS BINARY(8))
                 + CAST(CAST(SUBSTRING(k, 49, 8) AS BIGINT) ^ CAST(0x3636363636363636 AS BIGINT) AS BINARY(8))
                 + CAST(CAST(SUBSTRING(k, 57, 8) AS BIGINT) ^ CAST(0x3636363636363636 AS BIGINT) AS BINARY(8)),
            opad = CAST(CAST(SUBSTRING(k, 1, 8) AS BIGINT) ^ CAST(0x5C5C5C5C5C5C5C5C AS BIGINT) AS BINARY(8))
                 + CAST(CAST(SUBSTRING(k, 9, 8) AS BIGINT) ^ CAST(0x5C5C5C5C5C5C5C5C AS BIGINT) AS BINARY(8))
                 + CAST(CAST(SUBSTRING(k, 17, 8) AS BIGINT) ^ CAST(0x5C5C5C5C5C5C5C5C AS BIGINT) AS BINARY(8))
                 + CAST(CAST(SUBSTRING(k, 25, 8) AS BIGINT) ^ CAST(0x5C5C5C5C5C5C5C5C AS BIGINT) AS BINARY(8))
                 + CAST(CAST(SUBSTRING(k, 33, 8) AS BIGINT) ^ CAST(0x5C5C5C5C5C5C5C5C AS BIGINT) AS BINARY(8))
                 + CAST(CAST(SUBSTRING(k, 41, 8) AS BIGINT) ^ CAST(0x5C5C5C5C5C5C5C5C AS BIGINT) AS BINARY(8))
                 + CAST(CAST(SUBSTRING(k, 49, 8) AS BIGINT) ^ CAST(0x5C5C5C5C5C5C5C5C AS BIGINT) AS BINARY(8))
                 + CAST(CAST(SUBSTRING(k, 57, 8) AS BIGINT) ^ CAST(0x5C5C5C5C5C5C5C5C AS BIGINT) AS BINARY(8))
        FROM padded
    )
    -- The value's bytes: VARCHAR in the database's UTF-8 collation, i.e. the UTF-8 the app hashes.
    SELECT value = CASE WHEN @value IS NULL THEN NULL ELSE
               LOWER(CONVERT(VARCHAR(16), SUBSTRING(
                   HASHBYTES('SHA2_256', opad + HASHBYTES('SHA2_256', ipad + CAST(@value AS VARBINARY(8000)))),
                   1, 8), 2)) END
    FROM pads;
GO

-- ------------------------------------------------------------------------------------------------------
-- The secure views: one per Gold view, same name and columns, in schema gold_secure.
-- Reference tables (no patient rows): whole, to every entitled caller. Aggregate tables: scoped roles see
-- their scopes' rows, analysts every row with small cells suppressed, operators none. Patient tables:
-- admin whole; department staff their departments' rows identifiable (an encounter is visible to every
-- department it passed through, via fact_location_stay); hospital managers their hospitals' rows masked;
-- analysts every row masked; operators none. Masked dim_patient.birth_date is NULL and birth_year carries
-- the year (a view column has one type; the app's SQL endpoint returns the year in birth_date itself).

CREATE OR ALTER VIEW gold_secure.dim_hospital AS
SELECT r.* FROM gold.dim_hospital r
WHERE EXISTS (SELECT 1 FROM sec.caller);
GO

CREATE OR ALTER VIEW gold_secure.dim_department AS
SELECT r.* FROM gold.dim_department r
WHERE EXISTS (SELECT 1 FROM sec.caller);
GO

CREATE OR ALTER VIEW gold_secure.dim_date AS
SELECT r.* FROM gold.dim_date r
WHERE EXISTS (SELECT 1 FROM sec.caller);
GO

CREATE OR ALTER VIEW gold_secure.dim_time AS
SELECT r.* FROM gold.dim_time r
WHERE EXISTS (SELECT 1 FROM sec.caller);
GO

-- Suppressed for analysts: occupied_beds, occupied_female, occupied_male, occupied_other,
--   occupied_unknown_sex, occupied_age_0_17, occupied_age_18_44, occupied_age_45_64, occupied_age_65_84,
--   occupied_age_85_plus, occupied_age_unknown, arrivals, admissions, discharges, transfers_in, transfers_out,
--   ed_boarders, boarders_waiting.
CREATE OR ALTER VIEW gold_secure.fact_census_hourly AS
SELECT
    k.hospital_id,
    k.department_code,
    k.department_sk,
    k.hour_start,
    k.date_key,
    k.hour_of_day,
    k.month_key,
    k.staffed_beds,
    k.licensed_beds,
    occupied_beds = CASE WHEN f.suppress = 1 AND k.occupied_beds BETWEEN 1 AND 10 THEN NULL ELSE k.occupied_beds END,
    k.occupancy_pct,
    occupied_female = CASE WHEN f.suppress = 1 AND k.occupied_female BETWEEN 1 AND 10 THEN NULL ELSE k.occupied_female END,
    occupied_male = CASE WHEN f.suppress = 1 AND k.occupied_male BETWEEN 1 AND 10 THEN NULL ELSE k.occupied_male END,
    occupied_other = CASE WHEN f.suppress = 1 AND k.occupied_other BETWEEN 1 AND 10 THEN NULL ELSE k.occupied_other END,
    occupied_unknown_sex = CASE WHEN f.suppress = 1 AND k.occupied_unknown_sex BETWEEN 1 AND 10 THEN NULL ELSE k.occupied_unknown_sex END,
    occupied_age_0_17 = CASE WHEN f.suppress = 1 AND k.occupied_age_0_17 BETWEEN 1 AND 10 THEN NULL ELSE k.occupied_age_0_17 END,
    occupied_age_18_44 = CASE WHEN f.suppress = 1 AND k.occupied_age_18_44 BETWEEN 1 AND 10 THEN NULL ELSE k.occupied_age_18_44 END,
    occupied_age_45_64 = CASE WHEN f.suppress = 1 AND k.occupied_age_45_64 BETWEEN 1 AND 10 THEN NULL ELSE k.occupied_age_45_64 END,
    occupied_age_65_84 = CASE WHEN f.suppress = 1 AND k.occupied_age_65_84 BETWEEN 1 AND 10 THEN NULL ELSE k.occupied_age_65_84 END,
    occupied_age_85_plus = CASE WHEN f.suppress = 1 AND k.occupied_age_85_plus BETWEEN 1 AND 10 THEN NULL ELSE k.occupied_age_85_plus END,
    occupied_age_unknown = CASE WHEN f.suppress = 1 AND k.occupied_age_unknown BETWEEN 1 AND 10 THEN NULL ELSE k.occupied_age_unknown END,
    arrivals = CASE WHEN f.suppress = 1 AND k.arrivals BETWEEN 1 AND 10 THEN NULL ELSE k.arrivals END,
    admissions = CASE WHEN f.suppress = 1 AND k.admissions BETWEEN 1 AND 10 THEN NULL ELSE k.admissions END,
    discharges = CASE WHEN f.suppress = 1 AND k.discharges BETWEEN 1 AND 10 THEN NULL ELSE k.discharges END,
    transfers_in = CASE WHEN f.suppress = 1 AND k.transfers_in BETWEEN 1 AND 10 THEN NULL ELSE k.transfers_in END,
    transfers_out = CASE WHEN f.suppress = 1 AND k.transfers_out BETWEEN 1 AND 10 THEN NULL ELSE k.transfers_out END,
    ed_boarders = CASE WHEN f.suppress = 1 AND k.ed_boarders BETWEEN 1 AND 10 THEN NULL ELSE k.ed_boarders END,
    boarders_waiting = CASE WHEN f.suppress = 1 AND k.boarders_waiting BETWEEN 1 AND 10 THEN NULL ELSE k.boarders_waiting END
FROM gold.fact_census_hourly k
CROSS JOIN sec.caller_flags f
WHERE EXISTS (SELECT 1 FROM sec.row_visible(k.hospital_id, k.department_code, NULL, NULL));
GO

-- Suppressed for analysts: occupied_beds, occupied_female, occupied_male, occupied_other,
--   occupied_unknown_sex, occupied_age_0_17, occupied_age_18_44, occupied_age_45_64, occupied_age_65_84,
--   occupied_age_85_plus, occupied_age_unknown.
CREATE OR ALTER VIEW gold_secure.kpi_occupancy_current AS
SELECT
    k.as_of,
    k.hospital_id,
    k.department_code,
    k.department_sk,
    k.department_type,
    k.staffed_beds,
    occupied_beds = CASE WHEN f.suppress = 1 AND k.occupied_beds BETWEEN 1 AND 10 THEN NULL ELSE k.occupied_beds END,
    k.occupancy_pct,
    k.available_beds,
    occupied_female = CASE WHEN f.suppress = 1 AND k.occupied_female BETWEEN 1 AND 10 THEN NULL ELSE k.occupied_female END,
    occupied_male = CASE WHEN f.suppress = 1 AND k.occupied_male BETWEEN 1 AND 10 THEN NULL ELSE k.occupied_male END,
    occupied_other = CASE WHEN f.suppress = 1 AND k.occupied_other BETWEEN 1 AND 10 THEN NULL ELSE k.occupied_other END,
    occupied_unknown_sex = CASE WHEN f.suppress = 1 AND k.occupied_unknown_sex BETWEEN 1 AND 10 THEN NULL ELSE k.occupied_unknown_sex END,
    occupied_age_0_17 = CASE WHEN f.suppress = 1 AND k.occupied_age_0_17 BETWEEN 1 AND 10 THEN NULL ELSE k.occupied_age_0_17 END,
    occupied_age_18_44 = CASE WHEN f.suppress = 1 AND k.occupied_age_18_44 BETWEEN 1 AND 10 THEN NULL ELSE k.occupied_age_18_44 END,
    occupied_age_45_64 = CASE WHEN f.suppress = 1 AND k.occupied_age_45_64 BETWEEN 1 AND 10 THEN NULL ELSE k.occupied_age_45_64 END,
    occupied_age_65_84 = CASE WHEN f.suppress = 1 AND k.occupied_age_65_84 BETWEEN 1 AND 10 THEN NULL ELSE k.occupied_age_65_84 END,
    occupied_age_85_plus = CASE WHEN f.suppress = 1 AND k.occupied_age_85_plus BETWEEN 1 AND 10 THEN NULL ELSE k.occupied_age_85_plus END,
    occupied_age_unknown = CASE WHEN f.suppress = 1 AND k.occupied_age_unknown BETWEEN 1 AND 10 THEN NULL ELSE k.occupied_age_unknown END
FROM gold.kpi_occupancy_current k
CROSS JOIN sec.caller_flags f
WHERE EXISTS (SELECT 1 FROM sec.row_visible(k.hospital_id, k.department_code, NULL, NULL));
GO

-- Suppressed for analysts: inpatient_occupied_beds, ed_occupied.
-- No department column: hospital-wide rows, outside a department scope.
CREATE OR ALTER VIEW gold_secure.kpi_occupancy_current_hospital AS
SELECT
    k.as_of,
    k.hospital_id,
    k.inpatient_staffed_beds,
    inpatient_occupied_beds = CASE WHEN f.suppress = 1 AND k.inpatient_occupied_beds BETWEEN 1 AND 10 THEN NULL ELSE k.inpatient_occupied_beds END,
    k.inpatient_occupancy_pct,
    k.ed_staffed_spaces,
    ed_occupied = CASE WHEN f.suppress = 1 AND k.ed_occupied BETWEEN 1 AND 10 THEN NULL ELSE k.ed_occupied END,
    k.ed_occupancy_pct,
    k.departments_at_or_over_85_pct,
    k.departments
FROM gold.kpi_occupancy_current_hospital k
CROSS JOIN sec.caller_flags f
WHERE EXISTS (SELECT 1 FROM sec.row_visible(k.hospital_id, NULL, NULL, NULL));
GO

-- Suppressed for analysts: occupied_beds.
CREATE OR ALTER VIEW gold_secure.kpi_sex_distribution AS
SELECT
    k.as_of,
    k.hospital_id,
    k.department_code,
    k.sex_group,
    occupied_beds = CASE WHEN f.suppress = 1 AND k.occupied_beds BETWEEN 1 AND 10 THEN NULL ELSE k.occupied_beds END,
    k.share_pct
FROM gold.kpi_sex_distribution k
CROSS JOIN sec.caller_flags f
WHERE EXISTS (SELECT 1 FROM sec.row_visible(k.hospital_id, k.department_code, NULL, NULL));
GO

-- Suppressed for analysts: admissions, discharges, occupied_bed_hours.
CREATE OR ALTER VIEW gold_secure.kpi_age_band_monthly AS
SELECT
    k.hospital_id,
    k.department_code,
    k.month_key,
    k.age_band,
    admissions = CASE WHEN f.suppress = 1 AND k.admissions BETWEEN 1 AND 10 THEN NULL ELSE k.admissions END,
    discharges = CASE WHEN f.suppress = 1 AND k.discharges BETWEEN 1 AND 10 THEN NULL ELSE k.discharges END,
    k.los_hours_total,
    k.alos_hours,
    occupied_bed_hours = CASE WHEN f.suppress = 1 AND k.occupied_bed_hours BETWEEN 1 AND 10 THEN NULL ELSE k.occupied_bed_hours END,
    k.census_hours,
    k.avg_occupied_beds
FROM gold.kpi_age_band_monthly k
CROSS JOIN sec.caller_flags f
WHERE EXISTS (SELECT 1 FROM sec.row_visible(k.hospital_id, k.department_code, NULL, NULL));
GO

-- Suppressed for analysts: discharges, same_day_discharges.
CREATE OR ALTER VIEW gold_secure.kpi_alos_department_monthly AS
SELECT
    k.hospital_id,
    k.department_code,
    k.month_key,
    discharges = CASE WHEN f.suppress = 1 AND k.discharges BETWEEN 1 AND 10 THEN NULL ELSE k.discharges END,
    k.los_hours_total,
    k.alos_hours,
    k.los_days_total,
    k.alos_days,
    same_day_discharges = CASE WHEN f.suppress = 1 AND k.same_day_discharges BETWEEN 1 AND 10 THEN NULL ELSE k.same_day_discharges END
FROM gold.kpi_alos_department_monthly k
CROSS JOIN sec.caller_flags f
WHERE EXISTS (SELECT 1 FROM sec.row_visible(k.hospital_id, k.department_code, NULL, NULL));
GO

-- Suppressed for analysts: discharges, same_day_discharges.
-- No department column: hospital-wide rows, outside a department scope.
CREATE OR ALTER VIEW gold_secure.kpi_alos_hospital_monthly AS
SELECT
    k.hospital_id,
    k.month_key,
    discharges = CASE WHEN f.suppress = 1 AND k.discharges BETWEEN 1 AND 10 THEN NULL ELSE k.discharges END,
    k.los_hours_total,
    k.alos_hours,
    k.los_days_total,
    k.alos_days,
    same_day_discharges = CASE WHEN f.suppress = 1 AND k.same_day_discharges BETWEEN 1 AND 10 THEN NULL ELSE k.same_day_discharges END
FROM gold.kpi_alos_hospital_monthly k
CROSS JOIN sec.caller_flags f
WHERE EXISTS (SELECT 1 FROM sec.row_visible(k.hospital_id, NULL, NULL, NULL));
GO

-- Suppressed for analysts: admissions, waits_over_4h.
CREATE OR ALTER VIEW gold_secure.kpi_admission_wait AS
SELECT
    k.hospital_id,
    k.department_code,
    k.month_key,
    k.hour_of_day,
    admissions = CASE WHEN f.suppress = 1 AND k.admissions BETWEEN 1 AND 10 THEN NULL ELSE k.admissions END,
    k.wait_median_minutes,
    k.wait_p90_minutes,
    k.wait_mean_minutes,
    k.wait_max_minutes,
    waits_over_4h = CASE WHEN f.suppress = 1 AND k.waits_over_4h BETWEEN 1 AND 10 THEN NULL ELSE k.waits_over_4h END
FROM gold.kpi_admission_wait k
CROSS JOIN sec.caller_flags f
WHERE EXISTS (SELECT 1 FROM sec.row_visible(k.hospital_id, k.department_code, NULL, NULL));
GO

-- Suppressed for analysts: (no count column).
CREATE OR ALTER VIEW gold_secure.kpi_bottlenecks AS
SELECT
    k.hospital_id,
    k.department_code,
    k.kind,
    k.threshold,
    k.start_hour,
    k.end_hour,
    k.hours,
    k.peak_value,
    k.mean_value,
    k.ongoing
FROM gold.kpi_bottlenecks k
CROSS JOIN sec.caller_flags f
WHERE EXISTS (SELECT 1 FROM sec.row_visible(k.hospital_id, k.department_code, NULL, NULL));
GO

-- Suppressed for analysts: occupied_bed_days, same_day_stays, inpatient_days.
CREATE OR ALTER VIEW gold_secure.kpi_midnight_census AS
SELECT
    k.hospital_id,
    k.department_code,
    k.date_key,
    k.month_key,
    occupied_bed_days = CASE WHEN f.suppress = 1 AND k.occupied_bed_days BETWEEN 1 AND 10 THEN NULL ELSE k.occupied_bed_days END,
    k.available_bed_days,
    k.occupancy_pct,
    same_day_stays = CASE WHEN f.suppress = 1 AND k.same_day_stays BETWEEN 1 AND 10 THEN NULL ELSE k.same_day_stays END,
    inpatient_days = CASE WHEN f.suppress = 1 AND k.inpatient_days BETWEEN 1 AND 10 THEN NULL ELSE k.inpatient_days END
FROM gold.kpi_midnight_census k
CROSS JOIN sec.caller_flags f
WHERE EXISTS (SELECT 1 FROM sec.row_visible(k.hospital_id, k.department_code, NULL, NULL));
GO

CREATE OR ALTER VIEW gold_secure.dim_patient AS
SELECT
    p.patient_sk,
    patient_key = CASE WHEN f.masked = 0 THEN p.patient_key ELSE ps_patient_key.value END,
    p.hospital_id,
    mrn = CASE WHEN f.masked = 0 THEN p.mrn ELSE ps_mrn.value END,
    family_name = CASE WHEN f.masked = 0 THEN p.family_name WHEN p.family_name IS NULL THEN NULL ELSE '***' END,
    given_name = CASE WHEN f.masked = 0 THEN p.given_name WHEN p.given_name IS NULL THEN NULL ELSE '***' END,
    birth_date = CASE WHEN f.masked = 0 THEN p.birth_date END,
    birth_year = YEAR(p.birth_date),
    p.sex,
    street = CASE WHEN f.masked = 0 THEN p.street WHEN p.street IS NULL THEN NULL ELSE '***' END,
    city = CASE WHEN f.masked = 0 THEN p.city WHEN p.city IS NULL THEN NULL ELSE '***' END,
    p.state,
    zip = CASE WHEN f.masked = 0 THEN p.zip ELSE LEFT(p.zip, 3) END,
    p.preferred_language,
    p.insurance_type,
    p.valid_from,
    p.valid_to,
    p.is_current,
    p.status,
    p.started_by
FROM gold.dim_patient p
CROSS JOIN sec.caller_flags f
CROSS APPLY sec_private.pseudonym(p.patient_key) ps_patient_key
CROSS APPLY sec_private.pseudonym(p.mrn) ps_mrn
WHERE EXISTS (SELECT 1 FROM sec.row_visible(p.hospital_id, NULL, NULL, NULL))
   OR EXISTS (SELECT 1 FROM gold.fact_location_stay s
              CROSS APPLY sec.row_visible(s.hospital_id, s.department_code, NULL, NULL) v
              WHERE s.patient_key = p.patient_key AND s.hospital_id = p.hospital_id);
GO

CREATE OR ALTER VIEW gold_secure.fact_encounter AS
SELECT
    encounter_key = CASE WHEN f.masked = 0 THEN p.encounter_key ELSE ps_encounter_key.value END,
    p.hospital_id,
    visit_number = CASE WHEN f.masked = 0 THEN p.visit_number ELSE ps_visit_number.value END,
    patient_key = CASE WHEN f.masked = 0 THEN p.patient_key ELSE ps_patient_key.value END,
    p.patient_sk,
    p.patient_class,
    p.status,
    p.source,
    p.arrival_time,
    p.admit_time,
    p.discharge_time,
    p.arrival_date_key,
    p.arrival_hour,
    p.arrival_month_key,
    p.admit_date_key,
    p.admit_month_key,
    p.discharge_date_key,
    p.discharge_month_key,
    p.first_department,
    p.first_department_sk,
    p.admit_department,
    p.admit_department_sk,
    p.last_department,
    p.last_department_sk,
    p.sex,
    p.age_at_arrival,
    p.age_band_at_arrival,
    p.age_at_admit,
    p.age_band_at_admit,
    p.is_admitted,
    p.is_cancelled,
    p.via_ed,
    p.is_open,
    p.ed_los_minutes,
    p.admission_wait_minutes,
    p.los_hours,
    p.los_days,
    p.is_same_day,
    p.silver_run_id
FROM gold.fact_encounter p
CROSS JOIN sec.caller_flags f
CROSS APPLY sec_private.pseudonym(p.encounter_key) ps_encounter_key
CROSS APPLY sec_private.pseudonym(p.visit_number) ps_visit_number
CROSS APPLY sec_private.pseudonym(p.patient_key) ps_patient_key
WHERE EXISTS (SELECT 1 FROM sec.row_visible(p.hospital_id, p.first_department, p.admit_department, p.last_department))
   OR EXISTS (SELECT 1 FROM gold.fact_location_stay s
              CROSS APPLY sec.row_visible(s.hospital_id, s.department_code, NULL, NULL) v
              WHERE s.encounter_key = p.encounter_key AND s.hospital_id = p.hospital_id);
GO

CREATE OR ALTER VIEW gold_secure.fact_location_stay AS
SELECT
    encounter_key = CASE WHEN f.masked = 0 THEN p.encounter_key ELSE ps_encounter_key.value END,
    p.stay_seq,
    p.hospital_id,
    patient_key = CASE WHEN f.masked = 0 THEN p.patient_key ELSE ps_patient_key.value END,
    p.patient_sk,
    p.department_code,
    p.department_sk,
    p.department_type,
    p.room,
    p.bed,
    p.start_time,
    p.end_time,
    p.start_date_key,
    p.start_hour,
    p.end_date_key,
    p.duration_hours,
    p.is_open,
    p.start_event,
    p.end_event,
    p.start_reason,
    p.end_reason,
    p.prev_department,
    p.next_department,
    p.is_admission_stay,
    p.boarding_start,
    p.sex,
    p.age_at_start,
    p.age_band_at_start,
    p.source
FROM gold.fact_location_stay p
CROSS JOIN sec.caller_flags f
CROSS APPLY sec_private.pseudonym(p.encounter_key) ps_encounter_key
CROSS APPLY sec_private.pseudonym(p.patient_key) ps_patient_key
WHERE EXISTS (SELECT 1 FROM sec.row_visible(p.hospital_id, p.department_code, NULL, NULL))
   OR EXISTS (SELECT 1 FROM gold.fact_location_stay s
              CROSS APPLY sec.row_visible(s.hospital_id, s.department_code, NULL, NULL) v
              WHERE s.encounter_key = p.encounter_key AND s.hospital_id = p.hospital_id);
GO

CREATE OR ALTER VIEW gold_secure.kpi_los_patient AS
SELECT
    p.as_of,
    patient_key = CASE WHEN f.masked = 0 THEN p.patient_key ELSE ps_patient_key.value END,
    p.hospital_id,
    p.admissions,
    p.discharges,
    p.los_hours_total,
    p.alos_hours,
    p.in_house,
    p.current_los_hours
FROM gold.kpi_los_patient p
CROSS JOIN sec.caller_flags f
CROSS APPLY sec_private.pseudonym(p.patient_key) ps_patient_key
WHERE EXISTS (SELECT 1 FROM sec.row_visible(p.hospital_id, NULL, NULL, NULL))
   OR EXISTS (SELECT 1 FROM gold.fact_location_stay s
              CROSS APPLY sec.row_visible(s.hospital_id, s.department_code, NULL, NULL) v
              WHERE s.patient_key = p.patient_key AND s.hospital_id = p.hospital_id);
GO

CREATE OR ALTER VIEW gold_secure.kpi_current_los AS
SELECT
    p.as_of,
    p.hospital_id,
    p.department_code,
    encounter_key = CASE WHEN f.masked = 0 THEN p.encounter_key ELSE ps_encounter_key.value END,
    patient_key = CASE WHEN f.masked = 0 THEN p.patient_key ELSE ps_patient_key.value END,
    p.admit_time,
    p.current_los_hours,
    p.current_los_days,
    p.los_7_plus_days,
    p.los_14_plus_days,
    p.los_21_plus_days
FROM gold.kpi_current_los p
CROSS JOIN sec.caller_flags f
CROSS APPLY sec_private.pseudonym(p.encounter_key) ps_encounter_key
CROSS APPLY sec_private.pseudonym(p.patient_key) ps_patient_key
WHERE EXISTS (SELECT 1 FROM sec.row_visible(p.hospital_id, p.department_code, NULL, NULL))
   OR EXISTS (SELECT 1 FROM gold.fact_location_stay s
              CROSS APPLY sec.row_visible(s.hospital_id, s.department_code, NULL, NULL) v
              WHERE s.encounter_key = p.encounter_key AND s.hospital_id = p.hospital_id);
GO

-- ------------------------------------------------------------------------------------------------------
-- The app's audit table (security/audit, Delta), for admins: see docs/security.md § Audit.
CREATE OR ALTER VIEW sec.security_audit AS
SELECT *
FROM OPENROWSET(BULK 'audit/', DATA_SOURCE = 'patientflow_security', FORMAT = 'DELTA')
     WITH ([at] DATETIME2(6),
           subject VARCHAR(256) COLLATE Latin1_General_100_BIN2_UTF8,
           role VARCHAR(32) COLLATE Latin1_General_100_BIN2_UTF8,
           scopes VARCHAR(4000) COLLATE Latin1_General_100_BIN2_UTF8,
           auth_method VARCHAR(16) COLLATE Latin1_General_100_BIN2_UTF8,
           read_path VARCHAR(256) COLLATE Latin1_General_100_BIN2_UTF8,
           request VARCHAR(8000) COLLATE Latin1_General_100_BIN2_UTF8,
           tables VARCHAR(4000) COLLATE Latin1_General_100_BIN2_UTF8,
           rows_returned BIGINT,
           phi_returned BIT,
           decision VARCHAR(16) COLLATE Latin1_General_100_BIN2_UTF8,
           reason VARCHAR(4000) COLLATE Latin1_General_100_BIN2_UTF8) AS audit_rows;
GO

-- ------------------------------------------------------------------------------------------------------
-- Permissions. Every entitled role reads gold_secure; only pf_admin reads the base views and the audit
-- table. The views read the lake through the WorkspaceIdentity credential, which callers must be allowed to
-- reference; without ADMINISTER DATABASE BULK OPERATIONS they cannot use it in an OPENROWSET of their own.
GRANT REFERENCES ON DATABASE SCOPED CREDENTIAL::WorkspaceIdentity
    TO pf_department_staff, pf_hospital_manager, pf_analyst, pf_operator, pf_admin;
GO
GRANT SELECT ON SCHEMA::gold_secure
    TO pf_department_staff, pf_hospital_manager, pf_analyst, pf_operator, pf_admin;
GO
GRANT SELECT ON SCHEMA::gold TO pf_admin;
GO
GRANT SELECT ON OBJECT::sec.security_audit TO pf_admin;
GO
-- The key and the pseudonym function: nobody but dbo (DENY wins over any other grant, admin's included).
DENY SELECT, VIEW DEFINITION ON SCHEMA::sec_private
    TO pf_department_staff, pf_hospital_manager, pf_analyst, pf_operator, pf_admin;
GO
-- Ad-hoc OPENROWSET over the lake: nobody with a data role.
DENY ADMINISTER DATABASE BULK OPERATIONS
    TO pf_department_staff, pf_hospital_manager, pf_analyst, pf_operator, pf_admin;
GO
-- The Power BI service principal (dataset refresh) reads the base Gold views and the entitlements; the
-- model's RLS roles then apply to report viewers (powerbi/README.md § 4):
--   CREATE USER [patientflow-powerbi] FROM EXTERNAL PROVIDER;
--   GRANT SELECT ON SCHEMA::gold TO [patientflow-powerbi];
--   GRANT SELECT ON OBJECT::sec.user_access TO [patientflow-powerbi];
--   GRANT REFERENCES ON DATABASE SCOPED CREDENTIAL::WorkspaceIdentity TO [patientflow-powerbi];
