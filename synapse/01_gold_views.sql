-- patientflow Gold views on Synapse serverless SQL: one view per Gold Delta table.
-- Generated from docs/data-model.md § Gold (column names and types must match the Delta schema;
-- core/src/gold is the source of truth). Run after 00_database.sql.
--
-- OPENROWSET(FORMAT = 'DELTA') reads the table's _delta_log, so a view always sees the latest committed
-- version (never a half-written refresh) and partition folders (hospital_id=...) are pruned when a query
-- filters on hospital_id. Types are declared explicitly: schema inference would give VARCHAR(8000).
-- dim_patient gains a column whenever a new patient attribute appears in a source (schema evolution):
-- add it to the view's WITH list (columns not listed are simply not exposed; nothing breaks).
USE patientflow;
GO

CREATE OR ALTER VIEW gold.dim_hospital AS
SELECT *
FROM OPENROWSET(
        BULK 'dim_hospital/',
        DATA_SOURCE = 'patientflow_gold',
        FORMAT = 'DELTA')
    WITH (
        hospital_id                      VARCHAR(16) COLLATE Latin1_General_100_BIN2_UTF8,
        name                             VARCHAR(200) COLLATE Latin1_General_100_BIN2_UTF8,
        city                             VARCHAR(100) COLLATE Latin1_General_100_BIN2_UTF8,
        state                            VARCHAR(16) COLLATE Latin1_General_100_BIN2_UTF8,
        time_zone                        VARCHAR(64) COLLATE Latin1_General_100_BIN2_UTF8
    ) AS rows;
GO

CREATE OR ALTER VIEW gold.dim_department AS
SELECT *
FROM OPENROWSET(
        BULK 'dim_department/',
        DATA_SOURCE = 'patientflow_gold',
        FORMAT = 'DELTA')
    WITH (
        department_sk                    BIGINT,
        department_key                   VARCHAR(80) COLLATE Latin1_General_100_BIN2_UTF8,
        hospital_id                      VARCHAR(16) COLLATE Latin1_General_100_BIN2_UTF8,
        department_code                  VARCHAR(64) COLLATE Latin1_General_100_BIN2_UTF8,
        department_name                  VARCHAR(200) COLLATE Latin1_General_100_BIN2_UTF8,
        department_type                  VARCHAR(32) COLLATE Latin1_General_100_BIN2_UTF8,
        is_emergency                     BIT,
        licensed_beds                    BIGINT,
        staffed_beds                     BIGINT,
        nurses                           BIGINT,
        physicians                       BIGINT,
        valid_from                       DATETIME2(6),
        valid_to                         DATETIME2(6),
        is_current                       BIT,
        status                           VARCHAR(16) COLLATE Latin1_General_100_BIN2_UTF8
    ) AS rows;
GO

CREATE OR ALTER VIEW gold.dim_patient AS
SELECT *
FROM OPENROWSET(
        BULK 'dim_patient/',
        DATA_SOURCE = 'patientflow_gold',
        FORMAT = 'DELTA')
    WITH (
        patient_sk                       BIGINT,
        patient_key                      VARCHAR(80) COLLATE Latin1_General_100_BIN2_UTF8,
        hospital_id                      VARCHAR(16) COLLATE Latin1_General_100_BIN2_UTF8,
        mrn                              VARCHAR(64) COLLATE Latin1_General_100_BIN2_UTF8,
        family_name                      VARCHAR(100) COLLATE Latin1_General_100_BIN2_UTF8,
        given_name                       VARCHAR(100) COLLATE Latin1_General_100_BIN2_UTF8,
        birth_date                       DATE,
        sex                              VARCHAR(4) COLLATE Latin1_General_100_BIN2_UTF8,
        street                           VARCHAR(200) COLLATE Latin1_General_100_BIN2_UTF8,
        city                             VARCHAR(100) COLLATE Latin1_General_100_BIN2_UTF8,
        state                            VARCHAR(16) COLLATE Latin1_General_100_BIN2_UTF8,
        zip                              VARCHAR(16) COLLATE Latin1_General_100_BIN2_UTF8,
        preferred_language               VARCHAR(16) COLLATE Latin1_General_100_BIN2_UTF8,
        insurance_type                   VARCHAR(32) COLLATE Latin1_General_100_BIN2_UTF8,
        valid_from                       DATETIME2(6),
        valid_to                         DATETIME2(6),
        is_current                       BIT,
        status                           VARCHAR(16) COLLATE Latin1_General_100_BIN2_UTF8,
        started_by                       VARCHAR(200) COLLATE Latin1_General_100_BIN2_UTF8
    ) AS rows;
