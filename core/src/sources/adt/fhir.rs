//! FHIR R4 Encounter/Patient resources (being written).
