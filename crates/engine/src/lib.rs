//! ez-engine
