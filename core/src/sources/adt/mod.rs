//! ADT messages: HL7 v2 ER7 and JSON (being written).
