//! `parse_stream` reads what `parse` reads, the same way: the same message (attachment
//! contents coming out of the spools instead of the model), the same errors at the same
//! lines and columns, whatever the pieces the input arrives in.

use std::io::Read;

use lienthong_edxml::{Message, ParseError, StreamedMessage, parse, parse_stream};

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A reader that hands out at most `step` bytes a call, so that every split of the input
/// (inside a tag, a character, an entity, the base64 text) happens somewhere.
struct Trickle<'a> {
    data: &'a [u8],
    step: usize,
}

impl Read for Trickle<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let n = self.step.min(out.len()).min(self.data.len());
        out[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

fn streamed(input: &[u8], step: usize) -> Result<StreamedMessage<Vec<u8>>, ParseError> {
    parse_stream(Trickle { data: input, step }, || Ok(Vec::new()))
}

/// The streamed message with its spooled contents put back into the model.
fn with_contents(s: StreamedMessage<Vec<u8>>) -> Message {
    let mut message = s.message;
    if let Message::Document(d) = &mut message {
        assert_eq!(d.attachments.len(), s.contents.len());
        for (a, content) in d.attachments.iter_mut().zip(s.contents) {
            let content = content.unwrap_or_default();
            let (size, sha256) = (a.size, a.sha256);
            a.set_content(content);
            assert_eq!((a.size, a.sha256), (size, sha256), "{}", a.name);
        }
    } else {
        assert!(s.contents.is_empty());
    }
    message
}

fn assert_same(input: &[u8]) {
    let expected = parse(input);
    for step in [1, 7, 4096, 1 << 20] {
        match (&expected, streamed(input, step)) {
            (Ok(m), Ok(s)) => {
                let got = with_contents(s);
                assert_eq!(&got, m, "step {step}");
                assert_eq!(got.extras().len(), m.extras().len());
                let lines = |m: &Message| match m {
                    Message::Document(d) => d.lines.clone(),
                    Message::Status(s) => s.lines.clone(),
                };
                assert_eq!(format!("{:?}", lines(&got)), format!("{:?}", lines(m)));
            }
            (Err(e), Err(f)) => assert_eq!(&f, e, "step {step}"),
            (e, f) => panic!("step {step}: parse gave {e:?}, parse_stream {f:?}"),
        }
    }
}

#[test]
fn reads_every_fixture_as_parse_does() {
    for name in [
        "edoc_new.edxml",
        "edoc_revoke.edxml",
        "edoc_update.edxml",
        "edoc_replace.edxml",
        "edoc_signed_sha1.edxml",
        "edoc_signed_sha256.edxml",
        "status_02.edxml",
        "status_13.edxml",
        "broken_truncated.edxml",
    ] {
        assert_same(&fixture(name));
    }
}

#[test]
fn gives_the_errors_parse_gives_at_the_same_place() {
    let new = String::from_utf8(fixture("edoc_new.edxml")).unwrap();
    let start = new.find("QCVN_102_2016\">UEs").unwrap() + "QCVN_102_2016\">".len();
    let not_base64 = format!("{}$${}", &new[..start], &new[start..]);
    let cases: Vec<Vec<u8>> = vec![
        b"<?xml version=\"1.0\"?>\n<edXML>\n  <a>\n  </b>\n</edXML>".to_vec(),
        b"<edXML>\n<x>&nbsp;</x></edXML>".to_vec(),
        b"<?xml version=\"1.0\"?>\n\n<html/>".to_vec(),
        b"<edXML>\n<edXMLEnvelope>\n<edXMLHeader>".to_vec(),
        b"<edXML>\n\n<a>\xff</a></edXML>".to_vec(),
        "<edXML>\n\n<a>ế\u{20}x=\"1\"<b c='ế'".as_bytes().to_vec(),
        b"".to_vec(),
        b"  \n\t ".to_vec(),
        b"\xef\xbb\xbf\x00 stray <?xml version=\"1.0\"?><edXML/>".to_vec(),
        not_base64.into_bytes(),
        [
            &new.as_bytes()[..start + 10],
            b"\xff",
            &new.as_bytes()[start + 10..],
        ]
        .concat(),
        new.replacen(
            "<edXML:Subject>",
            &format!("{}<edXML:Subject>", "<X>".repeat(300)),
            1,
        )
        .into_bytes(),
        // Cut inside the attachment's base64 and inside a multi-byte character.
        new.as_bytes()[..start + 100].to_vec(),
        new.as_bytes()[..new.find("thử").unwrap() + 3].to_vec(),
    ];
    for input in cases {
        assert_same(&input);
    }
}

#[test]
fn decodes_attachments_with_whitespace_references_and_comments_inside() {
    let new = String::from_utf8(fixture("edoc_new.edxml")).unwrap();
    let start = new.find("QCVN_102_2016\">UEs").unwrap() + "QCVN_102_2016\">".len();
    let end = start + new[start..].find('<').unwrap();
    let b64 = &new[start..end];
    // The same base64, broken by a line end written as a reference, a comment and CDATA.
    let (a, b) = b64.split_at(b64.len() / 2);
    let (b, c) = b.split_at(b.len() / 2);
    let odd = format!(
        "{}{a}&#10;\r\n  <!-- split -->{}<![CDATA[{c}]]>{}",
        &new[..start],
        b,
        &new[end..]
    );
    assert_same(odd.as_bytes());
    let Message::Document(d) = with_contents(streamed(odd.as_bytes(), 5).unwrap()) else {
        panic!("a document")
    };
    let Message::Document(original) = parse(&fixture("edoc_new.edxml")).unwrap() else {
        panic!("a document")
    };
    assert_eq!(d.attachments[0].content, original.attachments[0].content);
}

#[test]
fn refuses_a_status_message_with_attachment_content() {
    let status = String::from_utf8(fixture("status_02.edxml")).unwrap();
    let at = status.rfind("</edXML>").unwrap();
    let with = format!(
        "{}<AttachmentEncoded><Attachment><ContentTransferEncoded>aGVsbG8=</ContentTransferEncoded></Attachment></AttachmentEncoded>{}",
        &status[..at],
        &status[at..]
    );
    // Read from memory, it is kept as an unknown element; streamed, its text would be lost.
    assert!(parse(with.as_bytes()).is_ok());
    let e = streamed(with.as_bytes(), 4096).unwrap_err();
    assert!(
        e.reason.contains("a status message carries no attachment"),
        "{e}"
    );
}

#[test]
fn a_large_attachment_goes_to_its_spool_in_pieces() {
    // 3 MiB of content: written in pieces no larger than the decoder's step, never whole.
    struct Pieces {
        total: usize,
        largest: usize,
    }
    impl std::io::Write for Pieces {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.total += b.len();
            self.largest = self.largest.max(b.len());
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    use base64::Engine;
    let content: Vec<u8> = (0..3 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let b64 = base64::engine::general_purpose::STANDARD.encode(&content);
    let new = String::from_utf8(fixture("edoc_new.edxml")).unwrap();
    let start = new.find("QCVN_102_2016\">UEs").unwrap() + "QCVN_102_2016\">".len();
    let end = start + new[start..].find('<').unwrap();
    let input = format!("{}{b64}{}", &new[..start], &new[end..]);
    let s = parse_stream(input.as_bytes(), || {
        Ok(Pieces {
            total: 0,
            largest: 0,
        })
    })
    .unwrap();
    let spool = s.contents[0].as_ref().unwrap();
    assert_eq!(spool.total, content.len());
    assert!(spool.largest <= 64 * 1024, "{}", spool.largest);
    let Message::Document(d) = s.message else {
        panic!("a document")
    };
    assert_eq!(d.attachments[0].size, content.len() as u64);
    assert_eq!(
        d.attachments[0].sha256,
        lienthong_core::sign::sha256(&content)
    );
    assert!(d.attachments[0].content.is_empty());
}
