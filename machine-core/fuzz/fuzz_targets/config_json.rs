//! config.json loading and migration (versions 0-3): any bytes give a config
//! or an error; a config that loads encodes and loads again to the same.
#![no_main]
use libfuzzer_sys::fuzz_target;
use machine_core::store::decode_config;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let root = Path::new("/s");
    let path = Path::new("/s/machines/m/config.json");
    if let Ok((config, _)) = decode_config(data, "m", path, root) {
        let bytes = config.to_json().expect("a loaded config encodes");
        let (again, version) = decode_config(&bytes, "m", path, root).expect("and loads again");
        assert_eq!(version, machine_core::config::CONFIG_VERSION);
        assert_eq!(again.to_json().expect("encodes"), bytes);
    }
});
