//! The bridge killed with SIGKILL between its durable write and its acknowledgement on
//! the platform (#19): the national gateway of a 2-tier network runs as a real `lienthong
//! node` process and bridges to a platform stand-in that, for a while, cannot take the
//! acknowledgement. The message is in lienthong, the platform still lists it; after the
//! kill and a restart the bridge acknowledges it, and the recipient holds it once.

use std::process::Stdio;
use std::time::Duration;

use lienthong_client::InboxKind;
use lienthong_devnet::{RunningNetwork, Shape};
use lienthong_testkit::bridged::{bridged_network, eventually};
use lienthong_testkit::vxp_platform::{
    AgencySpec, DeliveryStatus, Platform, PlatformConfig, SystemSpec,
};
use lienthong_vxp::{ClientConfig, MessageType, Secret, VxpClient};
use tokio::process::{Child, Command};

const LT: &str = "LT.SYSTEM";
const EXT: &str = "EXT.SYSTEM";
const EXT_AGENCY: &str = "000.00.00.H29";
const COMMUNE: &str = "001.00.20.H41";
const EDOC: &[u8] = include_bytes!("../../lienthong-vxp/tests/fixtures/edoc_attachment.edxml");

/// The sample document from the platform's agency to the commune, under its own edXML
/// DocumentId `id`.
fn edoc(subject_marker: &str, id: &str) -> Vec<u8> {
    String::from_utf8(EDOC.to_vec())
        .unwrap()
        .replace("9fbfbad2-f1f8-4256-a2eb-50fb1061cddb", id)
        .replacen("002.00.20.H13", EXT_AGENCY, 1)
        .replacen("000.00.15.H51", COMMUNE, 1)
        .replacen(
            "<edXML:Subject>",
            &format!("<edXML:Subject>{subject_marker} "),
            1,
        )
        .into_bytes()
}

fn spawn_node(config: &std::path::Path, log: &std::path::Path) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    Command::new(env!("CARGO_BIN_EXE_lienthong"))
        .arg("node")
        .arg("--config")
        .arg(config)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

/// A 2-tier network bridged to a platform stand-in with systems LT (the commune) and EXT
/// (the platform's agency), its national gateway `VN` stopped in-process and started
/// again as a `lienthong node` process with the same configuration.
struct Setup {
    /// Removed on drop.
    _dir: tempfile::TempDir,
    platform: Platform,
    net: RunningNetwork,
    vn_config: std::path::PathBuf,
    log: std::path::PathBuf,
    bridge: Child,
}

