//! Any body that parses as an AdmissionReview, decided by the validating and the mutating
//! paths under the shipped default policy and a repair-mode variant: no panic, and a repair
//! patch always applies to the request's object.
#![no_main]

use std::path::Path;
use std::sync::LazyLock;

use driftgate::decide::mutate;
use driftgate::policy::{PolicySet, load_str};
use libfuzzer_sys::fuzz_target;

const DEFAULT: &str = include_str!("../../policies/default.yaml");

static SETS: LazyLock<Vec<PolicySet>> = LazyLock::new(|| {
    [DEFAULT.to_owned(), DEFAULT.replace("mode: enforce", "mode: repair").replace("groups: [driftgate:break-glass]", "groups: [driftgate:break-glass]\n    annotation: true")]
        .iter()
        .map(|y| PolicySet::new(load_str(Path::new("fuzz.yaml"), y).unwrap_or_default(), &["driftgate".to_owned()]))
        .collect()
});

fuzz_target!(|data: &[u8]| {
    let Ok(review) = driftgate::admission::parse(data) else { return };
    for set in SETS.iter() {
        if let Ok(verdict) = driftgate::decide(set, &review.request) {
            let _ = verdict.message(&review.request.user_info, "fuzz");
        }
        if let Ok(m) = mutate::mutate(set, &review.request) {
            if !m.patch.0.is_empty() {
                let mut object: serde_json::Value =
                    review.request.object.and_then(|r| serde_json::from_str(r.get()).ok()).unwrap_or_default();
                assert!(json_patch::patch(&mut object, &m.patch).is_ok(), "a returned patch does not apply");
            }
        }
    }
});
