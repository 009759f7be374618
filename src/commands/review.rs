//! `driftgate review`: reads drift events back from the journal, filters them, and prints them
//! as a table, JSON lines, a summary or PolicyReports; `--follow` keeps printing new ones.
//!
//! Owns the reading side of the drift-event format: a view of an event with only the fields
//! review needs, borrowed from the line ([`EventView`]), the filters ([`Filter`]) and the output
//! formats. It streams: lines come one at a time from [`crate::journal::read`], and what is kept
//! between lines is bounded (counters for `summary`, the newest results per namespace for
//! `policyreport`, one block of rows for `table`). A line that is not a drift event (a torn last
//! line after a crash) is skipped with a note on stderr, never an error. It never writes the
//! journal.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::io::{self, BufRead, BufWriter, IsTerminal as _, Write};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::str::FromStr;

use clap::{Args, ValueEnum};
use serde::de::{Deserializer, IgnoredAny, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime, UtcOffset};

use crate::config::{ConfigError, Settings};
use crate::journal::read::{self, Follower, Line, ReadError};

/// How often `--follow` looks at the journal.
const FOLLOW_POLL: std::time::Duration = std::time::Duration::from_millis(200);
/// Notes about skipped lines printed before the rest are only counted.
const MAX_NOTES: u64 = 100;
/// Table rows whose column widths are measured together before they are printed.
const TABLE_BLOCK: usize = 1024;
/// The decisions of drift events, in the order summaries list them.
pub const DECISIONS: [&str; 5] = ["denied", "warned", "audited", "repaired", "break-glass"];

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
    /// The name used in drift events.
    pub fn as_str(self) -> &'static str {
        match self {
            DecisionArg::Denied => "denied",
            DecisionArg::Warned => "warned",
            DecisionArg::Audited => "audited",
            DecisionArg::Repaired => "repaired",
            DecisionArg::BreakGlass => "break-glass",
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

/// Why review could not run. Unreadable lines are not errors: they are skipped with a note.
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    /// A journal could not be opened or read.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// The settings naming the journal could not be loaded.
    #[error(transparent)]
    Settings(#[from] ConfigError),
    /// Standard output could not be written.
    #[error("failed to write the output: {0}")]
    Output(#[from] io::Error),
    /// A policy report could not be serialised.
    #[error("failed to write the policy report: {0}")]
    Report(#[from] serde_yaml_ng::Error),
    /// The flags do not go together.
    #[error("{0}")]
    Usage(&'static str),
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
        parse_duration(s).map(When::Ago).ok_or_else(bad)
    }
}

/// `30s`, `30m`, `24h`, `7d`, `2w` and sums of them (`1h30m`).
fn parse_duration(s: &str) -> Option<Duration> {
    if s.is_empty() {
        return None;
    }
    let mut total: i64 = 0;
    let mut number: Option<i64> = None;
    for c in s.chars() {
        if let Some(d) = c.to_digit(10) {
            number = Some(number.unwrap_or(0).checked_mul(10)?.checked_add(i64::from(d))?);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 7 * 86_400,
            _ => return None,
        };
        total = total.checked_add(number.take()?.checked_mul(unit)?)?;
    }
    if number.is_some() {
        return None; // a number without a unit
    }
    Some(Duration::seconds(total))
}

/// A value to match, where `*` matches any run of characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern(String);

impl FromStr for Pattern {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Pattern(s.to_owned()))
    }
}

impl Pattern {
    /// Whether `value` matches, exactly.
    pub fn matches(&self, value: &str) -> bool {
        wildcard(self.0.as_bytes(), value.as_bytes(), false)
    }

    /// Whether `value` matches, ignoring ASCII case.
    pub fn matches_ignore_case(&self, value: &str) -> bool {
        wildcard(self.0.as_bytes(), value.as_bytes(), true)
    }
}

fn wildcard(pattern: &[u8], value: &[u8], fold: bool) -> bool {
    let same = |a: u8, b: u8| if fold { a.eq_ignore_ascii_case(&b) } else { a == b };
    if !pattern.contains(&b'*') {
        return pattern.len() == value.len() && pattern.iter().zip(value).all(|(a, b)| same(*a, *b));
    }
    let (mut p, mut v) = (0, 0);
    // The last `*` seen and the value position it has matched up to, to backtrack to.
    let mut star: Option<(usize, usize)> = None;
    while v < value.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, v));
                p += 1;
            }
            Some(&c) if same(c, value[v]) => {
                p += 1;
                v += 1;
            }
            _ => match star {
                Some((sp, sv)) => {
                    star = Some((sp, sv + 1));
                    p = sp + 1;
                    v = sv + 1;
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// `user` of a drift event, as review reads it.
#[derive(Debug, Default, Deserialize)]
#[serde(bound(deserialize = "S: Deserialize<'de> + Default"))]
pub struct UserFields<S> {
    /// The user name.
    #[serde(default)]
    pub username: S,
}

/// `resource` of a drift event, as review reads it.
#[derive(Debug, Default, Deserialize)]
#[serde(bound(deserialize = "S: Deserialize<'de> + Default"))]
pub struct ResourceFields<S> {
    /// Kind.
    #[serde(default)]
    pub kind: S,
    /// Plural resource name.
    #[serde(default)]
    pub resource: S,
    /// Subresource, if any.
    #[serde(default)]
    pub subresource: S,
    /// Namespace; empty for cluster-scoped objects.
    #[serde(default)]
    pub namespace: S,
    /// Name.
    #[serde(default)]
    pub name: S,
}

/// `changes` of a drift event, as review reads it: the first two paths and how many are listed.
/// The values are skipped unread.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ChangedPaths<'a> {
    /// The first two changed paths (`""` is the whole object, for a DELETE).
    pub first: [Option<Cow<'a, str>>; 2],
    /// How many changes the event lists.
    pub listed: u64,
}

#[derive(Deserialize)]
struct PathOnly<'a> {
    #[serde(borrow, default)]
    path: Cow<'a, str>,
}

impl<'de: 'a, 'a> Deserialize<'de> for ChangedPaths<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Paths<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for Paths<'a> {
            type Value = ChangedPaths<'a>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of changes")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut out = ChangedPaths::default();
                loop {
                    let slot = usize::try_from(out.listed).ok().and_then(|i| out.first.get_mut(i));
                    if let Some(slot) = slot {
                        match seq.next_element::<PathOnly<'de>>()? {
                            Some(change) => *slot = Some(change.path),
                            None => break,
                        }
                    } else if seq.next_element::<IgnoredAny>()?.is_none() {
                        break;
                    }
                    out.listed += 1;
                }
                Ok(out)
            }
        }
        deserializer.deserialize_seq(Paths(PhantomData))
    }
}

