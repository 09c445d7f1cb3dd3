//! ez-standins