GO

CREATE OR ALTER VIEW gold.dim_date AS
SELECT *
FROM OPENROWSET(
        BULK 'dim_date/',
        DATA_SOURCE = 'patientflow_gold',
        FORMAT = 'DELTA')
    WITH (
        date_key                         INT,
        date                             DATE,
        year                             INT,
        quarter                          INT,
        month                            INT,
        month_key                        INT,
        month_name                       VARCHAR(16) COLLATE Latin1_General_100_BIN2_UTF8,
        day_of_month                     INT,
        day_of_week                      INT,
        day_name                         VARCHAR(16) COLLATE Latin1_General_100_BIN2_UTF8,
        iso_week                         INT,
        is_weekend                       BIT
    ) AS rows;
GO

CREATE OR ALTER VIEW gold.dim_time AS
SELECT *
FROM OPENROWSET(
        BULK 'dim_time/',
        DATA_SOURCE = 'patientflow_gold',
        FORMAT = 'DELTA')
    WITH (
        hour_of_day                      INT,
        hour_label                       VARCHAR(8) COLLATE Latin1_General_100_BIN2_UTF8,
        day_period                       VARCHAR(16) COLLATE Latin1_General_100_BIN2_UTF8,
        shift                            VARCHAR(8) COLLATE Latin1_General_100_BIN2_UTF8,
        is_business_hours                BIT
    ) AS rows;
GO

CREATE OR ALTER VIEW gold.fact_encounter AS
SELECT *
FROM OPENROWSET(
        BULK 'fact_encounter/',
        DATA_SOURCE = 'patientflow_gold',
        FORMAT = 'DELTA')
    WITH (
        encounter_key                    VARCHAR(80) COLLATE Latin1_General_100_BIN2_UTF8,
        hospital_id                      VARCHAR(16) COLLATE Latin1_General_100_BIN2_UTF8,
        visit_number                     VARCHAR(64) COLLATE Latin1_General_100_BIN2_UTF8,
        patient_key                      VARCHAR(80) COLLATE Latin1_General_100_BIN2_UTF8,
        patient_sk                       BIGINT,
        patient_class                    VARCHAR(4) COLLATE Latin1_General_100_BIN2_UTF8,
        status                           VARCHAR(16) COLLATE Latin1_General_100_BIN2_UTF8,
        source                           VARCHAR(16) COLLATE Latin1_General_100_BIN2_UTF8,
        arrival_time                     DATETIME2(6),
        admit_time                       DATETIME2(6),
        discharge_time                   DATETIME2(6),
        arrival_date_key                 INT,
        arrival_hour                     INT,
        arrival_month_key                INT,
        admit_date_key                   INT,
        admit_month_key                  INT,
        discharge_date_key               INT,
        discharge_month_key              INT,
        first_department                 VARCHAR(64) COLLATE Latin1_General_100_BIN2_UTF8,
        first_department_sk              BIGINT,
        admit_department                 VARCHAR(64) COLLATE Latin1_General_100_BIN2_UTF8,
        admit_department_sk              BIGINT,
        last_department                  VARCHAR(64) COLLATE Latin1_General_100_BIN2_UTF8,
        last_department_sk               BIGINT,
        sex                              VARCHAR(4) COLLATE Latin1_General_100_BIN2_UTF8,
        age_at_arrival                   INT,
        age_band_at_arrival              VARCHAR(8) COLLATE Latin1_General_100_BIN2_UTF8,
        age_at_admit                     INT,
        age_band_at_admit                VARCHAR(8) COLLATE Latin1_General_100_BIN2_UTF8,
        is_admitted                      BIT,
        is_cancelled                     BIT,
        via_ed                           BIT,
        is_open                          BIT,
        ed_los_minutes                   FLOAT,
        admission_wait_minutes           FLOAT,
        los_hours                        FLOAT,
        los_days                         INT,
        is_same_day                      BIT,
        silver_run_id                    VARCHAR(64) COLLATE Latin1_General_100_BIN2_UTF8
    ) AS rows;
GO