/// The fields of a drift event ([`crate::event::DriftEvent`]) that the filters, `summary` and
/// `table` read, with strings of type `S`. The rest of the line is checked but not kept: every
/// field kept costs time on a journal of millions of events. `policyreport` reads more with
/// [`EventDetails`].
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", bound(deserialize = "S: Deserialize<'de> + Default"))]
pub struct EventFields<'a, S> {
    /// RFC 3339 time.
    pub time: S,
    /// `denied`, `warned`, `audited`, `repaired` or `break-glass`.
    pub decision: S,
    /// The policy that judged it.
    #[serde(default)]
    pub policy: S,
    /// `CREATE`, `UPDATE` or `DELETE`.
    #[serde(default)]
    pub operation: S,
    /// Whether the request was a dry run.
    #[serde(default)]
    pub dry_run: bool,
    /// Who sent it.
    pub user: UserFields<S>,
    /// What it was about.
    pub resource: ResourceFields<S>,
    /// What it changed, read by [`EventView::changed_paths`] when asked.
    #[serde(borrow, default)]
    changes: Option<&'a RawValue>,
    /// Changes beyond those listed.
    #[serde(default)]
    pub changes_omitted: u64,
}

/// A drift event as review reads it, borrowed from the journal line (copied only where a string
/// has escapes).
pub type EventView<'a> = EventFields<'a, Cow<'a, str>>;

impl<'a, S> EventFields<'a, S> {
    fn map<T>(self, f: impl Fn(S) -> T) -> EventFields<'a, T> {
        let (u, r) = (self.user, self.resource);
        EventFields {
            time: f(self.time),
            decision: f(self.decision),
            policy: f(self.policy),
            operation: f(self.operation),
            dry_run: self.dry_run,
            user: UserFields { username: f(u.username) },
            resource: ResourceFields {
                kind: f(r.kind),
                resource: f(r.resource),
                subresource: f(r.subresource),
                namespace: f(r.namespace),
                name: f(r.name),
            },
            changes: self.changes,
            changes_omitted: self.changes_omitted,
        }
    }
}

impl<'a> EventView<'a> {
    /// Reads one journal line.
    pub fn parse(line: &'a [u8]) -> Result<Self, ParseError> {
        // One check of the whole line is cheaper than serde_json's check of each string.
        let text = std::str::from_utf8(line).map_err(ParseError::Utf8)?;
        // Borrowing plain `&str`s is the fast way; it fails only on a string with escapes (or a
        // line that is no drift event), which the second reading copies (or reports).
        match serde_json::from_str::<EventFields<'a, &'a str>>(text) {
            Ok(fields) => Ok(fields.map(Cow::Borrowed)),
            Err(_) => serde_json::from_str(text).map_err(ParseError::Json),
        }
    }

    /// The kind as people read it: `VirtualService`, or `deployments/scale` for a subresource.
    pub fn kind_label(&self) -> Cow<'_, str> {
        let r = &self.resource;
        if r.subresource.is_empty() {
            Cow::Borrowed(&r.kind)
        } else {
            Cow::Owned(format!("{}/{}", r.resource, r.subresource))
        }
    }

    /// `namespace/name`, or `name` for cluster-scoped objects.
    pub fn object_ref(&self) -> String {
        let r = &self.resource;
        if r.namespace.is_empty() { r.name.to_string() } else { format!("{}/{}", r.namespace, r.name) }
    }

    /// The event's changed paths (none when `changes` is not a list of changes).
    pub fn changed_paths(&self) -> ChangedPaths<'a> {
        self.changes.and_then(|raw| serde_json::from_str(raw.get()).ok()).unwrap_or_default()
    }

    /// The first changed paths and a count of the rest: `/spec/a, /spec/b +3`.
    pub fn changed(&self) -> String {
        let changes = self.changed_paths();
        let mut out = String::new();
        let mut shown = 0u64;
        for path in changes.first.iter().flatten() {
            if !out.is_empty() {
                out.push_str(", ");
            }
            out.push_str(if path.is_empty() { "(whole object)" } else { path });
            shown += 1;
        }
        let more = (changes.listed + self.changes_omitted).saturating_sub(shown);
        if more > 0 {
            out.push_str(&format!(" +{more}"));
        }
        out
    }
}

/// `resource` of a drift event: what `policyreport` reads beyond [`ResourceFields`].
#[derive(Debug, Default, Deserialize)]
pub struct ResourceDetails<'a> {
    /// API group.
    #[serde(borrow, default)]
    pub group: Cow<'a, str>,
    /// API version.
    #[serde(borrow, default)]
    pub version: Cow<'a, str>,
}

/// The fields of a drift event that only `policyreport` reads (with [`EventView`]'s).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventDetails<'a> {
    /// The event id.
    #[serde(borrow, default)]
    pub id: Cow<'a, str>,
    /// The deciding policy's mode.
    #[serde(borrow, default)]
    pub mode: Cow<'a, str>,
    /// The deciding policy.
    #[serde(borrow, default)]
    pub policy: Cow<'a, str>,
    /// The rule within the policy.
    #[serde(borrow, default)]
    pub rule: Cow<'a, str>,
    /// What the person was told.
    #[serde(borrow, default)]
    pub message: Cow<'a, str>,
    /// The AdmissionReview's uid.
    #[serde(borrow, default)]
    pub request_uid: Cow<'a, str>,
    /// Group and version of the object.
    #[serde(borrow, default)]
    pub resource: ResourceDetails<'a>,
}

impl<'a> EventDetails<'a> {
    /// Reads one journal line (one that [`EventView::parse`] read).
    pub fn parse(line: &'a [u8]) -> Result<Self, ParseError> {
        let text = std::str::from_utf8(line).map_err(ParseError::Utf8)?;
        serde_json::from_str(text).map_err(ParseError::Json)
    }

    /// The `apiVersion` of the object: `group/version`, or `version` for the core group.
    pub fn api_version(&self) -> String {
        let r = &self.resource;
        if r.group.is_empty() { r.version.to_string() } else { format!("{}/{}", r.group, r.version) }
    }
}

