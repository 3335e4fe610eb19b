//! Policy engine (being written).
