//! Several sources reviewed as one: two replicas' journals, a copy from a volume and a shipped
//! log on stdin, each a stream in time order, merged by event time and deduplicated by event
//! id (the same event can be in a journal and in what a sink shipped of it, twice after a
//! redelivery). Memory: one line a stream, and the ids of the last [`WINDOW`] events.

use std::collections::{HashSet, VecDeque};
use std::io::{self, BufRead};
use std::rc::Rc;

use serde::Deserialize;
use time::OffsetDateTime;

use super::error::ReviewError;
use super::reviewer::Reviewer;
use super::sources::Source;
use crate::journal::read::{self, Line, ReadError};

/// How many recent event ids are remembered to skip duplicates: two copies of one event are
/// found when they are at most this many events apart in the merged order.
pub const WINDOW: usize = 100_000;

/// The two fields the merge needs; the rest of the line is skipped unparsed.
#[derive(Deserialize)]
struct Key<'a> {
    #[serde(borrow)]
    id: std::borrow::Cow<'a, str>,
    #[serde(with = "time::serde::rfc3339")]
    time: OffsetDateTime,
}

/// A line read ahead from a stream.
struct Head {
    origin: Rc<str>,
    number: u64,
    text: Vec<u8>,
    complete: bool,
    /// `None` for a line that is not a drift event: passed on at once (the reviewer notes it).
    time: Option<OffsetDateTime>,
}

/// One stream: its sources in order, read line by line.
struct Stream {
    sources: VecDeque<Source>,
    reader: Option<(Box<dyn BufRead>, Rc<str>, u64)>,
    buf: Vec<u8>,
}

impl Stream {
    fn new(sources: Vec<Source>) -> Stream {
        Stream { sources: sources.into(), reader: None, buf: Vec::new() }
    }

    /// The next non-blank line, across the stream's files.
    fn next(&mut self) -> Result<Option<Head>, ReadError> {
        loop {
            let Some((reader, origin, number)) = self.reader.as_mut() else {
                let Some(source) = self.sources.pop_front() else { return Ok(None) };
                let reader: Box<dyn BufRead> = match &source {
                    Source::Stdin => Box::new(io::stdin().lock()),
                    Source::File(path) => Box::new(read::open(path)?),
                };
                self.reader = Some((reader, Rc::from(source.to_string()), 0));
                continue;
            };
            self.buf.clear();
            let n = reader
                .read_until(b'\n', &mut self.buf)
                .map_err(|source| ReadError::Read { path: origin.as_ref().into(), source })?;
            if n == 0 {
                self.reader = None;
                continue;
            }
            *number += 1;
            let complete = self.buf.ends_with(b"\n");
            let Some(text) = read::trimmed(&self.buf, complete) else { continue };
            let time =
                std::str::from_utf8(text).ok().and_then(|t| serde_json::from_str::<Key<'_>>(t).ok()).map(|k| k.time);
            return Ok(Some(Head { origin: origin.clone(), number: *number, text: text.to_vec(), complete, time }));
        }
    }
}

/// The ids of the last [`WINDOW`] events.
#[derive(Default)]
struct Seen {
    ids: HashSet<Box<str>>,
    order: VecDeque<Box<str>>,
}

impl Seen {
    /// Whether `id` was seen; remembers it.
    fn check(&mut self, id: &str) -> bool {
        if self.ids.contains(id) {
            return true;
        }
        if self.order.len() == WINDOW
            && let Some(old) = self.order.pop_front()
        {
            self.ids.remove(&old);
        }
        self.ids.insert(id.into());
        self.order.push_back(id.into());
        false
    }
}

/// Feeds the streams' lines to `reviewer` in time order (each stream's own order kept),
/// skipping events whose id was already passed on.
pub fn merge(streams: Vec<Vec<Source>>, reviewer: &mut Reviewer<'_>) -> Result<(), ReviewError> {
    let mut streams: Vec<Stream> = streams.into_iter().map(Stream::new).collect();
    let mut heads: Vec<Option<Head>> = Vec::with_capacity(streams.len());
    for s in &mut streams {
        heads.push(s.next()?);
    }
    let mut seen = Seen::default();
    loop {
        // The head to pass on: a line that is not an event at once, else the earliest event
        // (the first stream's on a tie).
        let pick = heads
            .iter()
            .enumerate()
            .filter_map(|(i, h)| h.as_ref().map(|h| (i, h.time)))
            .min_by_key(|&(i, time)| (time.is_some(), time, i))
            .map(|(i, _)| i);
        let Some(i) = pick else { return Ok(()) };
        let next = streams[i].next()?;
        let Some(head) = std::mem::replace(&mut heads[i], next) else { continue };
        if head.time.is_some() {
            let key = std::str::from_utf8(&head.text).ok().and_then(|t| serde_json::from_str::<Key<'_>>(t).ok());
            if key.is_some_and(|k| seen.check(&k.id)) {
                reviewer.duplicate();
                continue;
            }
        }
        reviewer.line(&head.origin, Line { number: head.number, text: &head.text, complete: head.complete })?;
    }
}
