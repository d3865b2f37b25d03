//! Who may vouch for a message imported from the national platform: a node the
//! directory names a bridge, for a sender that is not one of the directory's agencies.

use lienthong_core::directory::{AgencyEntry, BridgeEntry, Directory, DirectoryIndex, NodeEntry};
use lienthong_core::id::Agency;
use lienthong_core::{AgencyCode, Imported, NodeId};
use lienthong_pki::verify::{NotVouched, vouched_by};

fn directory() -> DirectoryIndex {
    let node = |id: &str, parent: Option<&str>| NodeEntry {
        id: NodeId::parse(id).unwrap(),
        level: String::new(),
        parent: parent.map(|p| NodeId::parse(p).unwrap()),
        endpoint: String::new(),
    };
    DirectoryIndex::new(Directory {
        version: 7,
        issued_at: 0,
        nodes: vec![node("VN", None), node("H41", Some("VN"))],
        agencies: vec![AgencyEntry {
            agency: Agency {
                code: AgencyCode::parse("001.00.20.H41").unwrap(),
                name: String::new(),
                aliases: Vec::new(),
                edxml_id: None,
            },
            home: NodeId::parse("H41").unwrap(),
        }],
        bridges: vec![BridgeEntry {
            node: NodeId::parse("VN").unwrap(),
            agencies: Vec::new(),
        }],
        signature: None,
    })
    .unwrap()
}

fn imported_by(node: &str) -> Imported {
    Imported {
        bridge: NodeId::parse(node).unwrap(),
        platform_id: "S1".into(),
        dsig: "absent".into(),
    }
}

#[test]
fn a_bridge_vouches_for_an_agency_outside_the_directory() {
    let outside = AgencyCode::parse("000.00.00.H29").unwrap();
    vouched_by(&directory(), &outside, Some(&imported_by("VN"))).unwrap();
    // A message signed by its own agency needs no bridge.
    vouched_by(&directory(), &outside, None).unwrap();
}

#[test]
fn a_node_that_is_not_a_bridge_vouches_for_nothing() {
    let outside = AgencyCode::parse("000.00.00.H29").unwrap();
    let e = vouched_by(&directory(), &outside, Some(&imported_by("H41"))).unwrap_err();
    assert!(
        matches!(e, NotVouched::NotABridge { version: 7, .. }),
        "{e}"
    );
    assert!(e.to_string().contains("names no such bridge"), "{e}");
}

#[test]
fn a_bridge_never_speaks_for_one_of_our_agencies() {
    let ours = AgencyCode::parse("001.00.20.H41").unwrap();
    let e = vouched_by(&directory(), &ours, Some(&imported_by("VN"))).unwrap_err();
    assert!(matches!(e, NotVouched::OurAgency { .. }), "{e}");
}
