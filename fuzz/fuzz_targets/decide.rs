//! Any body that parses as an AdmissionReview, answered by the validating and the mutating
//! webhooks (the core's one entry point, `admit`) under the shipped default policy and a
//! repair-mode variant with provenance: no panic, and a returned patch always applies to the
//! request's object.
#![no_main]

use std::path::Path;
use std::sync::LazyLock;

use base64::Engine as _;
use driftgate::decide::{Endpoint, EventStamp};
use driftgate::policy::{PolicySet, load_str};
use libfuzzer_sys::fuzz_target;

const DEFAULT: &str = include_str!("../../policies/default.yaml");

static SETS: LazyLock<Vec<PolicySet>> = LazyLock::new(|| {
    [
        DEFAULT.to_owned(),
        DEFAULT.replace("mode: enforce", "mode: repair").replace(
            "groups: [driftgate:break-glass]",
            "groups: [driftgate:break-glass]\n    annotation: true\n  provenance: true",
        ),
    ]
    .iter()
    .map(|y| PolicySet::new(load_str(Path::new("fuzz.yaml"), y).unwrap_or_default(), &["driftgate".to_owned()]))
    .collect()
});

fuzz_target!(|data: &[u8]| {
    let Ok(review) = driftgate::admission::parse(data) else { return };
    let stamp = EventStamp { id: "fuzz".to_owned(), time: time::OffsetDateTime::UNIX_EPOCH, trace_id: None };
    for set in SETS.iter() {
        let _ = driftgate::admit(set, &driftgate::decide::Grants::none(), &review.request, Endpoint::validate(None), &stamp);
        if let Ok(outcome) = driftgate::admit(set, &driftgate::decide::Grants::none(), &review.request, Endpoint::mutate(None), &stamp)
            && let Some(patch) = &outcome.answer.patch
        {
            let bytes = base64::engine::general_purpose::STANDARD.decode(patch).expect("a base64 patch");
            let patch: json_patch::Patch = serde_json::from_slice(&bytes).expect("a JSONPatch");
            let mut object: serde_json::Value =
                review.request.object.and_then(|r| serde_json::from_str(r.get()).ok()).unwrap_or_default();
            assert!(json_patch::patch(&mut object, &patch).is_ok(), "a returned patch does not apply");
        }
    }
});
