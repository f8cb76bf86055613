//! The storage scenarios of `bronze_ingest.rs` against Azurite (Azure Blob emulator): same code path,
//! only the lake URL differs. `.ci/run` starts Azurite and sets `AZURITE_BLOB_STORAGE_URL`.

use patientflow_tests::{azurite_or_skip, scenarios, shared_data_or_skip, unique_azure_lake};

fn use_emulator() {
    // The lake reads AZURE_* settings from the environment, as object_store does in Azure.
    std::env::set_var("AZURE_STORAGE_USE_EMULATOR", "true");
}

#[tokio::test]
async fn azurite_reingest_changes_nothing() {
    if azurite_or_skip("azurite reingest").is_none() {
        return;
    }
    let Some(data) = shared_data_or_skip("azurite reingest") else {
        return;
    };
    use_emulator();
    scenarios::reingest_changes_nothing(
        &unique_azure_lake("reingest"),
        &[data
            .join("hl7v2_adt/ms_fhir_converter")
            .display()
            .to_string()],
        &[data
            .join("synthea_csv_ma100/csv/patients.csv")
            .display()
            .to_string()],
        &[],
    )
    .await;
}

#[tokio::test]
async fn azurite_event_batches_are_idempotent() {
    if azurite_or_skip("azurite events").is_none() {
        return;
    }
    use_emulator();
    scenarios::event_batches_are_idempotent(&unique_azure_lake("events")).await;
}

#[tokio::test]
async fn azurite_schema_evolves_with_new_columns() {
    if azurite_or_skip("azurite schema").is_none() {
        return;
    }
    use_emulator();
    let dir = tempfile::tempdir().unwrap();
    scenarios::new_extract_columns_evolve_the_schema(&unique_azure_lake("schema"), dir.path())
        .await;
}
