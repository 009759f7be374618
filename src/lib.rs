//! driftgate: a Kubernetes admission webhook that makes Git the only writer of service-mesh
//! configuration.
//!
//! A request flows one way: [`http`] parses an AdmissionReview ([`review`]), [`decide`] judges it
//! against the [`policy`] set (pure: no I/O, no clock), a drift verdict becomes a
//! [`event::DriftEvent`] made durable in the [`journal`] before the answer is sent. Lower layers
//! never reach up: `decide` knows nothing of HTTP, `journal` nothing of policies.

pub mod certs;
pub mod cli;
pub mod commands;
pub mod config;
pub mod decide;
pub mod event;
pub mod http;
pub mod install;
pub mod journal;
pub mod metrics;
pub mod policy;
pub mod review;
pub mod sinks;
pub mod telemetry;

pub use config::Settings;
pub use decide::{Decision, Verdict, decide};
pub use http::Server;
pub use policy::PolicySet;
