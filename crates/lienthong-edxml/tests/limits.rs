//! The reader's limits: input deeper, larger or longer than `lienthong_edxml::limits`
//! allows is refused with its line and the limit, never a crash; input at the limits goes
//! through every walk of the crate (parse, signature check, summary, write, import,
//! export, clone, compare, drop) on a small stack.

use lienthong_edxml::{
    EdxmlDocument, EdxmlStatus, Error, MAX_ATTRIBUTES, MAX_DEPTH, MAX_ELEMENTS, MAX_NAME_BYTES,
    MAX_NAMESPACES_IN_SCOPE, MAX_SIGNATURE_REFERENCES, Message, SignatureCheck, parse,
    parse_written, summary, verify_signature, write,
};

const NS: &str = "http://www.mic.gov.vn/TBT/QCVN_102_2016";

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A routable document whose MessageHeader (level 4) holds `extra` on line 3.
fn document_with(extra: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<edXML xmlns=\"{NS}\"><edXMLEnvelope><edXMLHeader><MessageHeader>\
         <From><OrganId>000.00.00.H41</OrganId></From><To><OrganId>000.00.14.H41</OrganId></To>\
         <DocumentId>000.00.00.H41,2026/11/24,15/UBND-VP</DocumentId>\n{extra}\n\
         </MessageHeader></edXMLHeader></edXMLEnvelope></edXML>\n"
    )
}

/// Unknown elements nested `n` deep.
fn nested(n: usize) -> String {
    format!("{}{}", "<X>".repeat(n), "</X>".repeat(n))
}

/// Runs `f` on a thread with a 1 MiB stack: half of what a thread (a tokio worker, a test)
/// gets by default, enough for every walk of a tree at the depth limit even in a debug
/// build, whose frames are several times larger than a release build's.
fn on_small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(1024 * 1024)
        .spawn(f)
        .unwrap()
        .join()
        .expect("the walk fit in 1 MiB of stack")
}