/// Why a journal line is not a drift event.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// The line is not UTF-8.
    #[error("invalid UTF-8: {0}")]
    Utf8(std::str::Utf8Error),
    /// The line is not JSON, or not a drift event's.
    #[error("{0}")]
    Json(serde_json::Error),
}

/// An event's time is not RFC 3339.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("time {0:?} is not an RFC 3339 time")]
pub struct BadTime(String);

/// Parses an event's time.
pub fn parse_time(time: &str) -> Result<OffsetDateTime, BadTime> {
    OffsetDateTime::parse(time, &Rfc3339).map_err(|_| BadTime(time.to_owned()))
}

/// The UTC day of an event's time, `YYYY-MM-DD`.
fn day_of(time: &str) -> Result<Cow<'_, str>, BadTime> {
    // The journal writes UTC (`…Z`): its first ten characters are the day.
    if time.ends_with('Z')
        && time.as_bytes().get(10) == Some(&b'T')
        && let Some(day) = time.get(..10)
    {
        return Ok(Cow::Borrowed(day));
    }
    let date = parse_time(time)?.to_offset(UtcOffset::UTC).date();
    Ok(Cow::Owned(format!("{:04}-{:02}-{:02}", date.year(), u8::from(date.month()), date.day())))
}

/// Which events review shows. Every set condition must hold; a list matches any of its values.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only events at or after this time.
    pub since: Option<OffsetDateTime>,
    /// Only events before this time.
    pub until: Option<OffsetDateTime>,
    /// Only events by these users.
    pub users: Vec<Pattern>,
    /// Only events in these namespaces.
    pub namespaces: Vec<Pattern>,
    /// Only events about these kinds or plural resources (any case).
    pub kinds: Vec<Pattern>,
    /// Only events about objects of these names.
    pub names: Vec<Pattern>,
    /// Only events of these policies.
    pub policies: Vec<Pattern>,
    /// Only events of these decisions.
    pub decisions: Vec<DecisionArg>,
    /// Which dry runs.
    pub dry_run: DryRun,
}

impl Filter {
    /// The filter the flags ask for, with `now` for durations.
    pub fn from_args(args: &ReviewArgs, now: OffsetDateTime) -> Self {
        let dry_run = if args.dry_run_only {
            DryRun::Only
        } else if args.dry_run {
            DryRun::Include
        } else {
            DryRun::Exclude
        };
        Filter {
            since: args.since.map(|w| w.resolve(now)),
            until: args.until.map(|w| w.resolve(now)),
            users: args.user.clone(),
            namespaces: args.namespace.clone(),
            kinds: args.kind.clone(),
            names: args.name.clone(),
            policies: args.policy.clone(),
            decisions: args.decision.clone(),
            dry_run,
        }
    }

    /// Whether `event` is shown. Its time is read only when a time condition is set; an error
    /// when it is then not RFC 3339.
    pub fn matches(&self, event: &EventView<'_>) -> Result<bool, BadTime> {
        let dry_run = match self.dry_run {
            DryRun::Exclude => !event.dry_run,
            DryRun::Include => true,
            DryRun::Only => event.dry_run,
        };
        let r = &event.resource;
        let any = |list: &[Pattern], value: &str| list.is_empty() || list.iter().any(|p| p.matches(value));
        let shown = dry_run
            && (self.decisions.is_empty() || self.decisions.iter().any(|d| d.as_str() == event.decision))
            && any(&self.users, &event.user.username)
            && any(&self.namespaces, &r.namespace)
            && any(&self.names, &r.name)
            && any(&self.policies, &event.policy)
            && (self.kinds.is_empty()
                || self.kinds.iter().any(|p| p.matches_ignore_case(&r.kind) || p.matches_ignore_case(&r.resource)));
        if !shown || (self.since.is_none() && self.until.is_none()) {
            return Ok(shown);
        }
        let t = parse_time(&event.time)?;
        Ok(self.since.is_none_or(|s| t >= s) && self.until.is_none_or(|u| t < u))
    }
}

/// Where review reads events from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Standard input.
    Stdin,
    /// A journal file (live or rotated).
    File(PathBuf),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Stdin => f.write_str("stdin"),
            Source::File(p) => write!(f, "{}", p.display()),
        }
    }
}

/// The sources for FILE arguments, in order: `-` is stdin; every other FILE is read after its
/// rotated files (FILE.N … FILE.1), unless it is itself a rotated file of another FILE given
/// (so `drift-events.jsonl*` reads each file once, oldest first). A FILE with neither the file
/// nor rotated files is an error.
pub fn sources(files: &[PathBuf]) -> Result<Vec<Source>, ReadError> {
    let mut out = Vec::new();
    for file in files {
        if file.as_os_str() == "-" {
            out.push(Source::Stdin);
            continue;
        }
        if files.iter().any(|live| live != file && read::is_rotated_of(file, live)) {
            continue;
        }
        let found = read::journal_files(file)?;
        if found.is_empty() {
            return Err(ReadError::Open { path: file.clone(), source: io::ErrorKind::NotFound.into() });
        }
        out.extend(found.into_iter().map(Source::File));
    }
    Ok(out)
}

/// Counts of one review.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ScanStats {
    /// Non-blank lines read.
    pub lines: u64,
    /// Lines that were drift events.
    pub events: u64,
    /// Events the filter let through.
    pub matched: u64,
    /// Lines skipped as unreadable.
    pub skipped: u64,
}

/// How the output looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputOptions {
    /// The format.
    pub format: Format,
    /// `summary`: users and resources listed.
    pub top: usize,
    /// `policyreport`: results kept per namespace.
    pub max_results: usize,
    /// `table`: colour the decisions.
    pub color: bool,
}

impl Default for OutputOptions {
    fn default() -> Self {
        OutputOptions { format: Format::Table, top: 10, max_results: 1000, color: false }
    }
}

enum Output {
    Table(Table),
    Json,
    Summary(Box<Summary>),
    Report(Reports),
}

/// One review: lines in, output out. Feed it with [`Reviewer::read`] (a whole source) or
/// [`Reviewer::follow`] (what a follower has), then [`Reviewer::finish`].
pub struct Reviewer<'w> {
    filter: Filter,
    output: Output,
    out: &'w mut dyn Write,
    notes: &'w mut dyn Write,
    stats: ScanStats,
}

