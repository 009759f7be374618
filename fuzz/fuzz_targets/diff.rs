//! Two JSON documents (split at the first NUL byte): the change report never panics, and the
//! diff it is built from turns the first into the second.
#![no_main]

use driftgate::decide::changes::{self, Changes};
use driftgate::admission::Operation;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Some(split) = data.iter().position(|b| *b == 0) else { return };
    let (Ok(mut old), Ok(mut new)) =
        (serde_json::from_slice::<Value>(&data[..split]), serde_json::from_slice::<Value>(&data[split + 1..]))
    else {
        return;
    };
    changes::normalise(&mut old);
    changes::normalise(&mut new);
    let all = changes::changes(Operation::Update, None, Some(&old), Some(&new));
    let capped = Changes::cap(&all);
    assert_eq!(capped.total(), all.len());
    let ops: Vec<_> = changes::diff_ops(&old, &new).into_iter().map(|(_, op)| op).collect();
    let mut patched = old.clone();
    assert!(json_patch::patch(&mut patched, &ops).is_ok());
    assert_eq!(patched, new);
});
