//! ez-lab