impl<'w> Reviewer<'w> {
    /// A review printing to `out`, with notes about skipped lines to `notes`.
    pub fn new(filter: Filter, options: OutputOptions, out: &'w mut dyn Write, notes: &'w mut dyn Write) -> Self {
        let output = match options.format {
            Format::Table => Output::Table(Table::new(options.color)),
            Format::Json => Output::Json,
            Format::Summary => Output::Summary(Box::new(Summary::new(options.top, filter.dry_run))),
            Format::PolicyReport => Output::Report(Reports::new(options.max_results)),
        };
        Reviewer { filter, output, out, notes, stats: ScanStats::default() }
    }

    /// Reads a whole source.
    pub fn read(&mut self, source: &Source) -> Result<(), ReviewError> {
        let origin = source.to_string();
        match source {
            Source::Stdin => {
                let stdin = io::stdin();
                let lock = stdin.lock();
                self.read_from(lock, Path::new("stdin"), &origin)
            }
            Source::File(path) => {
                let reader = read::open(path)?;
                self.read_from(reader, path, &origin)
            }
        }
    }

    fn read_from(&mut self, reader: impl BufRead, path: &Path, origin: &str) -> Result<(), ReviewError> {
        read::for_each_line(reader, path, |line| self.line(origin, line))
    }

    /// Takes what `follower` has now, and prints it.
    pub fn follow(&mut self, follower: &mut Follower) -> Result<(), ReviewError> {
        let origin = follower.path().display().to_string();
        follower.poll(|line| self.line(&origin, line))?;
        self.flush()
    }

    /// Takes one journal line (`origin` names its file in notes).
    pub fn line(&mut self, origin: &str, line: Line<'_>) -> Result<(), ReviewError> {
        self.stats.lines += 1;
        let event = match EventView::parse(line.text) {
            Ok(event) => event,
            Err(e) if !line.complete => {
                return self.skip(origin, line.number, &format!("torn last line, no newline at its end ({e})"));
            }
            Err(e) => return self.skip(origin, line.number, &format!("not a drift event ({e})")),
        };
        self.stats.events += 1;
        match self.filter.matches(&event) {
            Ok(true) => {}
            Ok(false) => return Ok(()),
            Err(e) => return self.skip(origin, line.number, &e.to_string()),
        }
        let taken = match &mut self.output {
            Output::Table(table) => table.push(&event, &mut *self.out).map(Ok)?,
            Output::Json => {
                self.out.write_all(line.text)?;
                self.out.write_all(b"\n")?;
                Ok(())
            }
            Output::Summary(summary) => summary.add(&event).map_err(|e| e.to_string()),
            Output::Report(reports) => reports.add(&event, line.text),
        };
        if let Err(why) = taken {
            return self.skip(origin, line.number, &why);
        }
        self.stats.matched += 1;
        Ok(())
    }

    fn skip(&mut self, origin: &str, number: u64, why: &str) -> Result<(), ReviewError> {
        self.stats.skipped += 1;
        if self.stats.skipped <= MAX_NOTES {
            // A note that cannot be written is no reason to stop.
            let _ = writeln!(self.notes, "skipped line {number} of {origin}: {why}");
        }
        Ok(())
    }

    /// Prints rows waiting for their column widths, and flushes the output.
    pub fn flush(&mut self) -> Result<(), ReviewError> {
        if let Output::Table(table) = &mut self.output {
            table.flush(&mut *self.out)?;
        }
        self.out.flush()?;
        Ok(())
    }

    /// Prints what is printed at the end (summary, policy reports) and the rest of the table.
    pub fn finish(mut self) -> Result<ScanStats, ReviewError> {
        match &mut self.output {
            Output::Table(table) => table.flush(&mut *self.out)?,
            Output::Json => {}
            Output::Summary(summary) => summary.write(&mut *self.out)?,
            Output::Report(reports) => reports.write(&mut *self.out)?,
        }
        if self.stats.skipped > MAX_NOTES {
            let _ = writeln!(self.notes, "skipped {} more unreadable lines", self.stats.skipped - MAX_NOTES);
        }
        self.out.flush()?;
        Ok(self.stats)
    }
}

/// Runs `driftgate review`: exit code 0 (also when lines were skipped), 1 when a journal
/// cannot be read.
pub fn run(args: &ReviewArgs) -> ExitCode {
    let stdout = io::stdout();
    let color = stdout.is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let mut out = BufWriter::with_capacity(64 * 1024, stdout.lock());
    let mut notes = io::stderr();
    match review(args, color, &mut out, &mut notes) {
        Ok(stats) => {
            if stats.matched == 0 && args.format == Format::Table {
                let _ = writeln!(notes, "no drift events match");
            }
            ExitCode::SUCCESS
        }
        // The reader went away (`| head`): nothing more to say.
        Err(ReviewError::Output(e)) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(notes, "driftgate: {e}");
            ExitCode::FAILURE
        }
    }
}

fn review(
    args: &ReviewArgs,
    color: bool,
    out: &mut dyn Write,
    notes: &mut dyn Write,
) -> Result<ScanStats, ReviewError> {
    if args.follow && !matches!(args.format, Format::Table | Format::Json) {
        return Err(ReviewError::Usage("--follow works with --format table or json"));
    }
    let files = if args.files.is_empty() {
        let journal = match &args.journal {
            Some(j) => j.clone(),
            None => Settings::load(args.config.as_deref(), &[])?.journal,
        };
        vec![journal]
    } else {
        args.files.clone()
    };
    let filter = Filter::from_args(args, OffsetDateTime::now_utc());
    let options = OutputOptions { format: args.format, top: args.top, max_results: args.max_results, color };
    let mut reviewer = Reviewer::new(filter, options, out, notes);
    if !args.follow {
        for source in sources(&files)? {
            reviewer.read(&source)?;
        }
        return reviewer.finish();
    }
    let [live] = files.as_slice() else {
        return Err(ReviewError::Usage("--follow follows one journal: give at most one FILE"));
    };
    if live.as_os_str() == "-" {
        return Err(ReviewError::Usage("--follow follows a journal file, not stdin"));
    }
    // The live file is read by the follower from its start, so no line falls between history
    // and following.
    for file in read::journal_files(live)?.into_iter().filter(|f| f != live) {
        reviewer.read(&Source::File(file))?;
    }
    let mut follower = Follower::new(live);
    loop {
        reviewer.follow(&mut follower)?;
        std::thread::sleep(FOLLOW_POLL);
    }
}

