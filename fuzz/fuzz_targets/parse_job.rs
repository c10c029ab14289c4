//! Feeds arbitrary bytes to the job file parser in all three formats.
//!
//! Checks that parsing never panics and, for every input that parses, that the job renders in
//! each format and parses back to the same job.

#![no_main]

use libfuzzer_sys::fuzz_target;
use orkestrator_core::spec::{Format, parse_job};

const FORMATS: [Format; 3] = [Format::Yaml, Format::Toml, Format::Json];

fuzz_target!(|data: &[u8]| {
    // Job files are text: the loader rejects bytes that are not UTF-8 before parsing.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for format in FORMATS {
        let Ok(job) = parse_job(text, format) else {
            continue;
        };
        for out in FORMATS {
            let rendered = out
                .render(&job)
                .unwrap_or_else(|e| panic!("a valid job must render as {out}: {e}\n{job:?}"));
            let back = parse_job(&rendered, out).unwrap_or_else(|e| {
                panic!("a rendered job must parse back as {out}: {e}\n--- rendered:\n{rendered}")
            });
            assert_eq!(back, job, "{format} -> {out} round trip changed the job:\n{rendered}");
        }
    }
});
