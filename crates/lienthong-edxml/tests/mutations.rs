//! The parser never panics: a few thousand deterministic pseudo-random mutations of the
//! fixtures (the stable-toolchain stand-in for the cargo-fuzz target in `fuzz/`).

use lienthong_edxml::{Message, parse, summary, verify_signature, write};

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
            if let Ok(m) = parse(&input) {
                parsed += 1;
                let _ = summary(&m, &sig);
                // What parses also writes, and reads back the same.
                let out = write(&m).unwrap();
                assert_eq!(parse(&out).unwrap(), m, "{name}");
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
