//! ez-pki
