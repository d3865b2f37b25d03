//! The parser never panics, and the stream reader reads what it reads: a few thousand
//! deterministic pseudo-random mutations of the fixtures (the stable-toolchain stand-in
//! for the cargo-fuzz target in `fuzz/`).

use lienthong_edxml::{
    Message, parse, parse_stream, parse_written, summary, verify_signature, write,
};

const FIXTURES: [&str; 7] = [
    "edoc_new.edxml",
    "edoc_revoke.edxml",
    "edoc_update.edxml",
    "edoc_replace.edxml",
    "edoc_signed_sha1.edxml",
    "status_02.edxml",
    "status_13.edxml",
];

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const TOKENS: [&[u8]; 12] = [
    b"<",
    b">",
    b"</",
    b"/>",
    b"&",
    b"&#x0;",
    b"&amp;",
    b"\"",
    b"<!--",
    b"]]>",
    b"xmlns:edXML=\"\"",
    b"\xff",
];

fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut v = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(v.len());
        match rng.below(6) {
            0 => v[at] = rng.next() as u8,
            1 => {
                let end = (at + rng.below(64)).min(v.len());
                v.drain(at..end);
            }
            2 => {
                let t = TOKENS[rng.below(TOKENS.len())];
                v.splice(at..at, t.iter().copied());
            }
            3 => v.truncate(at),
            4 => {
                // Duplicate a slice elsewhere (repeated elements, crossed tags).
                let end = (at + rng.below(200)).min(v.len());
                let piece = v[at..end].to_vec();
                let to = rng.below(v.len());
                v.splice(to..to, piece);
            }
            _ => {
                let ascii = b'!' + (rng.next() % 94) as u8;
                v.insert(at, ascii);
            }
        }
    }
    v
}

const NOT_UTF8: &str = "not valid UTF-8";

/// The stream reader reads what the parser reads: the same message (contents from its
/// spools) or the same error; except that a status with attachment content is refused
/// streamed (kept by `parse`), and that `parse` checks the whole input is UTF-8 first
/// while the stream reader checks as it reads (so it gives an earlier error, or none when
/// the invalid bytes come after the root).
fn same_streamed(input: &[u8], parsed: &Result<Message, lienthong_edxml::ParseError>, name: &str) {
    // Small reads, so that pieces end anywhere.
    let streamed = parse_stream(std::io::BufReader::with_capacity(3, input), || {
        Ok(Vec::new())
    });
    match (parsed, streamed) {
        (Ok(m), Ok(s)) => {
            let mut again = s.message;
            if let Message::Document(d) = &mut again {
                for (a, content) in d.attachments.iter_mut().zip(s.contents) {
                    a.set_content(content.unwrap_or_default());
                }
            }
            assert_eq!(&again, m, "{name}");
        }
        (Err(e), Err(f)) if e.reason.contains(NOT_UTF8) && !f.reason.contains(NOT_UTF8) => {}
        (Err(e), Err(f)) => assert_eq!(e, &f, "{name}"),
        (Ok(Message::Status(_)), Err(f)) => {
            assert!(
                f.reason.contains("status message carries no attachment"),
                "{f}"
            )
        }
        // Invalid bytes after the root element are not read by the stream reader.
        (Err(e), Ok(_)) if e.reason.contains(NOT_UTF8) => {}
        (p, s) => panic!("{name}: parse gave {p:?}, parse_stream {s:?}"),
    }
}

#[test]
fn mutated_fixtures_never_panic_the_parser() {
    let mut rng = Rng(0x5eed_1e57_ed0c_0001);
    let mut parsed = 0;
    for name in FIXTURES {
        let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        let original = std::fs::read(&path).unwrap();
        for _ in 0..500 {
            let input = mutate(&mut rng, &original);
            let sig = verify_signature(&input);
            let result = parse(&input);
            same_streamed(&input, &result, name);
            if let Ok(m) = result {
                parsed += 1;
                let _ = summary(&m, &sig);
                // What parses also writes, and reads back the same.
                let out = write(&m).unwrap();
                assert_eq!(parse_written(&out).unwrap(), m, "{name}");
                let _ = match &m {
                    Message::Document(d) => d.to_core_lenient(0).map(drop),
                    Message::Status(s) => s.to_core(0).map(drop),
                };
            }
        }
    }
    // The mutations are small enough that many inputs still parse.
    assert!(parsed > 100, "only {parsed} mutated inputs parsed");
}
