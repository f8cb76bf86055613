//! Bronze (being written).
