//! ez-ssh