/// The `table` format: rows are held in blocks so columns can be aligned, and printed a block at
/// a time (and at every `--follow` poll). Column widths only grow.
struct Table {
    color: bool,
    widths: [usize; 6],
    rows: Vec<[String; 7]>,
    header: bool,
}

const HEADERS: [&str; 7] = ["TIME", "DECISION", "USER", "OPERATION", "KIND", "OBJECT", "CHANGED"];
/// Widths of the columns at most; a longer value is shortened in the middle (`system:serviceaccount:…:controller`)
/// so the columns stay aligned. `--format json` has every value whole.
const MAX_WIDTHS: [usize; 6] = [30, 11, 56, 16, 40, 64];

/// `cell` shortened to `max` characters, keeping its start and its end around a `…`.
fn fit(cell: String, max: usize) -> String {
    let len = cell.chars().count();
    if len <= max {
        return cell;
    }
    let tail = (max - 1) / 2;
    let head = max - 1 - tail;
    let start: String = cell.chars().take(head).collect();
    let end: String = cell.chars().skip(len - tail).collect();
    format!("{start}…{end}")
}

impl Table {
    fn new(color: bool) -> Self {
        Table { color, widths: std::array::from_fn(|i| HEADERS[i].len()), rows: Vec::new(), header: false }
    }

    fn push(&mut self, e: &EventView<'_>, out: &mut dyn Write) -> io::Result<()> {
        let time = match e.time.get(..19) {
            Some(secs) if e.time.ends_with('Z') => format!("{secs}Z"),
            _ => e.time.to_string(),
        };
        let operation = if e.dry_run { format!("{} dry-run", e.operation) } else { e.operation.to_string() };
        let mut row = [
            time,
            e.decision.to_string(),
            e.user.username.to_string(),
            operation,
            e.kind_label().into_owned(),
            e.object_ref(),
            e.changed(),
        ];
        // Every column but the last (CHANGED) has a width.
        for (cell, max) in row.iter_mut().zip(MAX_WIDTHS) {
            *cell = fit(std::mem::take(cell), max);
        }
        self.rows.push(row);
        if self.rows.len() >= TABLE_BLOCK {
            self.flush(out)?;
        }
        Ok(())
    }

    fn flush(&mut self, out: &mut dyn Write) -> io::Result<()> {
        if self.rows.is_empty() {
            return Ok(());
        }
        for row in &self.rows {
            for (i, width) in self.widths.iter_mut().enumerate() {
                *width = (*width).max(row[i].chars().count());
            }
        }
        if !self.header {
            self.header = true;
            self.write_row(out, &HEADERS.map(str::to_owned), false)?;
        }
        let rows = std::mem::take(&mut self.rows);
        for row in &rows {
            self.write_row(out, row, self.color)?;
        }
        self.rows = rows;
        self.rows.clear();
        Ok(())
    }

    fn write_row(&self, out: &mut dyn Write, row: &[String; 7], color: bool) -> io::Result<()> {
        for (i, cell) in row.iter().enumerate() {
            let Some(&width) = self.widths.get(i) else {
                writeln!(out, "{cell}")?;
                continue;
            };
            let pad = width.saturating_sub(cell.chars().count()) + 2;
            match decision_color(cell).filter(|_| color && i == 1) {
                Some(code) => write!(out, "\x1b[{code}m{cell}\x1b[0m{:pad$}", "")?,
                None => write!(out, "{cell}{:pad$}", "")?,
            }
        }
        Ok(())
    }
}

fn decision_color(decision: &str) -> Option<&'static str> {
    match decision {
        "denied" => Some("31"),
        "warned" => Some("33"),
        "audited" => Some("36"),
        "repaired" => Some("35"),
        "break-glass" => Some("1;35"),
        _ => None,
    }
}

fn decision_index(decision: &str) -> usize {
    DECISIONS.iter().position(|d| *d == decision).unwrap_or(DECISIONS.len())
}

/// The `summary` format: counters only, bounded by the distinct users, resources and days.
struct Summary {
    top: usize,
    dry_run: DryRun,
    total: u64,
    dry_runs: u64,
    /// The times of the first and the last event counted (the journal is in time order).
    first: String,
    last: String,
    /// By decision, in the order of [`DECISIONS`], then any other.
    decisions: [u64; 6],
    policies: Counts,
    users: Counts,
    resources: Counts,
    /// By day and decision, in day order. Events come in time order, so a new day is nearly
    /// always the last.
    days: Vec<(String, [u64; 6])>,
    key: String,
}

/// Counters by name.
type Counts = HashMap<String, u64, BuildHasherDefault<FxHasher>>;

/// FxHash (rustc's hasher), for counting. Summary keys are short strings, and SipHash's
/// resistance to chosen keys buys little when counting the users of a local file; its cost
/// shows on a journal of millions of events.
#[derive(Debug, Default, Clone, Copy)]
struct FxHasher(u64);

impl FxHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word) ^ (rest.len() as u64) << 59);
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

impl Summary {
    fn new(top: usize, dry_run: DryRun) -> Self {
        Summary {
            top,
            dry_run,
            total: 0,
            dry_runs: 0,
            first: String::new(),
            last: String::new(),
            decisions: [0; 6],
            policies: Counts::default(),
            users: Counts::default(),
            resources: Counts::default(),
            days: Vec::new(),
            key: String::new(),
        }
    }

    fn add(&mut self, e: &EventView<'_>) -> Result<(), BadTime> {
        let day = day_of(&e.time)?;
        let d = decision_index(&e.decision);
        let at = match self.days.last() {
            Some((last, _)) if *last == day => Ok(self.days.len() - 1),
            _ => self.days.binary_search_by(|(k, _)| k.as_str().cmp(&day)),
        };
        match at {
            Ok(i) => self.days[i].1[d] += 1,
            Err(i) => {
                let mut counts = [0; 6];
                counts[d] = 1;
                self.days.insert(i, (day.into_owned(), counts));
            }
        }
        self.total += 1;
        self.dry_runs += u64::from(e.dry_run);
        self.decisions[d] += 1;
        if self.first.is_empty() {
            self.first.push_str(&e.time);
        }
        self.last.clear();
        self.last.push_str(&e.time);
        bump(&mut self.policies, &e.policy);
        bump(&mut self.users, &e.user.username);
        self.key.clear();
        let r = &e.resource;
        if r.subresource.is_empty() {
            self.key.push_str(&r.kind);
        } else {
            self.key.push_str(&r.resource);
            self.key.push('/');
            self.key.push_str(&r.subresource);
        }
        self.key.push(' ');
        if !r.namespace.is_empty() {
            self.key.push_str(&r.namespace);
            self.key.push('/');
        }
        self.key.push_str(&r.name);
        bump(&mut self.resources, &self.key);
        Ok(())
    }