async fn setup() -> Setup {
    let dir = tempfile::TempDir::new().unwrap();
    let mut config = PlatformConfig::new(dir.path().join("platform"));
    config.systems = vec![
        SystemSpec::new(LT, "lt-secret", [AgencySpec::new(COMMUNE, "UBND xã")]),
        SystemSpec::new(
            EXT,
            "ext-secret",
            [AgencySpec::new(EXT_AGENCY, "UBND TP Hà Nội")],
        ),
    ];
    let platform = Platform::start(config).await.unwrap();
    let mut net = bridged_network(
        &dir.path().join("net"),
        &platform,
        LT,
        "lt-secret",
        Shape::new(2),
        |_| {},
    )
    .await
    .unwrap();
    net.stop_node("VN").await.unwrap();
    let vn_config = dir.path().join("vn.toml");
    std::fs::write(
        &vn_config,
        toml::to_string_pretty(&net.net.nodes[0].config).unwrap(),
    )
    .unwrap();
    let log = dir.path().join("vn.log");
    let bridge = spawn_node(&vn_config, &log);
    Setup {
        _dir: dir,
        platform,
        net,
        vn_config,
        log,
        bridge,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bridge_killed_between_its_write_and_its_acknowledgement_loses_and_duplicates_nothing() {
    let Setup {
        _dir: dir,
        platform,
        net,
        vn_config,
        log,
        mut bridge,
    } = setup().await;

    let ext = VxpClient::new(ClientConfig::new(
        platform.url(),
        EXT,
        Secret::new("ext-secret"),
        std::sync::Arc::new(lienthong_pki::web_client_config(platform.ca_pem_path()).unwrap()),
    ))
    .unwrap();
    let file = dir.path().join("edoc.edxml");
    std::fs::write(&file, edoc("[trước sự cố]", "bridge-crash-1")).unwrap();

    // The platform takes no acknowledgement for now: the bridge imports, stores and routes
    // the message, then cannot acknowledge it.
    platform.set_updates_down(true);
    let sent = ext
        .send_edoc(EXT_AGENCY, MessageType::Edoc, None, &file)
        .await
        .unwrap();
    let commune = net.client(COMMUNE).unwrap();
    let from_ext = async || {
        commune
            .list_inbox(0, 100)
            .await
            .unwrap()
            .into_iter()
            .filter(|i| i.kind == InboxKind::Document && i.from == EXT_AGENCY)
            .collect::<Vec<_>>()
    };
    eventually(
        30,
        "the platform's document in the commune's inbox",
        async || (from_ext().await.len() == 1).then_some(()),
    )
    .await;
    eventually(30, "the bridge trying to acknowledge", async || {
        platform
            .requests()
            .iter()
            .any(|r| r.system_id == LT && r.op == "updateStatus" && r.status == "DOWN")
            .then_some(())
    })
    .await;
    bridge.start_kill().unwrap();
    let status = bridge.wait().await.unwrap();
    assert!(!status.success(), "killed: {status}");
    let item = platform
        .mailbox(LT)
        .into_iter()
        .find(|m| m.sender_doc_id == sent)
        .expect("the platform still holds it");
    assert_ne!(
        item.status,
        DeliveryStatus::Done,
        "not acknowledged before the kill"
    );

    // Back up: the bridge finds the message already imported and acknowledges it.
    platform.set_updates_down(false);
    let mut bridge = spawn_node(&vn_config, &log);
    eventually(60, "the acknowledgement after the restart", async || {
        platform
            .mailbox(LT)
            .into_iter()
            .find(|m| m.sender_doc_id == sent && m.status == DeliveryStatus::Done)
    })
    .await;
    // And the bridge goes on: a second message arrives too.
    std::fs::write(&file, edoc("[sau sự cố]", "bridge-crash-2")).unwrap();
    ext.send_edoc(EXT_AGENCY, MessageType::Edoc, None, &file)
        .await
        .unwrap();
    eventually(30, "the second document", async || {
        (from_ext().await.len() == 2).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let items = from_ext().await;
    assert_eq!(items.len(), 2, "each platform message once: {items:?}");
    assert_ne!(items[0].id, items[1].id);
    bridge.start_kill().unwrap();
    let _ = bridge.wait().await;
    net.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bridge_killed_before_it_learns_the_platforms_docid_sends_the_document_once() {
    let Setup {
        _dir,
        platform,
        net,
        vn_config,
        log,
        mut bridge,
    } = setup().await;
    let commune = net.client(COMMUNE).unwrap();
    let to = lienthong_core::AgencyCode::parse(EXT_AGENCY).unwrap();

    // The platform stores and delivers each document but answers late: the bridge is
    // killed while it waits for the DocId.
    platform.set_send_answer_delay(Duration::from_secs(60));
    let id = eventually(
        30,
        "the platform's agency list at the commune",
        async || {
            let mut d = commune.new_document(vec![to.clone()], "gửi một lần");
            match commune.send(&mut d, &[]).await {
                Ok(_) => Some(d.id.to_string()),
                Err(e) if e.reason() == Some("unknown-recipient") => None,
                Err(e) => panic!("{e}"),
            }
        },
    )
    .await;
    let on_platform = async || {
        platform
            .mailbox(EXT)
            .into_iter()
            .filter(|m| String::from_utf8_lossy(&m.bytes).contains("gửi một lần"))
            .count()
    };
    eventually(30, "the document stored on the platform", async || {
        (on_platform().await == 1).then_some(())
    })
    .await;
    bridge.start_kill().unwrap();
    let _ = bridge.wait().await;

    // Restarted, the bridge sends it again with the first attempt's signed headers: the
    // platform sees the SDK's retry, answers the same DocId, and delivers nothing new.
    platform.set_send_answer_delay(Duration::ZERO);
    let mut bridge = spawn_node(&vn_config, &log);
    let retry = eventually(60, "the re-send, recognised as a retry", async || {
        platform
            .requests()
            .into_iter()
            .find(|r| r.system_id == LT && r.op == "sendEdoc" && r.duplicate)
    })
    .await;
    assert!(retry.hmac_ok && retry.headers_ok, "{retry}");
    let tracked = eventually(30, "the sender's track", async || {
        let t = format!("{:?}", commune.track(&id).await.unwrap());
        t.contains("national platform").then_some(t)
    })
    .await;
    assert!(
        tracked.contains(retry.doc_id.as_deref().unwrap()),
        "{tracked}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(on_platform().await, 1, "one document on the platform");
    bridge.start_kill().unwrap();
    let _ = bridge.wait().await;
    net.stop().await.unwrap();
}