CREATE OR ALTER VIEW gold.fact_location_stay AS
SELECT *
FROM OPENROWSET(
        BULK 'fact_location_stay/',
        DATA_SOURCE = 'patientflow_gold',
        FORMAT = 'DELTA')
    WITH (
        encounter_key                    VARCHAR(80) COLLATE Latin1_General_100_BIN2_UTF8,
        stay_seq                         BIGINT,
        hospital_id                      VARCHAR(16) COLLATE Latin1_General_100_BIN2_UTF8,
        patient_key                      VARCHAR(80) COLLATE Latin1_General_100_BIN2_UTF8,
        patient_sk                       BIGINT,
        department_code                  VARCHAR(64) COLLATE Latin1_General_100_BIN2_UTF8,
        department_sk                    BIGINT,
        department_type                  VARCHAR(32) COLLATE Latin1_General_100_BIN2_UTF8,
        room                             VARCHAR(32) COLLATE Latin1_General_100_BIN2_UTF8,
        bed                              VARCHAR(32) COLLATE Latin1_General_100_BIN2_UTF8,
        start_time                       DATETIME2(6),
        end_time                         DATETIME2(6),
        start_date_key                   INT,
        start_hour                       INT,
        end_date_key                     INT,
        duration_hours                   FLOAT,
        is_open                          BIT,
        start_event                      VARCHAR(8) COLLATE Latin1_General_100_BIN2_UTF8,
        end_event                        VARCHAR(8) COLLATE Latin1_General_100_BIN2_UTF8,
        start_reason                     VARCHAR(16) COLLATE Latin1_General_100_BIN2_UTF8,
        end_reason                       VARCHAR(16) COLLATE Latin1_General_100_BIN2_UTF8,
        prev_department                  VARCHAR(64) COLLATE Latin1_General_100_BIN2_UTF8,
        next_department                  VARCHAR(64) COLLATE Latin1_General_100_BIN2_UTF8,
        is_admission_stay                BIT,
        boarding_start                   DATETIME2(6),
        sex                              VARCHAR(4) COLLATE Latin1_General_100_BIN2_UTF8,
        age_at_start                     INT,
        age_band_at_start                VARCHAR(8) COLLATE Latin1_General_100_BIN2_UTF8,
        source                           VARCHAR(16) COLLATE Latin1_General_100_BIN2_UTF8
    ) AS rows;
GO

CREATE OR ALTER VIEW gold.fact_census_hourly AS
SELECT *
FROM OPENROWSET(
        BULK 'fact_census_hourly/',
        DATA_SOURCE = 'patientflow_gold',
        FORMAT = 'DELTA')
    WITH (
        hospital_id                      VARCHAR(16) COLLATE Latin1_General_100_BIN2_UTF8,
        department_code                  VARCHAR(64) COLLATE Latin1_General_100_BIN2_UTF8,
        department_sk                    BIGINT,
        hour_start                       DATETIME2(6),
        date_key                         INT,
        hour_of_day                      INT,
        month_key                        INT,
        staffed_beds                     BIGINT,
        licensed_beds                    BIGINT,
        occupied_beds                    BIGINT,
        occupancy_pct                    FLOAT,
        occupied_female                  BIGINT,
        occupied_male                    BIGINT,
        occupied_other                   BIGINT,
        occupied_unknown_sex             BIGINT,
        occupied_age_0_17                BIGINT,
        occupied_age_18_44               BIGINT,
        occupied_age_45_64               BIGINT,
        occupied_age_65_84               BIGINT,
        occupied_age_85_plus             BIGINT,
        occupied_age_unknown             BIGINT,
        arrivals                         BIGINT,
        admissions                       BIGINT,
        discharges                       BIGINT,
        transfers_in                     BIGINT,
        transfers_out                    BIGINT,
        ed_boarders                      BIGINT,
        boarders_waiting                 BIGINT
    ) AS rows;
GO

