//! What to exempt: drift events grouped by policy and writer, narrowed to what each automated
//! writer actually did. PURE: events in, proposals out.
//!
//! Only service accounts and the control plane's own controllers are ever proposed; a person
//! (any other username) never is, whatever the count: their events are listed as "would be
//! refused". Groups are never proposed either (people belong to groups).

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use time::OffsetDateTime;

use crate::admission::Operation;
use crate::event::{Decision, DriftEvent};

/// The control plane's controllers that may be exempted by name.
const CONTROLLERS: &[&str] = &["system:kube-controller-manager", "system:kube-scheduler", "system:apiserver"];
/// More distinct paths than this are summed up by their common prefix.
const MAX_PATHS: usize = 8;

/// Who wrote.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Writer {
    /// `system:serviceaccount:<namespace>:<name>`.
    ServiceAccount {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
    /// One of the control plane's controllers (`system:kube-controller-manager`).
    Controller {
        /// The username.
        username: String,
    },
    /// Anyone else: never exempted.
    Person {
        /// The username.
        username: String,
    },
}

impl Writer {
    /// The writer of `username`.
    pub fn of(username: &str) -> Writer {
        if let Some(rest) = username.strip_prefix("system:serviceaccount:")
            && let Some((namespace, name)) = rest.split_once(':')
            && !namespace.is_empty()
            && !name.is_empty()
            && !name.contains(':')
        {
            return Writer::ServiceAccount { namespace: namespace.to_owned(), name: name.to_owned() };
        }
        if CONTROLLERS.contains(&username) {
            return Writer::Controller { username: username.to_owned() };
        }
        Writer::Person { username: username.to_owned() }
    }

    /// The username.
    pub fn username(&self) -> String {
        match self {
            Writer::ServiceAccount { namespace, name } => format!("system:serviceaccount:{namespace}:{name}"),
            Writer::Controller { username } | Writer::Person { username } => username.clone(),
        }
    }

    /// A name for its exemption: `suggested-<name>`, in `[a-z0-9-]`.
    pub fn exemption_name(&self) -> String {
        let base = match self {
            Writer::ServiceAccount { name, .. } => name.as_str(),
            Writer::Controller { username } | Writer::Person { username } => {
                username.strip_prefix("system:").unwrap_or(username)
            }
        };
        let clean: String =
            base.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect();
        format!("suggested-{}", clean.trim_matches('-'))
    }
}

/// An exemption to add to a policy.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Proposal {
    /// The policy it goes into.
    pub policy: String,
    /// The exemption's name.
    pub name: String,
    /// Who it lets through.
    pub writer: Writer,
    /// The operations it did.
    pub operations: BTreeSet<Operation>,
    /// The subresources it wrote (empty: only the object itself was written).
    pub subresources: BTreeSet<String>,
    /// The JSON-pointer patterns of what its UPDATEs changed (array indices as `*`).
    pub paths: BTreeSet<String>,
    /// How many drift events.
    pub count: u64,
    /// The first one's time.
    #[serde(with = "time::serde::rfc3339")]
    pub first: OffsetDateTime,
    /// The last one's time.
    #[serde(with = "time::serde::rfc3339")]
    pub last: OffsetDateTime,
    /// Its newest event, for the test case.
    #[serde(skip)]
    pub sample: DriftEvent<'static>,
}

/// A writer that would stay refused.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Refused {
    /// The policy.
    pub policy: String,
    /// The username.
    pub username: String,
    /// Why it is not proposed.
    pub why: &'static str,
    /// How many drift events.
    pub count: u64,
    /// The first one's time.
    #[serde(with = "time::serde::rfc3339")]
    pub first: OffsetDateTime,
    /// The last one's time.
    #[serde(with = "time::serde::rfc3339")]
    pub last: OffsetDateTime,
}

/// Everything `suggest` concludes.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Suggestions {
    /// Exemptions to add.
    pub proposals: Vec<Proposal>,
    /// Writers that would be refused once enforced.
    pub refused: Vec<Refused>,
}

