//! What a driver plugin (or a host) sends: any bytes decode to values or to
//! an error, never a panic or a hang; an interface value that decodes
//! encodes again to the same value.
#![no_main]
use libfuzzer_sys::fuzz_target;
use machine_drivers::plugin::gob::{Decoder, Encoder, Type, Value};

fuzz_target!(|data: &[u8]| {
    let Ok(values) = Decoder::new().decode_all(data) else { return };
    for v in values {
        if let Value::Interface(Some(_)) = &v {
            let Ok(bytes) = Encoder::new().encode(&Type::Interface, &v) else { continue };
            let again = Decoder::new().decode_all(&bytes).expect("re-encoded value decodes");
            assert_eq!(again, vec![v]);
        }
    }
});
