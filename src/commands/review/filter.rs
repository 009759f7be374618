//! Which events review shows: every flag given must match, a repeated flag matches any of its
//! values. Pure: an event in, yes or no out.

use time::OffsetDateTime;

use super::args::{DecisionArg, DryRun, Pattern, ReviewArgs};
use crate::event::DriftEvent;

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
    /// Only events whose caller had these addresses.
    pub sources: Vec<Pattern>,
    /// Only events whose caller was (`Some(true)`) or was not authenticated.
    pub authenticated: Option<bool>,
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
            sources: args.source.clone(),
            authenticated: match (args.authenticated, args.unauthenticated) {
                (true, _) => Some(true),
                (_, true) => Some(false),
                _ => None,
            },
        }
    }

    /// Whether `event` is shown.
    pub fn matches(&self, event: &DriftEvent<'_>) -> bool {
        let dry_run = match self.dry_run {
            DryRun::Exclude => !event.dry_run,
            DryRun::Include => true,
            DryRun::Only => event.dry_run,
        };
        let r = &event.resource;
        let any = |list: &[Pattern], value: &str| list.is_empty() || list.iter().any(|p| p.matches(value));
        dry_run
            && (self.decisions.is_empty() || self.decisions.iter().any(|d| d.decision() == event.decision))
            && any(&self.users, &event.user.username)
            && any(&self.namespaces, &r.namespace)
            && any(&self.names, &r.name)
            && any(&self.policies, &event.policy)
            && (self.kinds.is_empty()
                || self.kinds.iter().any(|p| p.matches_ignore_case(&r.kind) || p.matches_ignore_case(&r.resource)))
            && any(&self.sources, &event.source.address)
            && self.authenticated.is_none_or(|a| event.source.authenticated == a)
            && self.since.is_none_or(|s| event.time >= s)
            && self.until.is_none_or(|u| event.time < u)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{at, mk_args, mk_event, mk_line};
    use super::*;

    #[test]
    fn filters_on_every_flag() {
        let now = at("2026-11-23T12:00:00Z");
        let t = "2026-11-23T11:00:00Z";
        let alice = mk_line("alice@example.com", "shop", "VirtualService", "denied", t, false).replace(
            r#""requestUid""#,
            r#""source":{"address":"10.0.0.1","authenticated":true,"certificate":"CN=kube-apiserver"},"requestUid""#,
        );
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
            (&["--source", "10.0.0.*", "--dry-run"], &[true, false, false]),
            (&["--authenticated", "--dry-run"], &[true, false, false]),
            (&["--unauthenticated", "--dry-run"], &[false, true, true]),
        ];
        for (flags, want) in cases {
            let filter = Filter::from_args(&mk_args(flags), now);
            let got: Vec<bool> = [&alice, &bob_dry, &old].iter().map(|l| filter.matches(&mk_event(l))).collect();
            assert_eq!(&got, want, "{flags:?}");
        }
    }
}
