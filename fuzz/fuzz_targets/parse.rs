//! Fuzzes the lenient edXML parser, and checks that whatever parses also writes and reads
//! back the same, that the stream reader reads what the parser reads, and that signature
//! verification and the summary never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let check = lienthong_edxml::verify_signature(data);
    let parsed = lienthong_edxml::parse(data);
    let streamed = lienthong_edxml::parse_stream(data, || Ok(Vec::new()));
    match (&parsed, streamed) {
        (Ok(message), Ok(s)) => {
            let mut again = s.message;
            if let lienthong_edxml::Message::Document(d) = &mut again {
                for (a, content) in d.attachments.iter_mut().zip(s.contents) {
                    a.set_content(content.unwrap_or_default());
                }
            }
            assert_eq!(&again, message, "parse_stream read another message");
        }
        // parse checks the whole input is UTF-8 first, parse_stream as it reads: it gives
        // an earlier error, or none when the invalid bytes follow the root.
        (Err(e), _) if e.reason.contains("not valid UTF-8") => {}
        (Err(e), Err(f)) => assert_eq!(e, &f, "parse_stream failed elsewhere"),
        // A status message with attachment content is kept by parse, refused streamed.
        (Ok(lienthong_edxml::Message::Status(_)), Err(_)) => {}
        (p, s) => panic!("parse gave {p:?}, parse_stream {s:?}"),
    }
    if let Ok(message) = parsed {
        let _ = lienthong_edxml::summary(&message, &check);
        let out = lienthong_edxml::write(&message).expect("a parsed message writes");
        let again = lienthong_edxml::parse_written(&out).expect("written edXML parses");
        assert_eq!(again, message);
    }
});
