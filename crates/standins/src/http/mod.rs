//! Minimal HTTP(S) plumbing over hyper + rustls, shared by the stand-ins.

pub mod client;
pub mod server;
pub mod url;

pub use client::{ClientError, HttpClient, Reply};
pub use server::{serve, Body, Handler, Peer};
