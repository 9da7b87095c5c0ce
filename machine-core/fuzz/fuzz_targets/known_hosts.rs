//! A machine's pin file: any text gives entries whose patterns and keys are
//! single words without line breaks.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    for (pattern, key) in machine_core::ssh::known_hosts::parse(text) {
        assert!(!pattern.contains('\n') && !key.contains('\n'));
        assert!(!key.is_empty());
    }
});
