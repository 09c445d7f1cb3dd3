//! Integration tests against real OpenSSH servers started by the tests
//! (see `support`). They skip, saying why, without root or sshd.

mod support;

mod auth;
mod exec;
mod hostkeys;
mod topology;
mod transfer;
mod transport_bench;
