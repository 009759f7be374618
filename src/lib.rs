//! driftgate: a Kubernetes admission webhook that makes Git the only writer of service-mesh
//! configuration.
//!
//! A request flows one way: [`http`] parses an AdmissionReview ([`admission`]), [`decide`] judges it
//! against the [`policy`] set (pure: no I/O, no clock), a drift verdict becomes a
//! [`event::DriftEvent`] made durable in the [`journal`] before the answer is sent. Lower layers
//! never reach up: `decide` knows nothing of HTTP, `journal` nothing of policies.

pub mod admission;
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
pub mod reload;
pub mod server;
pub mod sinks;
pub mod telemetry;

pub use config::Settings;
pub use decide::{Decision, Outcome, Verdict, admit};
pub use policy::PolicySet;
pub use server::App;

/// An error and its causes in one line, each message once (`a: b: c`): the kube client's
/// errors repeat their causes in their own messages.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        let message = e.to_string();
        if !text.contains(&message) {
            text.push_str(": ");
            text.push_str(&message);
        }
        cause = e.source();
    }
    text
}
