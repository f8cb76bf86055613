-- Row-level security for the Gold views on Synapse serverless SQL.
--
-- Serverless pools have no CREATE SECURITY POLICY: the documented workaround is a filtering view that
-- joins the data to an entitlement mapping on SUSER_SNAME(). This is NOT a hard boundary: a login that
-- can run OPENROWSET against the lake, or has storage RBAC on it, reads the files directly. Keep end users
-- off storage RBAC, deny them ADMINISTER DATABASE BULK OPERATIONS, and grant SELECT only on the secure
-- views below. For Power BI with a service credential, use the model's RLS roles instead
-- (powerbi/README.md), because SUSER_SNAME() is then the service account.
USE patientflow;
GO
CREATE SCHEMA sec;
GO
-- Who may see what: one row per user and scope. scope_level = 'network' (all rows), 'hospital'
-- (department_code NULL) or 'department'. Maintained from the IdP / HR roster (a CSV in the lake).
CREATE OR ALTER VIEW sec.user_access AS
SELECT *
FROM OPENROWSET(BULK 'security/user_access.csv', DATA_SOURCE = 'patientflow_gold', FORMAT = 'CSV',
                PARSER_VERSION = '2.0', HEADER_ROW = TRUE)
     WITH (upn VARCHAR(256) COLLATE Latin1_General_100_BIN2_UTF8,
           scope_level VARCHAR(16) COLLATE Latin1_General_100_BIN2_UTF8,
           hospital_id VARCHAR(16) COLLATE Latin1_General_100_BIN2_UTF8,
           department_code VARCHAR(64) COLLATE Latin1_General_100_BIN2_UTF8) AS a;
GO
-- A row of (hospital, department) is visible when the user has network scope, or the hospital, or that
-- department of it.
CREATE OR ALTER FUNCTION sec.visible(@hospital_id VARCHAR(16), @department_code VARCHAR(64))
RETURNS TABLE
AS RETURN
    SELECT 1 AS ok FROM sec.user_access a
    WHERE a.upn = SUSER_SNAME()
      AND (a.scope_level = 'network'
           OR (a.scope_level = 'hospital' AND a.hospital_id = @hospital_id)
           OR (a.scope_level = 'department' AND a.hospital_id = @hospital_id AND a.department_code = @department_code));
GO
CREATE SCHEMA gold_secure;
GO
CREATE OR ALTER VIEW gold_secure.fact_census_hourly AS
SELECT c.* FROM gold.fact_census_hourly c CROSS APPLY sec.visible(c.hospital_id, c.department_code) v;
GO
CREATE OR ALTER VIEW gold_secure.fact_location_stay AS
SELECT s.* FROM gold.fact_location_stay s CROSS APPLY sec.visible(s.hospital_id, s.department_code) v;
GO
-- Encounters are visible to the departments they passed through (a transfer makes the encounter visible
-- to source and destination) and to their hospital.
CREATE OR ALTER VIEW gold_secure.fact_encounter AS
SELECT e.* FROM gold.fact_encounter e
WHERE EXISTS (SELECT 1 FROM gold.fact_location_stay s CROSS APPLY sec.visible(s.hospital_id, s.department_code) v
              WHERE s.encounter_key = e.encounter_key)
   OR EXISTS (SELECT 1 FROM sec.visible(e.hospital_id, NULL) v);
GO
CREATE OR ALTER VIEW gold_secure.kpi_occupancy_current AS
SELECT k.* FROM gold.kpi_occupancy_current k CROSS APPLY sec.visible(k.hospital_id, k.department_code) v;
GO
-- Analysts: patient dimension with PHI pseudonymised (names, birth date → year, MRN hashed).
CREATE OR ALTER VIEW gold_secure.dim_patient_masked AS
SELECT patient_sk, patient_key = CONVERT(VARCHAR(64), HASHBYTES('SHA2_256', patient_key), 2), hospital_id,
       birth_year = YEAR(birth_date), sex, state, zip3 = LEFT(zip, 3), preferred_language, insurance_type,
       valid_from, valid_to, is_current, status
FROM gold.dim_patient;
GO
