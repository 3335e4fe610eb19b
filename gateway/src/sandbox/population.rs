//! Population (being written).