    fn write(&self, out: &mut dyn Write) -> io::Result<()> {
        let dry = match self.dry_run {
            DryRun::Exclude => "dry runs left out".to_owned(),
            DryRun::Include => format!("{} of them dry runs", self.dry_runs),
            DryRun::Only => "dry runs only".to_owned(),
        };
        writeln!(out, "drift events: {} ({dry})", self.total)?;
        if self.total > 0 {
            writeln!(out, "from {} to {}", self.first, self.last)?;
        }
        writeln!(out)?;
        writeln!(out, "by decision:")?;
        for (name, count) in DECISIONS.iter().zip(self.decisions) {
            writeln!(out, "  {name:<12} {count:>9}")?;
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
        for name in DECISIONS {
            write!(out, " {name:>11}")?;
        }
        writeln!(out)?;
        for (day, counts) in &self.days {
            write!(out, "  {day:<10} {:>9}", counts.iter().sum::<u64>())?;
            for count in &counts[..DECISIONS.len()] {
                write!(out, " {count:>11}")?;
            }
            writeln!(out)?;
        }
        Ok(())
    }
}

/// Counts `key` once more, allocating only for a new key.
fn bump(map: &mut Counts, key: &str) {
    match map.get_mut(key) {
        Some(n) => *n += 1,
        None => {
            map.insert(key.to_owned(), 1);
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

/// The `policyreport` format: the newest results of each namespace, printed at the end.
struct Reports {
    max_results: usize,
    namespaces: BTreeMap<String, NamespaceResults>,
}

#[derive(Default)]
struct NamespaceResults {
    results: VecDeque<ReportResult>,
    omitted: u64,
}

/// A `wgpolicyk8s.io/v1alpha2` PolicyReport (or ClusterPolicyReport).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PolicyReport<'a> {
    api_version: &'static str,
    kind: &'static str,
    metadata: ReportMetadata<'a>,
    summary: ReportSummary,
    results: &'a VecDeque<ReportResult>,
}

#[derive(Serialize)]
struct ReportMetadata<'a> {
    name: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    namespace: Option<&'a str>,
    labels: BTreeMap<&'static str, &'static str>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    annotations: BTreeMap<&'static str, String>,
}

#[derive(Serialize, Default)]
struct ReportSummary {
    pass: u64,
    fail: u64,
    warn: u64,
    error: u64,
    skip: u64,
}

#[derive(Serialize)]
struct ReportResult {
    source: &'static str,
    policy: String,
    rule: String,
    category: &'static str,
    result: &'static str,
    scored: bool,
    message: String,
    timestamp: Timestamp,
    resources: [ObjectReference; 1],
    properties: BTreeMap<&'static str, String>,
}

#[derive(Serialize)]
struct Timestamp {
    seconds: i64,
    nanos: i32,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ObjectReference {
    api_version: String,
    kind: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    namespace: String,
    name: String,
}

/// The PolicyReport `result` of a decision: `fail` for a refused change, `warn` for one that
/// went through (the cluster differs from Git until Git catches up).
pub fn report_result(decision: &str) -> &'static str {
    if decision == "denied" { "fail" } else { "warn" }
}

impl Reports {
    fn new(max_results: usize) -> Self {
        Reports { max_results, namespaces: BTreeMap::new() }
    }

    fn add(&mut self, e: &EventView<'_>, line: &[u8]) -> Result<(), String> {
        let t = parse_time(&e.time).map_err(|e| e.to_string())?;
        let d = EventDetails::parse(line).map_err(|e| e.to_string())?;
        let mut properties = BTreeMap::from([
            ("driftEventId", d.id.to_string()),
            ("decision", e.decision.to_string()),
            ("mode", d.mode.to_string()),
            ("user", e.user.username.to_string()),
            ("operation", e.operation.to_string()),
            ("changed", e.changed()),
            ("requestUid", d.request_uid.to_string()),
        ]);
        if !e.resource.subresource.is_empty() {
            properties.insert("subresource", e.resource.subresource.to_string());
        }
        if e.dry_run {
            properties.insert("dryRun", "true".to_owned());
        }
        let result = ReportResult {
            source: "driftgate",
            policy: d.policy.to_string(),
            rule: d.rule.to_string(),
            category: "GitOps drift",
            result: report_result(&e.decision),
            scored: true,
            message: d.message.to_string(),
            timestamp: Timestamp { seconds: t.unix_timestamp(), nanos: i32::try_from(t.nanosecond()).unwrap_or(0) },
            resources: [ObjectReference {
                api_version: d.api_version(),
                kind: e.resource.kind.to_string(),
                namespace: e.resource.namespace.to_string(),
                name: e.resource.name.to_string(),
            }],
            properties,
        };
        let ns = match self.namespaces.get_mut(e.resource.namespace.as_ref()) {
            Some(ns) => ns,
            None => self.namespaces.entry(e.resource.namespace.to_string()).or_default(),
        };
        if self.max_results == 0 {
            ns.omitted += 1;
            return Ok(());
        }
        if ns.results.len() >= self.max_results {
            ns.results.pop_front();
            ns.omitted += 1;
        }
        ns.results.push_back(result);
        Ok(())
    }

    fn write(&self, out: &mut dyn Write) -> Result<(), ReviewError> {
        for (namespace, ns) in &self.namespaces {
            let mut summary = ReportSummary::default();
            for r in &ns.results {
                match r.result {
                    "fail" => summary.fail += 1,
                    _ => summary.warn += 1,
                }
            }
            let mut annotations = BTreeMap::new();
            if ns.omitted > 0 {
                annotations.insert("driftgate.dev/results-omitted", ns.omitted.to_string());
            }
            let report = PolicyReport {
                api_version: "wgpolicyk8s.io/v1alpha2",
                kind: if namespace.is_empty() { "ClusterPolicyReport" } else { "PolicyReport" },
                metadata: ReportMetadata {
                    name: "driftgate",
                    namespace: Some(namespace.as_str()).filter(|n| !n.is_empty()),
                    labels: BTreeMap::from([("app.kubernetes.io/managed-by", "driftgate")]),
                    annotations,
                },
                summary,
                results: &ns.results,
            };
            out.write_all(b"---\n")?;
            out.write_all(serde_yaml_ng::to_string(&report)?.as_bytes())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mk_line(user: &str, ns: &str, kind: &str, decision: &str, time: &str, dry_run: bool) -> String {
        serde_json::json!({
            "id": "01a20abf-33ea-752b-8746-03435d90d32d", "time": time, "decision": decision,
            "mode": "enforce", "policy": "mesh-gitops", "rule": "protected", "message": "driftgate: \"quoted\" — x",
            "operation": "UPDATE", "dryRun": dry_run,
            "user": {"username": user, "groups": ["devs"]},
            "resource": {"group": "networking.istio.io", "version": "v1", "kind": kind,
                         "resource": format!("{}s", kind.to_lowercase()), "namespace": ns, "name": "reviews"},
            "changes": [{"path": "/spec/a", "old": 1, "new": {"deep": [1, 2]}}, {"path": "/spec/b", "old": null, "new": 2},
                        {"path": "/spec/c", "old": 1, "new": 2}],
            "changesOmitted": 4,
            "requestUid": "u1"
        })
        .to_string()
    }

    fn mk_event(line: &str) -> EventView<'_> {
        EventView::parse(line.as_bytes()).unwrap()
    }

    fn mk_args(flags: &[&str]) -> ReviewArgs {
        #[derive(clap::Parser)]
        struct Wrap {
            #[command(flatten)]
            args: ReviewArgs,
        }
        let argv = std::iter::once("review").chain(flags.iter().copied());
        <Wrap as clap::Parser>::try_parse_from(argv).unwrap().args
    }

    fn at(s: &str) -> OffsetDateTime {
        OffsetDateTime::parse(s, &Rfc3339).unwrap()
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
        for (pattern, value, want) in cases {
            assert_eq!(Pattern(pattern.into()).matches(value), want, "{pattern} ~ {value}");
        }
        assert!(Pattern("virtualservice".into()).matches_ignore_case("VirtualService"));
        assert!(!Pattern("virtualservice".into()).matches("VirtualService"));
    }

    #[test]
    fn reads_the_fields_review_needs_from_a_journal_line() {
        let line = mk_line("alice", "shop", "VirtualService", "denied", "2026-11-23T23:30:32.554697358Z", false);
        let e = mk_event(&line);
        assert_eq!((e.user.username.as_ref(), e.decision.as_ref()), ("alice", "denied"));
        assert_eq!(e.changed_paths().listed, 3);
        assert_eq!(e.changed(), "/spec/a, /spec/b +5");
        assert_eq!((e.object_ref(), e.kind_label().as_ref()), ("shop/reviews".to_owned(), "VirtualService"));
        let d = EventDetails::parse(line.as_bytes()).unwrap();
        assert_eq!(d.message, "driftgate: \"quoted\" — x");
        assert!(matches!(d.message, Cow::Owned(_)), "escaped: unescaped into a copy");
        assert!(matches!(e.time, Cow::Borrowed(_)), "not escaped: borrowed");
        let user = "d\u{e9}j\u{e0} \"vu\"";
        let escaped = mk_line(user, "shop", "VirtualService", "denied", "2026-11-23T23:30:32Z", false);
        let e = mk_event(&escaped);
        assert_eq!(e.user.username, user, "{escaped}");
        assert!(matches!(e.user.username, Cow::Owned(_)), "escaped: unescaped into a copy");
        assert_eq!(
            (d.id.as_ref(), d.rule.as_ref(), d.request_uid.as_ref()),
            ("01a20abf-33ea-752b-8746-03435d90d32d", "protected", "u1")
        );
        assert_eq!(d.api_version(), "networking.istio.io/v1");
    }

    #[test]
    fn reads_a_real_drift_event() {
        let event = crate::event::DriftEvent {
            id: "i".into(),
            time: "2026-11-23T23:30:32Z".into(),
            decision: "break-glass".into(),
            mode: "enforce".into(),
            policy: "p".into(),
            rule: "r".into(),
            message: "m".into(),
            operation: "DELETE".into(),
            dry_run: true,
            user: crate::admission::UserInfo { username: "bob".into(), uid: None, groups: vec![] },
            resource: crate::event::ResourceRef {
                group: String::new(),
                version: "v1".into(),
                kind: "Scale".into(),
                resource: "deployments".into(),
                subresource: "scale".into(),
                namespace: String::new(),
                name: "web".into(),
            },
            gitops: None,
            changes: vec![crate::decide::Change {
                path: String::new(),
                old: "<object>".into(),
                new: serde_json::Value::Null,
            }],
            changes_omitted: 0,
            request_uid: "u".into(),
        };
        let line = event.to_line();
        let e = EventView::parse(line.trim_ascii_end()).unwrap();
        assert!(e.dry_run);
        assert_eq!((e.kind_label().as_ref(), e.object_ref()), ("deployments/scale", "web".to_owned()));
        assert_eq!(EventDetails::parse(&line).unwrap().api_version(), "v1");
        assert_eq!(e.changed(), "(whole object)");
    }

    #[test]
    fn refuses_lines_that_are_not_drift_events() {
        for bad in ["{}", "[]", "{\"time\":\"t\",\"decision\":\"denied\"", "not json", "{\"time\":1}"] {
            assert!(EventView::parse(bad.as_bytes()).is_err(), "{bad}");
        }
    }

    #[test]
    fn filters_on_every_flag() {
        let now = at("2026-11-23T12:00:00Z");
        let t = "2026-11-23T11:00:00Z";
        let alice = mk_line("alice@example.com", "shop", "VirtualService", "denied", t, false);
        let bob_dry = mk_line("bob", "payments", "Gateway", "warned", t, true);
        let old = mk_line("carol", "shop", "VirtualService", "audited", "2026-11-20T11:00:00Z", false)
            .replace("\"policy\":\"mesh-gitops\"", "\"policy\":\"team-routes\"");
        let cases: &[(&[&str], &[bool; 3])] = &[
            (&[], &[true, false, true]),
            (&["--dry-run"], &[true, true, true]),
            (&["--dry-run-only"], &[false, true, false]),
            (&["--dry-run", "--no-dry-run"], &[true, false, true]),
            (&["--dry-run", "--user", "bob"], &[false, true, false]),
            (&["--user", "*@example.com"], &[true, false, false]),
            (&["--namespace", "shop"], &[true, false, true]),
            (&["--kind", "virtualservices"], &[true, false, true]),
            (&["--kind", "gateway", "--dry-run"], &[false, true, false]),
            (&["--name", "rev*"], &[true, false, true]),
            (&["--name", "other"], &[false, false, false]),
            (&["--policy", "team-*"], &[false, false, true]),
            (&["--policy", "mesh-gitops", "--dry-run"], &[true, true, false]),
            (&["--decision", "denied,audited"], &[true, false, true]),
            (&["--decision", "audited", "--decision", "warned", "--dry-run"], &[false, true, true]),
            (&["--since", "24h"], &[true, false, false]),
            (&["--until", "24h"], &[false, false, true]),
            (&["--since", "2026-11-20", "--until", "2026-11-21"], &[false, false, true]),
            (&["--since", "2026-11-23T11:00:00Z"], &[true, false, false]),
            (&["--until", "2026-11-23T11:00:00Z"], &[false, false, true]),
        ];
        for (flags, want) in cases {
            let filter = Filter::from_args(&mk_args(flags), now);
            let got: Vec<bool> =
                [&alice, &bob_dry, &old].iter().map(|l| filter.matches(&mk_event(l)).unwrap()).collect();
            assert_eq!(&got, want, "{flags:?}");
        }
    }

    #[test]
    fn a_bad_time_is_an_error_only_when_filtering_on_time() {
        let line = mk_line("a", "shop", "VirtualService", "denied", "yesterday", false);
        assert_eq!(Filter::default().matches(&mk_event(&line)), Ok(true));
        let since = Filter { since: Some(OffsetDateTime::UNIX_EPOCH), ..Filter::default() };
        assert!(since.matches(&mk_event(&line)).is_err());
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
            assert_eq!(day_of(time).unwrap(), want, "{time}");
        }
        assert!(day_of("23/11/2026").is_err());
    }

    #[test]
    fn long_values_are_shortened_in_the_middle_so_columns_stay_aligned() {
        assert_eq!(fit("short".into(), 10), "short");
        let sa = "system:serviceaccount:progressive-delivery:argo-rollouts-controller-manager".to_owned();
        let fitted = fit(sa, 56);
        assert_eq!(fitted.chars().count(), 56);
        assert!(fitted.starts_with("system:serviceaccount:") && fitted.ends_with("controller-manager"), "{fitted}");
        let mut table = Table::new(false);
        let mut out = Vec::new();
        for user in ["alice@example.com", "system:serviceaccount:progressive-delivery:argo-rollouts-controller-manager"]
        {
            let line = mk_line(user, "shop", "VirtualService", "denied", "2026-11-24T00:12:02Z", false);
            table.push(&mk_event(&line), &mut out).unwrap();
        }
        table.flush(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let columns: Vec<usize> = text
            .lines()
            .map(|l| l[..l.find("UPDATE").or_else(|| l.find("OPERATION")).unwrap()].chars().count())
            .collect();
        assert!(columns.windows(2).all(|w| w[0] == w[1]), "misaligned:\n{text}");
    }

    #[test]
    fn maps_decisions_to_policy_report_results() {
        let cases = [
            ("denied", "fail"),
            ("warned", "warn"),
            ("audited", "warn"),
            ("repaired", "warn"),
            ("break-glass", "warn"),
        ];
        for (decision, want) in cases {
            assert_eq!(report_result(decision), want, "{decision}");
        }
    }

    fn mk_review(format: Format, lines: &[String]) -> (String, String, ScanStats) {
        let (mut out, mut notes) = (Vec::new(), Vec::new());
        let options = OutputOptions { format, top: 2, ..OutputOptions::default() };
        let mut reviewer = Reviewer::new(Filter::default(), options, &mut out, &mut notes);
        let text = lines.join("\n");
        reviewer.read_from(text.as_bytes(), Path::new("j"), "j").unwrap();
        let stats = reviewer.finish().unwrap();
        (String::from_utf8(out).unwrap(), String::from_utf8(notes).unwrap(), stats)
    }

    #[test]
    fn skips_unreadable_lines_with_a_note() {
        let good = mk_line("a", "shop", "VirtualService", "denied", "2026-11-23T11:00:00Z", false);
        let lines = [good.clone(), "garbage".to_owned(), good.clone(), good[..40].to_owned()];
        let (out, notes, stats) = mk_review(Format::Json, &lines);
        assert_eq!(out, format!("{good}\n{good}\n"));
        assert_eq!(stats, ScanStats { lines: 4, events: 2, matched: 2, skipped: 2 });
        let notes: Vec<&str> = notes.lines().collect();
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert!(notes[0].starts_with("skipped line 2 of j: not a drift event"), "{}", notes[0]);
        assert!(notes[1].starts_with("skipped line 4 of j: torn last line"), "{}", notes[1]);
    }

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
    }

    #[test]
    fn aligns_table_columns() {
        let t = "2026-11-23T11:00:00.123Z";
        let lines = [
            mk_line("alice@example.com", "shop", "VirtualService", "denied", t, false),
            mk_line("bob", "payments-long", "Gateway", "warned", t, false),
        ];
        let (out, _, _) = mk_review(Format::Table, &lines);
        let rows: Vec<&str> = out.lines().collect();
        assert_eq!(rows.len(), 3, "{out}");
        assert!(rows[0].starts_with("TIME"));
        assert!(rows[1].starts_with("2026-11-23T11:00:00Z  denied    alice@example.com  UPDATE"), "{out}");
        let column = |row: &str, text: &str| row.find(text).unwrap();
        assert_eq!(column(rows[0], "OBJECT"), column(rows[1], "shop/reviews"));
        assert_eq!(column(rows[1], "shop/reviews"), column(rows[2], "payments-long/reviews"));
        assert!(!out.contains('\x1b'), "no colour off a terminal");
    }
}
