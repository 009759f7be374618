//! Commands other than `serve`, one file each.

pub mod audit;
pub mod break_glass;
pub mod certs;
pub mod check;
pub mod identity;
pub mod manifests;
pub mod register;
pub mod review;
pub mod suggest;
pub mod test;