CREATE OR ALTER VIEW gold.kpi_occupancy_current AS
SELECT *
FROM OPENROWSET(
        BULK 'kpi_occupancy_current/',
        DATA_SOURCE = 'patientflow_gold',
        FORMAT = 'DELTA')
    WITH (
        as_of                            DATETIME2(6),
        hospital_id                      VARCHAR(16) COLLATE Latin1_General_100_BIN2_UTF8,
        department_code                  VARCHAR(64) COLLATE Latin1_General_100_BIN2_UTF8,
        department_sk                    BIGINT,
        department_type                  VARCHAR(32) COLLATE Latin1_General_100_BIN2_UTF8,
        staffed_beds                     BIGINT,
        occupied_beds                    BIGINT,
        occupancy_pct                    FLOAT,
        available_beds                   BIGINT,
        occupied_female                  BIGINT,
        occupied_male                    BIGINT,
        occupied_other                   BIGINT,
        occupied_unknown_sex             BIGINT,
        occupied_age_0_17                BIGINT,
        occupied_age_18_44               BIGINT,
        occupied_age_45_64               BIGINT,
        occupied_age_65_84               BIGINT,
        occupied_age_85_plus             BIGINT,
        occupied_age_unknown             BIGINT
    ) AS rows;
GO

CREATE OR ALTER VIEW gold.kpi_occupancy_current_hospital AS
SELECT *
FROM OPENROWSET(
        BULK 'kpi_occupancy_current_hospital/',
        DATA_SOURCE = 'patientflow_gold',
        FORMAT = 'DELTA')
    WITH (
        as_of                            DATETIME2(6),
        hospital_id                      VARCHAR(16) COLLATE Latin1_General_100_BIN2_UTF8,
        inpatient_staffed_beds           BIGINT,
        inpatient_occupied_beds          BIGINT,
        inpatient_occupancy_pct          FLOAT,
        ed_staffed_spaces                BIGINT,
        ed_occupied                      BIGINT,
        ed_occupancy_pct                 FLOAT,
        departments_at_or_over_85_pct    BIGINT,
        departments                      BIGINT
    ) AS rows;
GO

CREATE OR ALTER VIEW gold.kpi_sex_distribution AS
SELECT *
FROM OPENROWSET(
        BULK 'kpi_sex_distribution/',
        DATA_SOURCE = 'patientflow_gold',
        FORMAT = 'DELTA')
    WITH (
        as_of                            DATETIME2(6),
        hospital_id                      VARCHAR(16) COLLATE Latin1_General_100_BIN2_UTF8,
        department_code                  VARCHAR(64) COLLATE Latin1_General_100_BIN2_UTF8,
        sex_group                        VARCHAR(8) COLLATE Latin1_General_100_BIN2_UTF8,
        occupied_beds                    BIGINT,
        share_pct                        FLOAT
    ) AS rows;
GO

CREATE OR ALTER VIEW gold.kpi_age_band_monthly AS
SELECT *
FROM OPENROWSET(
        BULK 'kpi_age_band_monthly/',
        DATA_SOURCE = 'patientflow_gold',
        FORMAT = 'DELTA')
    WITH (
        hospital_id                      VARCHAR(16) COLLATE Latin1_General_100_BIN2_UTF8,
        department_code                  VARCHAR(64) COLLATE Latin1_General_100_BIN2_UTF8,
        month_key                        INT,
        age_band                         VARCHAR(8) COLLATE Latin1_General_100_BIN2_UTF8,
        admissions                       BIGINT,
        discharges                       BIGINT,
        los_hours_total                  FLOAT,
        alos_hours                       FLOAT,
        occupied_bed_hours               BIGINT,
        census_hours                     BIGINT,
        avg_occupied_beds                FLOAT
    ) AS rows;
GO

CREATE OR ALTER VIEW gold.kpi_alos_department_monthly AS
SELECT *
FROM OPENROWSET(
        BULK 'kpi_alos_department_monthly/',
        DATA_SOURCE = 'patientflow_gold',
        FORMAT = 'DELTA')
    WITH (
        hospital_id                      VARCHAR(16) COLLATE Latin1_General_100_BIN2_UTF8,
        department_code                  VARCHAR(64) COLLATE Latin1_General_100_BIN2_UTF8,
        month_key                        INT,
        discharges                       BIGINT,
        los_hours_total                  FLOAT,
        alos_hours                       FLOAT,
        los_days_total                   BIGINT,
        alos_days                        FLOAT,
        same_day_discharges              BIGINT
    ) AS rows;
GO

CREATE OR ALTER VIEW gold.kpi_alos_hospital_monthly AS
SELECT *
FROM OPENROWSET(
        BULK 'kpi_alos_hospital_monthly/',
        DATA_SOURCE = 'patientflow_gold',
        FORMAT = 'DELTA')
    WITH (
        hospital_id                      VARCHAR(16) COLLATE Latin1_General_100_BIN2_UTF8,
        month_key                        INT,
        discharges                       BIGINT,
        los_hours_total                  FLOAT,
        alos_hours                       FLOAT,
        los_days_total                   BIGINT,
        alos_days                        FLOAT,
        same_day_discharges              BIGINT
    ) AS rows;
