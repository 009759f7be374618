//! Sinks: where drift events go besides the journal (Kubernetes Events now; metrics and
//! OpenTelemetry read the same counters or take the same events).
//!
//! Every sink is fed through a bounded queue by a call that never waits, so a slow or absent
//! sink can neither delay nor fail an admission answer; what does not fit is dropped and
//! counted. Sinks must not reach back into the decision or the journal.

pub mod events;

pub use events::{EventSink, EventSinkConfig, SinkError};
