//! Agency identifiers that are not QĐ 20/2020 codes — legacy three-part codes, platform
//! account ids — placed with the directory on import, and written on export as each
//! agency's directory entry says its system expects.

use lienthong_core::directory::{AgencyEntry, Directory, DirectoryIndex, NodeEntry};
use lienthong_core::id::Agency;
use lienthong_core::{AgencyCode, Document, NodeId};
use lienthong_edxml::{EdxmlDocument, EdxmlStatus, Error, Message, parse, write};

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    String::from_utf8(std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))).unwrap()
}

fn code(s: &str) -> AgencyCode {
    AgencyCode::parse(s).unwrap()
}

/// A directory of the fixtures' agencies: the Sở (000.00.32.H40) known on the platform as
/// `vxp.saas.03`, the UBND tỉnh (000.00.00.H40) whose system expects its legacy code
/// `28.22.H17`, and the commune (003.01.32.H40) whose system expects `27.01.H40`.
fn directory(sender_edxml_id: Option<&str>) -> DirectoryIndex {
    let node = |id: &str, parent: Option<&str>| NodeEntry {
        id: NodeId::parse(id).unwrap(),
        level: "province".into(),
        parent: parent.map(|p| NodeId::parse(p).unwrap()),
        endpoint: String::new(),
    };
    let agency = |c: &str, aliases: &[&str], edxml_id: Option<&str>| AgencyEntry {
        agency: Agency {
            code: code(c),
            name: format!("Cơ quan {c}"),
            aliases: aliases.iter().map(|a| a.to_string()).collect(),
            edxml_id: edxml_id.map(str::to_string),
        },
        home: NodeId::parse("H40").unwrap(),
    };
    DirectoryIndex::new(Directory {
        version: 3,
        issued_at: 0,
        nodes: vec![node("national", None), node("H40", Some("national"))],
        agencies: vec![
            agency("000.00.32.H40", &["vxp.saas.03"], sender_edxml_id),
            agency("000.00.00.H40", &["28.22.H17"], Some("28.22.H17")),
            agency("003.01.32.H40", &["xa-thu", "27.01.H40"], Some("27.01.H40")),
        ],
        bridges: Vec::new(),
        signature: None,
    })
    .unwrap()
}

/// edoc_new.edxml with From `vxp.saas.03` and its first To `28.22.H17`.
fn aliased_document() -> EdxmlDocument {
    let text = fixture("edoc_new.edxml")
        .replacen(
            "<edXML:OrganId>000.00.32.H40</edXML:OrganId>",
            "<edXML:OrganId>vxp.saas.03</edXML:OrganId>",
            1,
        )
        .replacen(
            "<edXML:OrganId>000.00.00.H40</edXML:OrganId>",
            "<edXML:OrganId> 28.22.H17 </edXML:OrganId>",
            1,
        );
    match parse(text.as_bytes()).unwrap() {
        Message::Document(d) => d,
        Message::Status(_) => panic!("expected a document"),
    }
}

#[test]
fn aliases_are_placed_with_the_directory_and_refused_without_it() {
    let d = aliased_document();
    let dir = directory(None);

    let e = d.to_core(0).unwrap_err();
    assert!(matches!(e, Error::Unroutable { line: 8, .. }), "{e}");
    assert_eq!(
        e.to_string(),
        "From/OrganId \"vxp.saas.03\" names no agency: not a QĐ 20/2020 code (it must have \
         exactly four parts), and without the directory lienthong cannot tell which agency it \
         names; this message cannot be routed until the directory lists \"vxp.saas.03\" as an \
         alias of its agency, or the message names the agency by its QĐ 20/2020 code"
    );

    let core = d.to_core_with(0, Some(&dir)).unwrap();
    assert_eq!(core.from.code, Some(code("000.00.32.H40")));
    assert_eq!(
        core.recipients().unwrap(),
        vec![code("000.00.00.H40"), code("003.01.32.H40")]
    );

    // An identifier the directory does not list either, with its line.
    let mut unknown = d.clone();
    unknown.header.to[1].organ_id = "27.99.H40".into();
    let e = unknown.to_core_with(0, Some(&dir)).unwrap_err();
    assert!(matches!(e, Error::Unroutable { line: 28, .. }), "{e}");
    assert!(
        e.to_string().starts_with(
            "To #2 OrganId \"27.99.H40\" names no agency: not a QĐ 20/2020 code (it must have \
             exactly four parts), and no agency of directory version 3 has it as an alias"
        ),
        "{e}"
    );
}

