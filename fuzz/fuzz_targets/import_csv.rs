//! The households import file, as uploaded: any bytes must parse into rows or per-line errors.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let _ = jiaxin_identity::fuzzing::import_csv(bytes);
});