GO

CREATE OR ALTER VIEW gold.kpi_los_patient AS
SELECT *
FROM OPENROWSET(
        BULK 'kpi_los_patient/',
        DATA_SOURCE = 'patientflow_gold',
        FORMAT = 'DELTA')
    WITH (
        as_of                            DATETIME2(6),
        patient_key                      VARCHAR(80) COLLATE Latin1_General_100_BIN2_UTF8,
        hospital_id                      VARCHAR(16) COLLATE Latin1_General_100_BIN2_UTF8,
        admissions                       BIGINT,
        discharges                       BIGINT,
        los_hours_total                  FLOAT,
        alos_hours                       FLOAT,
        in_house                         BIT,
        current_los_hours                FLOAT
    ) AS rows;
GO

CREATE OR ALTER VIEW gold.kpi_current_los AS
SELECT *
FROM OPENROWSET(
        BULK 'kpi_current_los/',
        DATA_SOURCE = 'patientflow_gold',
        FORMAT = 'DELTA')
    WITH (
        as_of                            DATETIME2(6),
        hospital_id                      VARCHAR(16) COLLATE Latin1_General_100_BIN2_UTF8,
        department_code                  VARCHAR(64) COLLATE Latin1_General_100_BIN2_UTF8,
        encounter_key                    VARCHAR(80) COLLATE Latin1_General_100_BIN2_UTF8,
        patient_key                      VARCHAR(80) COLLATE Latin1_General_100_BIN2_UTF8,
        admit_time                       DATETIME2(6),
        current_los_hours                FLOAT,
        current_los_days                 BIGINT,
        los_7_plus_days                  BIT,
        los_14_plus_days                 BIT,
        los_21_plus_days                 BIT
    ) AS rows;
GO

CREATE OR ALTER VIEW gold.kpi_admission_wait AS
SELECT *
FROM OPENROWSET(
        BULK 'kpi_admission_wait/',
        DATA_SOURCE = 'patientflow_gold',
        FORMAT = 'DELTA')
    WITH (
        hospital_id                      VARCHAR(16) COLLATE Latin1_General_100_BIN2_UTF8,
        department_code                  VARCHAR(64) COLLATE Latin1_General_100_BIN2_UTF8,
        month_key                        INT,
        hour_of_day                      INT,
        admissions                       BIGINT,
        wait_median_minutes              FLOAT,
        wait_p90_minutes                 FLOAT,
        wait_mean_minutes                FLOAT,
        wait_max_minutes                 FLOAT,
        waits_over_4h                    BIGINT
    ) AS rows;
GO

CREATE OR ALTER VIEW gold.kpi_bottlenecks AS
SELECT *
FROM OPENROWSET(
        BULK 'kpi_bottlenecks/',
        DATA_SOURCE = 'patientflow_gold',
        FORMAT = 'DELTA')
    WITH (
        hospital_id                      VARCHAR(16) COLLATE Latin1_General_100_BIN2_UTF8,
        department_code                  VARCHAR(64) COLLATE Latin1_General_100_BIN2_UTF8,
        kind                             VARCHAR(16) COLLATE Latin1_General_100_BIN2_UTF8,
        threshold                        FLOAT,
        start_hour                       DATETIME2(6),
        end_hour                         DATETIME2(6),
        hours                            BIGINT,
        peak_value                       FLOAT,
        mean_value                       FLOAT,
        ongoing                          BIT
    ) AS rows;
GO

CREATE OR ALTER VIEW gold.kpi_midnight_census AS
SELECT *
FROM OPENROWSET(
        BULK 'kpi_midnight_census/',
        DATA_SOURCE = 'patientflow_gold',
        FORMAT = 'DELTA')
    WITH (
        hospital_id                      VARCHAR(16) COLLATE Latin1_General_100_BIN2_UTF8,
        department_code                  VARCHAR(64) COLLATE Latin1_General_100_BIN2_UTF8,
        date_key                         INT,
        month_key                        INT,
        occupied_bed_days                BIGINT,
        available_bed_days               BIGINT,
        occupancy_pct                    FLOAT,
        same_day_stays                   BIGINT,
        inpatient_days                   BIGINT
    ) AS rows;
GO
