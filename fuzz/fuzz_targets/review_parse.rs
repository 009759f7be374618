//! Any bytes as an AdmissionReview body: parsing must answer Ok or Err, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(review) = driftgate::admission::parse(data) {
        let _ = review.request.uid.len();
    }
});