#[derive(Debug)]
struct Group {
    operations: BTreeSet<Operation>,
    subresources: BTreeSet<String>,
    paths: BTreeSet<String>,
    count: u64,
    first: OffsetDateTime,
    last: OffsetDateTime,
    sample: DriftEvent<'static>,
}

/// Groups `events` by policy and writer and proposes an exemption for each automated writer
/// seen at least `min_count` times. Break-glass and repaired events are not drift to carve out.
pub fn propose(events: &[DriftEvent<'_>], min_count: u64) -> Suggestions {
    let mut groups: BTreeMap<(String, Writer), Group> = BTreeMap::new();
    for e in events {
        if !matches!(e.decision, Decision::Denied | Decision::Warned | Decision::Audited) {
            continue;
        }
        let n = e.count();
        let key = (e.policy.to_string(), Writer::of(&e.user.username));
        let group = groups.entry(key).or_insert_with(|| Group {
            operations: BTreeSet::new(),
            subresources: BTreeSet::new(),
            paths: BTreeSet::new(),
            count: 0,
            first: e.time,
            last: e.time,
            sample: e.clone().into_owned(),
        });
        group.operations.insert(e.operation);
        if !e.resource.subresource.is_empty() {
            group.subresources.insert(e.resource.subresource.to_string());
        }
        if e.operation == Operation::Update {
            group.paths.extend(e.changes.iter().filter(|c| !c.path.is_empty()).map(|c| generalise(&c.path)));
        }
        group.count += n;
        group.first = group.first.min(e.time);
        if e.time >= group.last {
            group.last = e.time;
            group.sample = e.clone().into_owned();
        }
    }
    let mut out = Suggestions::default();
    for ((policy, writer), g) in groups {
        let why = match &writer {
            Writer::Person { .. } => Some("a person: never exempted"),
            _ if g.count < min_count => Some("seen fewer times than --min-count"),
            _ => None,
        };
        if let Some(why) = why {
            out.refused.push(Refused {
                policy,
                username: writer.username(),
                why,
                count: g.count,
                first: g.first,
                last: g.last,
            });
            continue;
        }
        out.proposals.push(Proposal {
            name: writer.exemption_name(),
            policy,
            writer,
            operations: g.operations,
            subresources: g.subresources,
            paths: narrow(g.paths),
            count: g.count,
            first: g.first,
            last: g.last,
            sample: g.sample,
        });
    }
    out
}

/// A changed path with its array indices as `*`: `/spec/http/1/route/0/weight` →
/// `/spec/http/*/route/*/weight`.
pub fn generalise(path: &str) -> String {
    path.split('/')
        .map(|seg| if !seg.is_empty() && seg.bytes().all(|b| b.is_ascii_digit()) { "*" } else { seg })
        .collect::<Vec<_>>()
        .join("/")
}

/// At most [`MAX_PATHS`] patterns: beyond, they are cut to their first segments, as few as
/// needed (`/spec/http`, then `/spec`), which still covers every change seen.
fn narrow(paths: BTreeSet<String>) -> BTreeSet<String> {
    let deepest = paths.iter().map(|p| p.split('/').count()).max().unwrap_or(0);
    let mut out = paths;
    for segments in (2..deepest).rev() {
        if out.len() <= MAX_PATHS {
            break;
        }
        out = out.iter().map(|p| p.split('/').take(segments).collect::<Vec<_>>().join("/")).collect();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(user: &str, decision: &str, op: &str, sub: &str, paths: &[&str], time: &str) -> DriftEvent<'static> {
        let changes: Vec<String> = paths.iter().map(|p| format!(r#"{{"path":"{p}","old":1,"new":2}}"#)).collect();
        let line = format!(
            r#"{{"id":"e","time":"{time}","decision":"{decision}","mode":"audit","policy":"mesh-gitops","rule":"protected","message":"m","operation":"{op}","dryRun":false,"user":{{"username":"{user}","groups":["system:authenticated"]}},"resource":{{"group":"networking.istio.io","version":"v1","kind":"VirtualService","resource":"virtualservices","subresource":"{sub}","namespace":"shop","name":"reviews"}},"changes":[{}],"requestUid":"u"}}"#,
            changes.join(",")
        );
        DriftEvent::parse(line.as_bytes()).unwrap().into_owned()
    }

    const T: &str = "2026-11-23T11:00:00Z";

    #[test]
    fn a_scaler_writing_replicas_500_times_gets_one_narrowed_exemption() {
        let hpa = "system:serviceaccount:kube-system:horizontal-pod-autoscaler";
        let events: Vec<_> =
            (0..500).map(|_| event(hpa, "audited", "UPDATE", "scale", &["/spec/replicas"], T)).collect();
        let s = propose(&events, 3);
        assert_eq!(s.proposals.len(), 1);
        let p = &s.proposals[0];
        assert_eq!(p.name, "suggested-horizontal-pod-autoscaler");
        assert_eq!(
            p.writer,
            Writer::ServiceAccount { namespace: "kube-system".into(), name: "horizontal-pod-autoscaler".into() }
        );
        assert_eq!(p.count, 500);
        assert_eq!(p.operations, [Operation::Update].into());
        assert_eq!(p.subresources, ["scale".to_owned()].into());
        assert_eq!(p.paths, ["/spec/replicas".to_owned()].into());
        assert!(s.refused.is_empty());
    }

    #[test]
    fn a_persons_repeated_edits_are_never_exempted() {
        let events: Vec<_> = (0..50)
            .flat_map(|_| {
                [
                    event("alice@example.com", "denied", "UPDATE", "", &["/spec/hosts/0"], T),
                    event("system:admin", "audited", "DELETE", "", &[""], T),
                    event("system:node:worker-1", "audited", "UPDATE", "", &["/spec"], T),
                ]
            })
            .collect();
        let s = propose(&events, 1);
        assert!(s.proposals.is_empty(), "{:?}", s.proposals);
        let users: Vec<&str> = s.refused.iter().map(|r| r.username.as_str()).collect();
        assert_eq!(users, ["alice@example.com", "system:admin", "system:node:worker-1"]);
        assert!(s.refused.iter().all(|r| r.count == 50 && r.why.contains("person")));
    }

    #[test]
    fn a_weight_shifting_controller_over_many_routes_gets_one_generalised_path() {
        let rollouts = "system:serviceaccount:argo-rollouts:argo-rollouts";
        let mut events = Vec::new();
        for i in 0..4 {
            let a = format!("/spec/http/{i}/route/0/weight");
            let b = format!("/spec/http/{i}/route/1/weight");
            events.push(event(rollouts, "warned", "UPDATE", "", &[&a, &b], &format!("2026-11-2{}T11:00:00Z", i + 1)));
        }
        events.push(event(rollouts, "warned", "UPDATE", "", &["/spec/http/2/route/1/weight"], "2026-11-20T11:00:00Z"));
        let s = propose(&events, 3);
        assert_eq!(s.proposals.len(), 1);
        let p = &s.proposals[0];
        assert_eq!(p.paths, ["/spec/http/*/route/*/weight".to_owned()].into());
        assert!(p.subresources.is_empty());
        assert_eq!(p.count, 5);
        assert_eq!(p.first.to_string(), "2026-11-20 11:00:00.0 +00:00:00");
        assert_eq!(p.last.to_string(), "2026-11-24 11:00:00.0 +00:00:00");
        assert_eq!(p.sample.time, p.last, "the newest event is the sample");
    }

    #[test]
    fn rare_writers_and_break_glass_are_not_proposed() {
        let sa = "system:serviceaccount:tools:janitor";
        let events = vec![
            event(sa, "audited", "DELETE", "", &[""], T),
            event("bob", "break-glass", "UPDATE", "", &["/spec"], T),
        ];
        let s = propose(&events, 3);
        assert!(s.proposals.is_empty());
        assert_eq!(s.refused.len(), 1);
        assert_eq!(s.refused[0].why, "seen fewer times than --min-count");
        assert_eq!(generalise("/spec/http/12/match/0/headers/x-1"), "/spec/http/*/match/*/headers/x-1");
        let many: BTreeSet<String> = (0..20).map(|i| format!("/spec/f{i}/x")).collect();
        assert_eq!(narrow(many), ["/spec".to_owned()].into(), "summed up by their first segments");
    }
}
