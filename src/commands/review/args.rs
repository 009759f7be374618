//! The flags of `driftgate review`: what to read, which events to keep (times, patterns,
//! decisions, dry runs) and the output format. Parsing only: [`super::filter`] applies them.

use std::path::PathBuf;
use std::str::FromStr;

use clap::{Args, ValueEnum};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};
use wildmatch::WildMatch;

use crate::decide::Decision;

const AFTER_HELP: &str = "\
Filters of different flags must all match; a repeated flag matches any of its values.

Dry runs (kubectl diff, --dry-run=server) are journaled but left out by default: --dry-run adds
them (marked \"dry-run\" in the table), --dry-run-only shows only them, --no-dry-run restores the
default. The last of the three wins.

Formats:
  table         aligned columns: time, decision, user, operation, kind, namespace/name, the first
                changed paths (colour only when stdout is a terminal and NO_COLOR is unset)
  json          each matching event's journal line as it is, one a line (for jq)
  summary       exact counts by decision, top users, most-drifted resources, counts per day (UTC)
  policyreport  YAML documents: a wgpolicyk8s.io/v1alpha2 PolicyReport per namespace (a
                ClusterPolicyReport for cluster-scoped objects), one result per event: denied ->
                fail; warned, audited, repaired, break-glass -> warn (the change went through, so
                the cluster differs from Git until Git catches up)

Lines that are not drift events (a torn last line after a crash) are skipped with a note on
stderr (\"skipped line N of FILE: ...\"); they never make review fail.";

/// `driftgate review`: what to read, which events to show and how.
#[derive(Debug, Clone, Args)]
#[command(after_help = AFTER_HELP)]
pub struct ReviewArgs {
    /// Journals to read, in order; `-` reads stdin. A journal's rotated files (FILE.N … FILE.1)
    /// are read before it [default: the configured journal]
    #[arg(value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// The journal to read when no FILE is given [default: the `journal` setting,
    /// drift-events.jsonl]
    #[arg(long, value_name = "FILE")]
    pub journal: Option<PathBuf>,
    /// Settings file (YAML or TOML) to take the `journal` setting from; DRIFTGATE_JOURNAL
    /// overrides it
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Only events at or after WHEN: a duration back from now (30m, 24h, 7d, 2w, 1h30m), an
    /// RFC 3339 time, or a date (YYYY-MM-DD, midnight UTC)
    #[arg(long, value_name = "WHEN")]
    pub since: Option<When>,
    /// Only events before WHEN (same forms as --since)
    #[arg(long, value_name = "WHEN")]
    pub until: Option<When>,
    /// Only events by this user (`*` matches any run of characters; repeat for several)
    #[arg(long, value_name = "USER")]
    pub user: Vec<Pattern>,
    /// Only events in this namespace (`*` wildcards; repeat for several)
    #[arg(long, value_name = "NS")]
    pub namespace: Vec<Pattern>,
    /// Only events about this kind or plural resource, any case: VirtualService, virtualservices
    /// (`*` wildcards; repeat for several)
    #[arg(long, value_name = "KIND")]
    pub kind: Vec<Pattern>,
    /// Only events about objects of this name (`*` wildcards; repeat for several)
    #[arg(long, value_name = "NAME")]
    pub name: Vec<Pattern>,
    /// Only events of this policy (`*` wildcards; repeat for several): each policy that judges
    /// an attempt records an event of its own
    #[arg(long, value_name = "POLICY")]
    pub policy: Vec<Pattern>,
    /// Only events of these decisions (repeat, or separate with commas)
    #[arg(long, value_name = "DECISION", value_enum, value_delimiter = ',')]
    pub decision: Vec<DecisionArg>,
    /// Include dry runs, which are left out by default
    #[arg(long, overrides_with_all = ["no_dry_run", "dry_run_only"])]
    pub dry_run: bool,
    /// Leave dry runs out (the default)
    #[arg(long, overrides_with_all = ["dry_run", "dry_run_only"])]
    pub no_dry_run: bool,
    /// Show only dry runs
    #[arg(long, overrides_with_all = ["dry_run", "no_dry_run"])]
    pub dry_run_only: bool,
    /// Only events whose caller had this address (glob; the `source` of the event)
    #[arg(long, value_name = "ADDR")]
    pub source: Vec<Pattern>,
    /// Only events whose caller presented a client certificate the client CA signed
    #[arg(long, overrides_with = "unauthenticated")]
    pub authenticated: bool,
    /// Only events whose caller did not (anyone who could reach the port)
    #[arg(long, overrides_with = "authenticated")]
    pub unauthenticated: bool,
    /// Output format
    #[arg(long, short = 'o', value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// summary: how many users and resources to list
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub top: usize,
    /// policyreport: the newest results kept per namespace; older ones are counted in the
    /// annotation driftgate.dev/results-omitted
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub max_results: usize,
    /// After the journal, keep printing new events as they are journaled, across rotation
    /// (table and json)
    #[arg(long, short = 'f')]
    pub follow: bool,
}

/// A decision to filter on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DecisionArg {
    /// Refused (enforce mode).
    Denied,
    /// Let through with a warning (warn mode).
    Warned,
    /// Let through silently (audit mode).
    Audited,
    /// Let through with a restoring patch (repair mode).
    Repaired,
    /// Let through by break-glass.
    BreakGlass,
}

impl DecisionArg {
    /// The decision it names.
    pub fn decision(self) -> Decision {
        match self {
            DecisionArg::Denied => Decision::Denied,
            DecisionArg::Warned => Decision::Warned,
            DecisionArg::Audited => Decision::Audited,
            DecisionArg::Repaired => Decision::Repaired,
            DecisionArg::BreakGlass => Decision::BreakGlass,
        }
    }
}

/// How review prints the events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum Format {
    /// Aligned columns, for people.
    #[default]
    Table,
    /// The journal lines, one event a line, for jq.
    Json,
    /// Counts by decision, user, resource and day.
    Summary,
    /// wgpolicyk8s.io/v1alpha2 PolicyReports (YAML), one per namespace.
    #[value(name = "policyreport")]
    PolicyReport,
}

