//! ez-inventory
