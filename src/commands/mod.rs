//! Commands other than `serve`, one file each.

pub mod certs;
pub mod check;
