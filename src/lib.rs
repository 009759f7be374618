//! driftgate: a Kubernetes admission webhook that makes Git the only writer of service-mesh
//! configuration.
//!
//! A request flows one way: [`http`] parses an AdmissionReview ([`admission`]) and calls
//! [`decide::admit`], the one entry point of the pure core (no I/O, no clock), which judges it
//! against the [`policy`] set and gives the answer and, for drift, the [`event::DriftEvent`];
//! the handler makes the event durable in the [`journal`] before the answer is sent, and hands
//! it to the [`sinks`]. [`server`] assembles all of it for `driftgate serve`, with hot
//! [`reload`] of policies and certificates; [`commands`] holds the other commands, [`install`]
//! the generated manifests. Lower layers never reach up: `decide` knows nothing of HTTP, `event`
//! nothing of the core, `journal` nothing of policies.

pub mod admission;
pub mod certs;
pub mod cli;
pub mod cluster;
pub mod commands;
pub mod config;
pub mod decide;
pub mod event;
pub mod grants;
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
