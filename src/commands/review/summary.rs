//! The `summary` format: exact counts by decision, policy, user, resource and UTC day. Counters
//! only, bounded by the distinct policies, users, resources and days.

use std::io::{self, Write};

use rustc_hash::FxHashMap;
use time::{Date, UtcOffset};

use super::args::DryRun;
use crate::decide::Decision;
use crate::event::DriftEvent;

/// The decisions of drift events, in the order summaries list them.
pub const DECISIONS: [Decision; 5] =
    [Decision::Denied, Decision::Warned, Decision::Audited, Decision::Repaired, Decision::BreakGlass];

/// Counters by name. FxHash (rustc's hasher): summary keys are short strings, and SipHash's
/// resistance to chosen keys buys little when counting the users of a local file; its cost
/// shows on a journal of millions of events.
type Counts = FxHashMap<String, u64>;

/// The position of a decision in [`DECISIONS`]; the last slot counts any other.
fn decision_index(decision: Decision) -> usize {
    DECISIONS.iter().position(|d| *d == decision).unwrap_or(DECISIONS.len())
}

/// The summary being counted.
pub struct Summary {
    top: usize,
    dry_run: DryRun,
    total: u64,
    dry_runs: u64,
    /// Events whose caller presented no verified client certificate.
    unauthenticated: u64,
    /// Events of rate-limited sources (summarised lines stand for many).
    rate_limited: u64,
    /// The times of the first and the last event counted (the journal is in time order).
    first: Option<time::OffsetDateTime>,
    last: Option<time::OffsetDateTime>,
    /// By decision, in the order of [`DECISIONS`], then any other.
    decisions: [u64; 6],
    policies: Counts,
    users: Counts,
    resources: Counts,
    /// By UTC day and decision, in day order. Events come in time order, so a new day is
    /// nearly always the last.
    days: Vec<(Date, [u64; 6])>,
    key: String,
}

impl Summary {
    pub fn new(top: usize, dry_run: DryRun) -> Self {
        Summary {
            top,
            dry_run,
            total: 0,
            dry_runs: 0,
            unauthenticated: 0,
            rate_limited: 0,
            first: None,
            last: None,
            decisions: [0; 6],
            policies: Counts::default(),
            users: Counts::default(),
            resources: Counts::default(),
            days: Vec::new(),
            key: String::new(),
        }
    }

    pub fn add(&mut self, e: &DriftEvent<'_>) {
        // A rate limit's summary line stands for `count` events.
        let n = e.count();
        let day = e.time.to_offset(UtcOffset::UTC).date();
        let d = decision_index(e.decision);
        let at = match self.days.last() {
            Some((last, _)) if *last == day => Ok(self.days.len() - 1),
            _ => self.days.binary_search_by(|(k, _)| k.cmp(&day)),
        };
        match at {
            Ok(i) => self.days[i].1[d] += n,
            Err(i) => {
                let mut counts = [0; 6];
                counts[d] = n;
                self.days.insert(i, (day, counts));
            }
        }
        self.total += n;
        self.dry_runs += u64::from(e.dry_run) * n;
        self.unauthenticated += u64::from(!e.source.authenticated) * n;
        self.rate_limited += e.rate_limited.map_or(0, |r| r.count);
        self.decisions[d] += n;
        self.first.get_or_insert(e.time);
        self.last = Some(e.time);
        bump(&mut self.policies, &e.policy, n);
        bump(&mut self.users, &e.user.username, n);
        self.key.clear();
        self.key.push_str(&e.resource.kind_label());
        self.key.push(' ');
        let r = &e.resource;
        if !r.namespace.is_empty() {
            self.key.push_str(&r.namespace);
            self.key.push('/');
        }
        self.key.push_str(&r.name);
        bump(&mut self.resources, &self.key, n);
    }

    pub fn write(&self, out: &mut dyn Write) -> io::Result<()> {
        let dry = match self.dry_run {
            DryRun::Exclude => "dry runs left out".to_owned(),
            DryRun::Include => format!("{} of them dry runs", self.dry_runs),
            DryRun::Only => "dry runs only".to_owned(),
        };
        writeln!(out, "drift events: {} ({dry})", self.total)?;
        if let (Some(first), Some(last)) = (self.first, self.last) {
            let rfc3339 =
                |t: time::OffsetDateTime| t.format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
            writeln!(out, "from {} to {}", rfc3339(first), rfc3339(last))?;
        }
        writeln!(
            out,
            "unauthenticated: {} (the caller presented no client certificate the client CA signed: not known to come from the kube-apiserver)",
            self.unauthenticated
        )?;
        if self.rate_limited > 0 {
            writeln!(
                out,
                "rate-limited: {} (over a source's rate limit; journaled as summaries with a count)",
                self.rate_limited
            )?;
        }
        writeln!(out)?;
        writeln!(out, "by decision:")?;
        for (decision, count) in DECISIONS.iter().zip(self.decisions) {
            writeln!(out, "  {:<12} {count:>9}", decision.as_str())?;
        }
        if self.decisions[DECISIONS.len()] > 0 {
            writeln!(out, "  {:<12} {:>9}", "other", self.decisions[DECISIONS.len()])?;
        }
        for (title, map) in
            [("by policy", &self.policies), ("top users", &self.users), ("most-drifted resources", &self.resources)]
        {
            writeln!(out)?;
            let top = top_n(map, self.top);
            writeln!(out, "{title} ({} of {}):", top.len(), map.len())?;
            for (name, count) in top {
                writeln!(out, "  {count:>9}  {name}")?;
            }
        }
        writeln!(out)?;
        writeln!(out, "per day (UTC):")?;
        write!(out, "  {:<10} {:>9}", "day", "total")?;
        for decision in DECISIONS {
            write!(out, " {:>11}", decision.as_str())?;
        }
        writeln!(out)?;
        for (day, counts) in &self.days {
            let day = format!("{:04}-{:02}-{:02}", day.year(), u8::from(day.month()), day.day());
            write!(out, "  {day:<10} {:>9}", counts.iter().sum::<u64>())?;
            for count in &counts[..DECISIONS.len()] {
                write!(out, " {count:>11}")?;
            }
            writeln!(out)?;
        }
        Ok(())
    }
}

