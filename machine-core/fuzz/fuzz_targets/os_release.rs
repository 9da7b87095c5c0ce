//! `/etc/os-release` text from a machine: any text parses.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let r = machine_core::provision::os_release::OsRelease::parse(text);
    let _ = r.display_name();
});
