//! Fuzzes the lenient edXML parser, and checks that whatever parses also writes and reads
//! back the same, and that signature verification and the summary never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let check = lienthong_edxml::verify_signature(data);
    if let Ok(message) = lienthong_edxml::parse(data) {
        let _ = lienthong_edxml::summary(&message, &check);
        let out = lienthong_edxml::write(&message).expect("a parsed message writes");
        let again = lienthong_edxml::parse_written(&out).expect("written edXML parses");
        assert_eq!(again, message);
    }
});
