//! An import archive: any bytes are refused or read without panicking, and
//! what is read only has known entry names within the size bound.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // no passphrase: an encrypted input stops at its header (scrypt is
    // deliberately slow, and age is not what is fuzzed here)
    if let Ok((_, entries)) = machine_core::archive::read(data, None) {
        for (name, bytes) in &entries {
            assert!(machine_core::archive::ENTRIES.contains(&name.as_str()));
            assert!(bytes.len() as u64 <= machine_core::archive::MAX_ENTRY);
        }
    }
});