/// Counts `key` `by` more, allocating only for a new key.
fn bump(map: &mut Counts, key: &str, by: u64) {
    match map.get_mut(key) {
        Some(n) => *n += by,
        None => {
            map.insert(key.to_owned(), by);
        }
    }
}

/// The `n` largest counts, ties by name.
fn top_n(map: &Counts, n: usize) -> Vec<(&str, u64)> {
    let mut all: Vec<(&str, u64)> = map.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    all.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    all.truncate(n);
    all
}

#[cfg(test)]
mod tests {
    use super::super::args::Format;
    use super::super::reviewer::mk_review;
    use super::super::testing::{at, mk_event, mk_line};
    use super::*;

    #[test]
    fn summarises_with_exact_counts() {
        let t = "2026-11-23T11:00:00Z";
        let lines = [
            mk_line("alice", "shop", "VirtualService", "denied", t, false),
            mk_line("alice", "shop", "VirtualService", "denied", "2026-11-24T01:00:00Z", false),
            mk_line("bob", "shop", "Gateway", "warned", t, false),
            mk_line("carol", "pay", "Gateway", "break-glass", t, false),
        ];
        let (out, _, _) = mk_review(Format::Summary, &lines);
        let has = |l: &str| out.lines().any(|x| x.split_whitespace().eq(l.split_whitespace()));
        assert!(has("drift events: 4 (dry runs left out)"), "{out}");
        assert!(has("denied 2") && has("warned 1") && has("audited 0") && has("break-glass 1"), "{out}");
        assert!(has("top users (2 of 3):") && has("2 alice") && has("1 bob") && !has("1 carol"), "{out}");
        assert!(has("most-drifted resources (2 of 3):") && has("2 VirtualService shop/reviews"), "{out}");
        assert!(has("2026-11-23 3 1 1 0 0 1") && has("2026-11-24 1 1 0 0 0 0"), "{out}");
        assert!(
            has(
                "unauthenticated: 4 (the caller presented no client certificate the client CA signed: not known to come from the kube-apiserver)"
            ),
            "{out}"
        );
    }

    #[test]
    fn a_rate_limit_summary_counts_as_the_events_it_stands_for() {
        let t = "2026-11-23T11:00:00Z";
        let from_apiserver = mk_line("alice", "shop", "VirtualService", "denied", t, false)
            .replace(r#""requestUid""#, r#""source":{"address":"10.0.0.1","authenticated":true},"requestUid""#);
        let flood = mk_line("mallory", "shop", "VirtualService", "denied", t, false).replace(
            r#""requestUid""#,
            r#""source":{"address":"10.1.2.3","authenticated":false},"rateLimited":{"count":500,"since":"2026-11-23T10:59:00Z"},"requestUid""#,
        );
        let (out, _, _) = mk_review(Format::Summary, &[from_apiserver, flood]);
        let has = |l: &str| out.lines().any(|x| x.split_whitespace().eq(l.split_whitespace()));
        assert!(has("drift events: 501 (dry runs left out)"), "{out}");
        assert!(out.contains("unauthenticated: 500 ") && out.contains("rate-limited: 500 "), "{out}");
        assert!(has("500 mallory") && has("denied 501"), "{out}");
    }

    #[test]
    fn takes_the_utc_day_of_a_time() {
        let cases = [
            ("2026-11-23T23:30:32.5Z", "2026-11-23"),
            ("2026-11-23T23:30:32Z", "2026-11-23"),
            ("2026-11-23T23:30:32+02:00", "2026-11-23"),
            ("2026-11-23T23:30:32-02:00", "2026-11-24"),
        ];
        for (time, want) in cases {
            let mut summary = Summary::new(1, DryRun::Include);
            summary.add(&mk_event(&mk_line("a", "shop", "VirtualService", "denied", time, false)));
            let day = summary.days[0].0;
            assert_eq!(day, at(&format!("{want}T00:00:00Z")).date(), "{time}");
        }
    }
}