#[test]
fn rejects_nesting_deeper_than_the_limit_with_its_line() {
    // 20,000 levels crashed the process (stack overflow) before the limit.
    for depth in [20_000, MAX_DEPTH - 3] {
        let e = parse(document_with(&nested(depth)).as_bytes()).unwrap_err();
        assert_eq!(e.line, 3, "{e}");
        assert!(
            e.reason
                .contains(&format!("<X> is nested deeper than {MAX_DEPTH} levels")),
            "{e}"
        );
        // The signature check reads the same way, and fails cleanly.
        match verify_signature(document_with(&nested(depth)).as_bytes()) {
            SignatureCheck::Failed { reason } => assert!(reason.contains("nested deeper")),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn a_message_at_the_depth_limit_goes_through_every_walk_on_a_small_stack() {
    // MessageHeader is level 4: this chain reaches exactly MAX_DEPTH. Put it in a signed
    // message, so that the signature check canonicalizes it too.
    let chain = nested(MAX_DEPTH - 4);
    let signed = fixture("edoc_signed_sha256.edxml");
    let at = signed.find("<edXML:Subject>").unwrap();
    let input = format!("{}{chain}{}", &signed[..at], &signed[at..]);
    let extras_before = parse(signed.as_bytes()).unwrap().extras().len();
    on_small_stack(move || {
        let message = parse(input.as_bytes()).unwrap();
        assert_eq!(message.extras().len(), extras_before + 1);
        let check = verify_signature(input.as_bytes());
        assert!(
            matches!(&check, SignatureCheck::Failed { reason } if reason.contains("digest")),
            "{check:?}"
        );
        let _ = summary(&message, &check);
        let written = write(&message).unwrap();
        assert_eq!(parse_written(&written).unwrap(), message.clone());
        let Message::Document(d) = &message else {
            panic!("a document")
        };
        let core = d.to_core_lenient(0).unwrap();
        EdxmlDocument::check_preserved(&core.edxml_preserved).unwrap();
        let back = EdxmlDocument::from_core(&core).unwrap();
        assert_eq!(back.extras, d.extras);
        drop(message);
    });
}

#[test]
fn rejects_more_elements_than_the_limit() {
    let e = parse(document_with(&"<X/>".repeat(MAX_ELEMENTS)).as_bytes()).unwrap_err();
    assert_eq!(e.line, 3, "{e}");
    assert!(
        e.reason.contains(&format!(
            "more than {MAX_ELEMENTS} elements (comments included)"
        )),
        "{e}"
    );
    // Comments cost a node each, as elements do.
    let e = parse(document_with(&"<!---->".repeat(MAX_ELEMENTS)).as_bytes()).unwrap_err();
    assert!(e.reason.contains("more than"), "{e}");
}

#[test]
fn rejects_more_attributes_than_the_limit() {
    let attrs: String = (0..MAX_ATTRIBUTES / 1000 + 1)
        .map(|_| {
            let one: String = (0..1000).map(|i| format!(" a{i}=\"\"")).collect();
            format!("<X{one}/>")
        })
        .collect();
    let e = parse(document_with(&attrs).as_bytes()).unwrap_err();
    assert!(
        e.reason.contains(&format!(
            "more than {MAX_ATTRIBUTES} attributes (namespace declarations included)"
        )),
        "{e}"
    );
}

#[test]
fn rejects_more_namespaces_in_scope_than_the_limit() {
    // Each level declares two prefixes: the limit is passed halfway down, not the depth.
    let levels = MAX_NAMESPACES_IN_SCOPE / 2 + 1;
    let open: String = (0..levels)
        .map(|i| format!("<X xmlns:a{i}=\"urn:a{i}\" xmlns:b{i}=\"urn:b{i}\">"))
        .collect();
    let e =
        parse(document_with(&format!("{open}{}", "</X>".repeat(levels))).as_bytes()).unwrap_err();
    assert!(
        e.reason.contains(&format!(
            "more than {MAX_NAMESPACES_IN_SCOPE} namespace declarations are in scope at <X>"
        )),
        "{e}"
    );
}

#[test]
fn rejects_names_longer_than_the_limit() {
    let long = "N".repeat(MAX_NAME_BYTES + 1);
    for extra in [format!("<{long}/>"), format!("<X {long}=\"v\"/>")] {
        let e = parse(document_with(&extra).as_bytes()).unwrap_err();
        assert!(
            e.reason.contains(&format!(
                "a name of {} bytes, longer than the {MAX_NAME_BYTES} bytes",
                MAX_NAME_BYTES + 1
            )),
            "{e}"
        );
    }
    let at_limit = "N".repeat(MAX_NAME_BYTES);
    parse(document_with(&format!("<{at_limit}/>")).as_bytes()).unwrap();
}

#[test]
fn refuses_a_signature_with_more_references_than_the_limit() {
    let signed = fixture("edoc_signed_sha256.edxml");
    let start = signed.find("<Reference").unwrap();
    let end = signed.find("</Reference>").unwrap() + "</Reference>".len();
    let reference = &signed[start..end];
    let many = format!(
        "{}{}{}",
        &signed[..start],
        reference.repeat(MAX_SIGNATURE_REFERENCES + 1),
        &signed[end..]
    );
    match verify_signature(many.as_bytes()) {
        SignatureCheck::Failed { reason } => assert!(
            reason.contains(&format!(
                "has {} References, more than the {MAX_SIGNATURE_REFERENCES}",
                MAX_SIGNATURE_REFERENCES + 1
            )),
            "{reason}"
        ),
        other => panic!("{other:?}"),
    }
}

/// What a DMS could put in `edxml_preserved`: the magic line and a deep message.
fn poisoned_preserved(depth: usize) -> Vec<u8> {
    let mut v = lienthong_edxml::core_map::PRESERVED_MAGIC.to_vec();
    v.extend_from_slice(document_with(&nested(depth)).as_bytes());
    v
}

#[test]
fn refuses_a_deep_edxml_preserved_on_check_and_on_export() {
    let preserved = poisoned_preserved(20_000);
    for e in [
        EdxmlDocument::check_preserved(&preserved).unwrap_err(),
        EdxmlStatus::check_preserved(&preserved).unwrap_err(),
    ] {
        assert!(matches!(e, Error::Preserved(_)), "{e}");
        assert!(e.to_string().contains("edxml_preserved"), "{e}");
        assert!(e.to_string().contains("nested deeper than"), "{e}");
    }
    // Export of a document that carries it fails with the reason instead of crashing.
    let d = match parse(document_with("").as_bytes()).unwrap() {
        Message::Document(d) => d,
        other => panic!("{other:?}"),
    };
    let mut core = d.to_core(0).unwrap();
    core.edxml_preserved = preserved;
    let e = on_small_stack(move || EdxmlDocument::from_core(&core).unwrap_err().to_string());
    assert!(e.contains("nested deeper than"), "{e}");
}

#[test]
fn check_preserved_accepts_what_import_writes_and_refuses_the_other_kind() {
    let d = match parse(document_with("<Unknown>kept</Unknown>").as_bytes()).unwrap() {
        Message::Document(d) => d,
        other => panic!("{other:?}"),
    };
    let doc = d.to_core(0).unwrap();
    EdxmlDocument::check_preserved(&doc.edxml_preserved).unwrap();
    EdxmlDocument::check_preserved(&[]).unwrap();
    let e = EdxmlStatus::check_preserved(&doc.edxml_preserved).unwrap_err();
    assert!(e.to_string().contains("holds a document"), "{e}");
    let e = EdxmlDocument::check_preserved(b"<edXML/>").unwrap_err();
    assert!(
        e.to_string()
            .contains("does not start with lienthong-edxml-preserved/1"),
        "{e}"
    );
}