/// Which dry-run events are shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DryRun {
    /// Real changes only (the default).
    #[default]
    Exclude,
    /// Real changes and dry runs.
    Include,
    /// Dry runs only.
    Only,
}

/// A time given on the command line: a duration back from now, or a point in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// This long before now.
    Ago(Duration),
    /// This moment.
    At(OffsetDateTime),
}

/// Why a `--since`/`--until` value is not a time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a duration (30m, 24h, 7d, 2w, 1h30m), an RFC 3339 time or a date (YYYY-MM-DD)")]
pub struct WhenError(String);

impl When {
    /// The moment meant, with `now` for durations.
    pub fn resolve(self, now: OffsetDateTime) -> OffsetDateTime {
        match self {
            When::Ago(d) => now.checked_sub(d).unwrap_or(OffsetDateTime::UNIX_EPOCH),
            When::At(t) => t,
        }
    }
}

impl FromStr for When {
    type Err = WhenError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || WhenError(s.to_owned());
        if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
            return Ok(When::At(t));
        }
        let date_format = time::macros::format_description!("[year]-[month]-[day]");
        if let Ok(d) = time::Date::parse(s, &date_format) {
            return Ok(When::At(d.midnight().assume_utc()));
        }
        // 30s, 30m, 24h, 7d, 2w and sums of them (1h30m), as humantime reads durations.
        let ago = humantime::parse_duration(s).map_err(|_| bad())?;
        Duration::try_from(ago).map(When::Ago).map_err(|_| bad())
    }
}

/// A value to match, where `*` matches any run of characters (and `?` any one).
#[derive(Debug, Clone)]
pub struct Pattern {
    exact: WildMatch,
    any_case: WildMatch,
}

impl FromStr for Pattern {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Pattern { exact: WildMatch::new(s), any_case: WildMatch::new_case_insensitive(s) })
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.exact.to_string() == other.exact.to_string()
    }
}

impl Eq for Pattern {}

impl Pattern {
    /// Whether `value` matches, exactly.
    pub fn matches(&self, value: &str) -> bool {
        self.exact.matches(value)
    }

    /// Whether `value` matches, ignoring case.
    pub fn matches_ignore_case(&self, value: &str) -> bool {
        self.any_case.matches(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> OffsetDateTime {
        OffsetDateTime::parse(s, &Rfc3339).unwrap()
    }

    fn pattern(s: &str) -> Pattern {
        s.parse().unwrap()
    }

    #[test]
    fn parses_durations_times_and_dates() {
        let now = at("2026-11-23T12:00:00Z");
        let cases = [
            ("30m", "2026-11-23T11:30:00Z"),
            ("24h", "2026-11-22T12:00:00Z"),
            ("7d", "2026-11-16T12:00:00Z"),
            ("2w", "2026-11-09T12:00:00Z"),
            ("1h30m", "2026-11-23T10:30:00Z"),
            ("90s", "2026-11-23T11:58:30Z"),
            ("2026-11-20T08:00:00+02:00", "2026-11-20T06:00:00Z"),
            ("2026-11-20", "2026-11-20T00:00:00Z"),
        ];
        for (input, want) in cases {
            let when: When = input.parse().unwrap();
            assert_eq!(when.resolve(now), at(want), "{input}");
        }
    }

    #[test]
    fn rejects_what_is_not_a_time() {
        for bad in ["", "24", "h", "24x", "1h30", "-1h", "yesterday", "2026-13-01", "99999999999999999999d"] {
            assert!(bad.parse::<When>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn matches_wildcards() {
        let cases = [
            ("alice@example.com", "alice@example.com", true),
            ("alice@example.com", "alice@example.co", false),
            ("*@example.com", "bob@example.com", true),
            ("system:serviceaccount:*", "system:serviceaccount:argocd:x", true),
            ("system:serviceaccount:*", "alice", false),
            ("a*b*c", "aXXbYYc", true),
            ("a*b*c", "aXXbYY", false),
            ("*", "", true),
            ("a**", "abc", true),
            ("*ab", "aab", true),
        ];
        for (p, value, want) in cases {
            assert_eq!(pattern(p).matches(value), want, "{p} ~ {value}");
        }
        assert!(pattern("virtualservice").matches_ignore_case("VirtualService"));
        assert!(!pattern("virtualservice").matches("VirtualService"));
    }
}