#[test]
fn export_writes_the_identifier_each_agencys_system_expects() {
    let d = aliased_document();
    let core = d.to_core_with(0, Some(&directory(None))).unwrap();

    // With the directory: the configured edxml_id where there is one, else the code
    // (the sender's platform account id is not what a recipient's system expects).
    let out = EdxmlDocument::from_core_with(&core, Some(&directory(None))).unwrap();
    assert_eq!(out.header.from.organ_id, "000.00.32.H40");
    let to: Vec<&str> = out.header.to.iter().map(|o| o.organ_id.as_str()).collect();
    assert_eq!(to, ["28.22.H17", "27.01.H40"]);
    // The other fields and the TraceHeaderList are the imported ones.
    assert_eq!(out.header.subject, d.header.subject);
    assert_eq!(out.trace, d.trace);

    // A sender whose entry sets its platform account id is written with it.
    let out = EdxmlDocument::from_core_with(&core, Some(&directory(Some("vxp.saas.03")))).unwrap();
    assert_eq!(out.header.from.organ_id, "vxp.saas.03");

    // Without a directory: the codes.
    let out = EdxmlDocument::from_core(&core).unwrap();
    assert_eq!(out.header.from.organ_id, "000.00.32.H40");
    assert_eq!(out.header.to[0].organ_id, "000.00.00.H40");

    // What is written reads back as the same agencies.
    let mut out = EdxmlDocument::from_core_with(&core, Some(&directory(None))).unwrap();
    for (a, imported) in out.attachments.iter_mut().zip(&d.attachments) {
        a.content = imported.content.clone();
    }
    let written = write(&Message::Document(out)).unwrap();
    let again = match parse(&written).unwrap() {
        Message::Document(d) => d,
        Message::Status(_) => panic!("expected a document"),
    };
    let back = again.to_core_with(0, Some(&directory(None))).unwrap();
    assert_eq!(back.from, core.from);
    assert_eq!(back.to, core.to);
}

#[test]
fn a_native_document_is_stamped_with_the_senders_identifier() {
    let dir = directory(Some("vxp.saas.03"));
    let doc = Document::new(code("000.00.32.H40"), vec![code("003.01.32.H40")]);
    let out = EdxmlDocument::from_core_with(&doc, Some(&dir)).unwrap();
    assert_eq!(out.header.from.organ_id, "vxp.saas.03");
    assert_eq!(out.header.to[0].organ_id, "27.01.H40");
    assert_eq!(out.trace[0].organ_id, "vxp.saas.03");
    let out = EdxmlDocument::from_core(&doc).unwrap();
    assert_eq!(out.trace[0].organ_id, "000.00.32.H40");
}

#[test]
fn a_status_is_placed_and_written_back_by_identifiers_too() {
    let text = fixture("status_03.edxml")
        .replacen(
            "<edXML:OrganId>000.00.00.H40</edXML:OrganId>",
            "<edXML:OrganId>28.22.H17</edXML:OrganId>",
            1,
        )
        .replacen(
            "<edXML:OrganId>000.00.32.H40</edXML:OrganId>",
            "<edXML:OrganId>vxp.saas.03</edXML:OrganId>",
            1,
        );
    let s = match parse(text.as_bytes()).unwrap() {
        Message::Status(s) => s,
        Message::Document(_) => panic!("expected a status"),
    };
    let e = s.to_core(0).unwrap_err();
    assert!(matches!(e, Error::Unroutable { line: 7, .. }), "{e}");
    let dir = directory(None);
    let n = s.to_core_with(0, Some(&dir)).unwrap();
    assert_eq!(n.from.code, Some(code("000.00.00.H40")));
    assert_eq!(n.to, code("000.00.32.H40"));

    // The status's sender as its edxml_id; the agency it goes to as the sender wrote it
    // (signed in the notice), or as its own edxml_id when its entry sets one.
    let out = EdxmlStatus::from_core_with(&n, Some(&dir)).unwrap();
    assert_eq!(out.from.organ_id, "28.22.H17");
    assert_eq!(out.response_for.organ_id, "vxp.saas.03");
    let mut unaliased = n.clone();
    unaliased.response_for.organ_id = "000.00.32.H40".into();
    let out =
        EdxmlStatus::from_core_with(&unaliased, Some(&directory(Some("vxp.saas.03")))).unwrap();
    assert_eq!(out.response_for.organ_id, "vxp.saas.03");
    let out = EdxmlStatus::from_core(&n).unwrap();
    assert_eq!(out.from.organ_id, "000.00.00.H40");
}

#[test]
fn check_reports_identifiers_it_cannot_place_without_refusing_the_message() {
    let d = aliased_document();
    let bytes = write(&Message::Document(d)).unwrap();
    let report = lienthong_edxml::check(&bytes, None).unwrap();
    let unplaced: Vec<String> = report.unplaced().map(|e| e.to_string()).collect();
    assert_eq!(unplaced.len(), 2, "{unplaced:?}");
    assert!(unplaced[0].starts_with("From/OrganId \"vxp.saas.03\" names no agency"));
    assert!(unplaced[1].starts_with("To #1 OrganId \"28.22.H17\" names no agency"));
    let report = lienthong_edxml::check(&bytes, Some(&directory(None))).unwrap();
    assert_eq!(report.unplaced().count(), 0);
    let placed: Vec<(String, AgencyCode)> = report
        .identifiers
        .iter()
        .map(|(id, c)| (id.value.trim().to_string(), c.as_ref().unwrap().clone()))
        .collect();
    assert_eq!(
        placed,
        vec![
            ("vxp.saas.03".to_string(), code("000.00.32.H40")),
            ("28.22.H17".to_string(), code("000.00.00.H40")),
            ("003.01.32.H40".to_string(), code("003.01.32.H40")),
        ]
    );
}
