//! Sinks: where drift events go besides the journal.
//!
//! The `sinks:` of the settings ([`settings`]) are fed from the journal, never from the answer
//! path: a [`forwarder`] per sink follows the journal from a cursor of its own and delivers in
//! order, at least once, retrying until the receiver takes the batch ([`stdout`], [`otlp`],
//! [`webhook`]). A dead receiver costs disk (bounded by the undelivered cap), not memory, and
//! never an admission answer.
//!
//! Kubernetes Events ([`events`]) stay on their own bounded queue, fed by the handler without
//! waiting: an Event is a live notice on the object (`kubectl describe`), aggregated into
//! series and expired by the API server after an hour, so replaying a backlog from the journal
//! would post stale notices; a full queue drops them and counts it. Sinks must not reach back
//! into the decision or the journal's writing.

pub mod client;
pub mod events;
pub mod forwarder;
pub mod otlp;
pub mod runner;
pub mod settings;
pub mod stdout;
pub mod webhook;

pub use events::{EventSink, EventSinkConfig};
pub use settings::{SinkSettings, SinkType};

use crate::event::{Brief, DriftEvent, ParseError};

/// A drift event a sink is to deliver: what the sink reads of it (`E`: the whole event, or
/// only its [`Brief`] for a sink that writes the line as recorded), and the journal line it was
/// read from (JSON, without the newline).
#[derive(Debug)]
pub struct Record<'a, E = DriftEvent<'a>> {
    /// The event, as far as the sink reads it.
    pub event: E,
    /// Its journal line.
    pub line: &'a [u8],
}

/// What a forwarder parses of each journal line for its sink.
pub trait Reads<'a>: Sized {
    /// Parses `line`.
    fn parse(line: &'a [u8]) -> Result<Self, ParseError>;
    /// What the sink's filters and lag read.
    fn brief(&self) -> Brief<'_>;
}

/// A sink that delivers records of `E`, in order.
pub trait Deliver<E> {
    /// Delivers `events` in order.
    fn deliver(&self, events: &[Record<'_, E>]) -> impl Future<Output = Result<(), Failure>> + Send;
}

impl<'a> Reads<'a> for DriftEvent<'a> {
    fn parse(line: &'a [u8]) -> Result<Self, ParseError> {
        DriftEvent::parse(line)
    }

    fn brief(&self) -> Brief<'_> {
        DriftEvent::brief(self)
    }
}

impl<'a> Reads<'a> for Brief<'a> {
    fn parse(line: &'a [u8]) -> Result<Self, ParseError> {
        Brief::parse(line)
    }

    fn brief(&self) -> Brief<'_> {
        self.clone()
    }
}

/// A delivery that did not go through whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The first events that were delivered before it failed.
    pub delivered: usize,
    /// The events after those that the receiver refuses for good (a payload it will never
    /// accept): counted as dropped and skipped. 0: retry from `delivered`.
    pub rejected: usize,
    /// What went wrong, for the log (no secrets).
    pub reason: String,
}

/// A configured sink.
#[derive(Debug)]
pub enum Sink {
    /// Standard output.
    Stdout(stdout::Stdout),
    /// OTLP/HTTP logs.
    Otlp(otlp::Otlp),
    /// HTTPS POSTs.
    Webhook(webhook::Webhook),
}

impl Sink {
    /// Builds the sink `settings` describe, reading its secrets now.
    pub fn new(settings: &SinkSettings) -> Result<Sink, String> {
        match settings.kind {
            SinkType::Stdout => Ok(Sink::Stdout(stdout::Stdout)),
            SinkType::Otlp => otlp::Otlp::new(settings).map(Sink::Otlp),
            SinkType::Webhook => webhook::Webhook::new(settings).map(Sink::Webhook),
            SinkType::Events => Err("the events sink is set with `events: auto|on|off`".to_owned()),
        }
    }

    /// Where it delivers, for logs (no secrets).
    pub fn target(&self) -> String {
        match self {
            Sink::Stdout(_) => "standard output".to_owned(),
            Sink::Otlp(o) => o.target(),
            Sink::Webhook(w) => w.target(),
        }
    }
}
