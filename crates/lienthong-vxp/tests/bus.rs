//! The gateway in front of a real lienthong network: a DMS speaking the VXP SDK's wire
//! protocol (headers signed by `common::sdk_sign`, written from the reference, not from
//! the gateway's code; bare HTTP/1.1 over TLS) at a commune of one province sends a real
//! sample edXML message, its sender named by a platform account id and its recipient by
//! a legacy three-part code, to a commune of another province through the nodes; the
//! other DMS lists it, downloads it as edXML (with the identifiers its system expects)
//! and updates its status; a status message flows back; the sender lists it as sent.
//! Refused requests change nothing on the bus.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use base64::Engine;
use common::{EDOC, RawResponse, TS, https_request, sdk_body, sdk_sign};
use lienthong_core::AgencyCode;
use lienthong_devnet::{RunningNetwork, Shape, vxp_secret_file, with_aliases};

/// The sender: a commune of province H41; the recipient: a commune of province H42.
const FROM: &str = "001.00.20.H41";
const TO: &str = "001.00.20.H42";
/// The sender's account on the national platform, which its DMS writes as its id.
const FROM_ACCOUNT: &str = "vxp.saas.h41-c1";
/// The recipient's legacy three-part code, which its DMS still uses.
const TO_LEGACY: &str = "28.22.H17";

/// A 2-tier network whose directory knows both identifiers, each its agency's edXML id.
async fn network(dir: &Path) -> RunningNetwork {
    RunningNetwork::start_with_directory(
        dir,
        Shape::new(2),
        0,
        200,
        |_| {},
        |source| {
            let source = with_aliases(&source, FROM, &[FROM_ACCOUNT], Some(FROM_ACCOUNT));
            with_aliases(&source, TO, &[TO_LEGACY], Some(TO_LEGACY))
        },
    )
    .await
    .unwrap()
}

/// One DMS of the test: its system id (the agency code, as `lienthong dev` sets it up),
/// its secret, and where its gateway listens.
struct Dms {
    agency: String,
    /// What the DMS writes as `from`: its platform account id or its code.
    from: String,
    secret: String,
    gateway: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
}

impl Dms {
    fn new(net: &RunningNetwork, agency: &str) -> Self {
        let code = AgencyCode::parse(agency).unwrap();
        let i = net
            .net
            .nodes
            .iter()
            .position(|n| n.agencies.iter().any(|(a, _, _)| *a == code))
            .unwrap();
        let secret = std::fs::read_to_string(vxp_secret_file(&net.net.dir, &code)).unwrap();
        Dms {
            agency: agency.to_string(),
            from: agency.to_string(),
            secret,
            gateway: net.vxp_addr(i).expect("the node runs a VXP gateway"),
            tls: client_tls(&net.net.dir.join("ca").join("ca.pem")),
        }
    }

    /// A request signed as the SDK signs it: `systemid`, the operation's keys, then
    /// `timestamp` and `Content-Type`.
    async fn call(&self, op: &str, entries: &[(&str, &str)], body: &[u8]) -> RawResponse {
        self.call_as(&self.agency, &self.secret, op, entries, body)
            .await
    }

    async fn call_as(
        &self,
        system: &str,
        secret: &str,
        op: &str,
        entries: &[(&str, &str)],
        body: &[u8],
    ) -> RawResponse {
        let content_type = if op == "sendEdoc" {
            "application/octet-stream"
        } else {
            "application/json"
        };
        let mut signed = vec![("systemid", system)];
        signed.extend_from_slice(entries);
        signed.push(("timestamp", TS));
        signed.push(("Content-Type", content_type));
        let headers = sdk_sign(secret, &signed);
        https_request(
            self.gateway,
            self.tls.clone(),
            "POST",
            &format!("/{op}"),
            &headers,
            body,
        )
        .await
    }

    /// sendEdoc of `file`, `hash-file` computed as the reference says: each byte of the
    /// SHA-256 in lowercase hex without padding.
    async fn send_edoc(&self, message_type: &str, file: &[u8]) -> RawResponse {
        let hash = hash_file(file);
        self.call(
            "sendEdoc",
            &[
                ("servicetype", "eDoc"),
                ("messagetype", message_type),
                ("hash-file", &hash),
                ("from", &self.from),
            ],
            &sdk_body(file),
        )
        .await
    }

    async fn received(&self, message_type: &str) -> serde_json::Value {
        let r = self
            .call(
                "getReceivedEdocList",
                &[("servicetype", "eDoc"), ("messagetype", message_type)],
                b"",
            )
            .await;
        ok(&r)
    }

    async fn get_edoc(&self, doc_id: &str) -> Vec<u8> {
        let r = self
            .call(
                "getEdoc",
                &[("docId", doc_id), ("filePath", "/tmp/in")],
                b"{}",
            )
            .await;
        let v = ok(&r);
        base64::engine::general_purpose::STANDARD
            .decode(v["data"].as_str().expect("data is a string"))
            .unwrap()
    }

    async fn update_status(&self, doc_id: &str, status: &str) -> RawResponse {
        self.call(
            "updateStatus",
            &[("docId", doc_id), ("status", status)],
            b"{}",
        )
        .await
    }
}

fn client_tls(ca: &Path) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in lienthong_pki::load_certs(ca).unwrap() {
        roots.add(cert).unwrap();
    }
    Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth(),
    )
}

fn hash_file(file: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, file)
        .as_ref()
        .iter()
        .map(|b| format!("{b:x}"))
        .collect()
}

/// The JSON of a successful answer (ASCII, `status` OK, `ErrorCode` 0).
fn ok(r: &RawResponse) -> serde_json::Value {
    assert!(r.body.is_ascii(), "not ASCII: {:?}", r.body);
    let v = r.json();
    assert_eq!(v["status"], "OK", "{v}");
    assert_eq!(v["ErrorCode"], "0", "{v}");
    v
}

/// The sample document of the reference, from `from` to `to` (as the DMS writes them).
fn sample_edoc(from: &str, to: &str) -> Vec<u8> {
    String::from_utf8(EDOC.to_vec())
        .unwrap()
        .replacen(
            "<edXML:OrganId>002.00.20.H13</edXML:OrganId>",
            &format!("<edXML:OrganId>{from}</edXML:OrganId>"),
            1,
        )
        .replacen(
            "<edXML:OrganId>000.00.15.H51</edXML:OrganId>",
            &format!("<edXML:OrganId>{to}</edXML:OrganId>"),
            1,
        )
        .into_bytes()
}

/// A status 03 (accepted) from `TO` about the document `doc_id` of `FROM`, as the
/// recipient's DMS writes it: with the identifiers its system knows.
fn status_03(doc_id: &str, code_number: &str, code_notation: &str) -> Vec<u8> {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<edXML xmlns="http://www.mic.gov.vn/TBT/QCVN_102_2016">
  <edXML:edXMLEnvelope xmlns:edXML="http://www.mic.gov.vn/TBT/QCVN_102_2016">
    <edXML:edXMLHeader>
      <edXML:MessageHeader>
        <edXML:From>
          <edXML:OrganId>{TO_LEGACY}</edXML:OrganId>
          <edXML:OrganName>UBND xã thử nghiệm, tỉnh H42</edXML:OrganName>
        </edXML:From>
        <edXML:ResponseFor>
          <edXML:OrganId>{FROM_ACCOUNT}</edXML:OrganId>
          <edXML:Code>{code_number}/{code_notation}</edXML:Code>
          <edXML:PromulgationDate>2019/01/17</edXML:PromulgationDate>
          <edXML:DocumentId>{doc_id}</edXML:DocumentId>
        </edXML:ResponseFor>
        <edXML:StatusCode>03</edXML:StatusCode>
        <edXML:Description>Văn thư: đã vào sổ văn bản đến</edXML:Description>
        <edXML:Timestamp>2026/12/05 09:30:00</edXML:Timestamp>
      </edXML:MessageHeader>
    </edXML:edXMLHeader>
  </edXML:edXMLEnvelope>
</edXML>
"#
    )
    .into_bytes()
}

/// The text of the first element `name` in an edXML message.
fn element<'a>(xml: &'a str, name: &str) -> &'a str {
    let open = format!("<edXML:{name}>");
    let start = xml
        .find(&open)
        .unwrap_or_else(|| panic!("no {name} in {xml}"))
        + open.len();
    let end = start + xml[start..].find('<').unwrap();
    &xml[start..end]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vxp_dms_sends_across_provinces_and_statuses_come_back() {
    common::install_ring();
    let dir = tempfile::tempdir().unwrap();
    let net = network(dir.path()).await;
    let (mut sender, recipient) = (Dms::new(&net, FROM), Dms::new(&net, TO));
    sender.from = FROM_ACCOUNT.into();

    // The sender's DMS sends the sample, written with its platform account id and the
    // recipient's legacy code; a re-send (the SDK's after a dropped connection,
    // or the DMS's) gets the same DocId and is one document.
    let edoc = sample_edoc(FROM_ACCOUNT, TO_LEGACY);
    let sent = ok(&sender.send_edoc("edoc", &edoc).await);
    let doc_id = sent["DocId"].as_str().unwrap().to_string();
    assert!(!doc_id.is_empty());
    let again = ok(&sender.send_edoc("edoc", &edoc).await);
    assert_eq!(again["DocId"], doc_id.as_str());

    // The recipient's DMS sees it, once, with its sender, and downloads it as edXML.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    let list = loop {
        let list = recipient.received("edoc").await;
        if list["data"].as_array().is_some_and(|d| !d.is_empty()) {
            break list;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never arrived: {list}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let items = list["data"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{list}");
    assert_eq!(items[0]["docId"], doc_id.as_str());
    assert_eq!(items[0]["from"], FROM);
    assert_eq!(items[0]["to"], TO);
    let count = ok(&recipient.call("countReceiveEdoc", &[], b"{}").await);
    assert_eq!(count["count"], 1);

    let got = String::from_utf8(recipient.get_edoc(&doc_id).await).unwrap();
    let original = String::from_utf8(edoc.clone()).unwrap();
    assert_eq!(element(&got, "Subject"), element(&original, "Subject"));
    assert_eq!(
        element(&got, "CodeNumber"),
        element(&original, "CodeNumber")
    );
    // Each agency as the recipient's system knows it: the sender's account id, its own
    // legacy code.
    assert_eq!(element(&got, "OrganId"), FROM_ACCOUNT, "{got}");
    assert!(
        got.contains(&format!("<edXML:OrganId>{TO_LEGACY}</edXML:OrganId>")),
        "{got}"
    );
    // The attachment's content is the sender's, byte for byte.
    let content = |xml: &str| {
        base64::engine::general_purpose::STANDARD
            .decode(
                element(xml, "AttachmentEncoded")
                    .split_whitespace()
                    .collect::<String>(),
            )
            .unwrap()
    };
    assert_eq!(content(&got), content(&original));
    // The sample carries its DMS's XML-DSig, which covers the TraceHeaderList: it is
    // written back as signed, without the bus's hops (lienthong's own signed trace holds
    // them).
    assert!(got.contains("<Signature"), "{got}");
    assert!(
        got.contains("<edXML:OrganId>01.02.G22</edXML:OrganId>"),
        "{got}"
    );
    for hop in ["H41-C1", "H42-C1"] {
        assert!(
            !got.contains(hop),
            "hop {hop} written into a signed trace: {got}"
        );
    }

    // Failed (the DMS could not store it): it stays, listed again for another try.
    ok(&recipient.update_status(&doc_id, "fail").await);
    let list = recipient.received("edoc").await;
    assert_eq!(list["data"].as_array().map(Vec::len), Some(1), "{list}");

    // Done: acknowledged (twice: the SDK re-sends POSTs); nothing waits any more.
    ok(&recipient.update_status(&doc_id, "done").await);
    ok(&recipient.update_status(&doc_id, "done").await);
    let list = recipient.received("edoc").await;
    assert_eq!(
        list["data"].as_array().map(Vec::len).unwrap_or(0),
        0,
        "{list}"
    );

    // The recipient answers with status 03; the sender's DMS lists and downloads it.
    let status = status_03(
        &doc_id,
        element(&original, "CodeNumber"),
        element(&original, "CodeNotation"),
    );
    let status_sent = ok(&recipient.send_edoc("status", &status).await);
    let status_id = status_sent["DocId"].as_str().unwrap().to_string();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    let statuses = loop {
        let list = sender.received("status").await;
        if list["data"]
            .as_array()
            .is_some_and(|d| d.iter().any(|s| s["docId"] == status_id.as_str()))
        {
            break list;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "status {status_id} never arrived: {list}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert!(
        statuses["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["from"] == TO),
        "{statuses}"
    );
    let got_status = String::from_utf8(sender.get_edoc(&status_id).await).unwrap();
    assert_eq!(element(&got_status, "StatusCode"), "03");
    assert_eq!(element(&got_status, "DocumentId"), doc_id);
    assert_eq!(element(&got_status, "OrganId"), TO_LEGACY, "{got_status}");
    ok(&sender.update_status(&status_id, "done").await);

    // The sender lists what it sent: to the recipient, acknowledged there, status 03.
    let sent_list = ok(&sender
        .call(
            "getSentEdocList",
            &[("servicetype", "eDoc"), ("messagetype", "edoc")],
            b"{}",
        )
        .await);
    let rows = sent_list["data"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{sent_list}");
    assert_eq!(rows[0]["senderDocId"], doc_id.as_str());
    assert_eq!(rows[0]["toCode"], TO);
    assert_eq!(rows[0]["receiveStatus"], "acknowledged", "{sent_list}");
    assert_eq!(rows[0]["receiveStatusDesc"], "status 03", "{sent_list}");
    // The DMS's own XML-DSig was checked and recorded: the sample's signature no longer
    // matches, as its identifiers were rewritten for this test.
    assert!(
        rows[0]["sendStatusDesc"]
            .as_str()
            .unwrap()
            .contains("the DMS's XML signature: failed: "),
        "{sent_list}"
    );

    // The agencies of the signed directory, for the DMS's address book.
    let agencies = ok(&sender.call("getAgenciesList", &[], b"").await);
    let codes: Vec<&str> = agencies["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["code"].as_str().unwrap())
        .collect();
    assert!(codes.contains(&FROM) && codes.contains(&TO), "{agencies}");
    let level4 = ok(&sender
        .call("getAgenciesListQD20", &[("level", "4")], b"")
        .await);
    assert!(
        level4["data"].as_array().unwrap().iter().all(|a| a["code"]
            .as_str()
            .unwrap()
            .split('.')
            .next()
            != Some("000")),
        "{level4}"
    );

    net.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_requests_change_nothing_on_the_bus() {
    common::install_ring();
    let dir = tempfile::tempdir().unwrap();
    let net = network(dir.path()).await;
    let (sender, recipient) = (Dms::new(&net, FROM), Dms::new(&net, TO));
    let edoc = sample_edoc(FROM, TO);
    let hash = hash_file(&edoc);
    let send_entries = |hash: &str, from: &str| -> Vec<(String, String)> {
        vec![
            ("servicetype".into(), "eDoc".into()),
            ("messagetype".into(), "edoc".into()),
            ("hash-file".into(), hash.into()),
            ("from".into(), from.into()),
        ]
    };
    let refused = |r: &RawResponse, code: &str| {
        assert!(r.body.is_ascii(), "{:?}", r.body);
        let v = r.json();
        assert_eq!(v["status"], "FAIL", "{v}");
        assert_eq!(v["ErrorCode"], code, "{v}");
        assert_eq!(
            v["DocId"], "",
            "sendEdoc answers DocId even when it fails: {v}"
        );
    };
    let call = |system: &str, secret: &str, entries: Vec<(String, String)>, body: Vec<u8>| {
        let sender = &sender;
        let system = system.to_string();
        let secret = secret.to_string();
        async move {
            let refs: Vec<(&str, &str)> = entries
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            sender
                .call_as(&system, &secret, "sendEdoc", &refs, &body)
                .await
        }
    };

    // An unknown system, a wrong secret, a body that is not what hash-file names, an
    // agency the system may not act for.
    let r = call(
        "dms-nobody",
        "x",
        send_entries(&hash, FROM),
        sdk_body(&edoc),
    )
    .await;
    refused(&r, "103");
    let r = call(
        FROM,
        "not-the-secret",
        send_entries(&hash, FROM),
        sdk_body(&edoc),
    )
    .await;
    refused(&r, "104");
    let mut tampered = edoc.clone();
    tampered.extend_from_slice(b"<!-- changed -->");
    let r = call(
        FROM,
        &sender.secret,
        send_entries(&hash, FROM),
        sdk_body(&tampered),
    )
    .await;
    refused(&r, "109");
    let r = call(
        FROM,
        &sender.secret,
        send_entries(&hash, TO),
        sdk_body(&edoc),
    )
    .await;
    refused(&r, "108");

    // A signed header whose value differs from the header sent.
    let mut signed = vec![("systemid", FROM)];
    signed.extend([
        ("servicetype", "eDoc"),
        ("messagetype", "edoc"),
        ("hash-file", hash.as_str()),
        ("from", FROM),
        ("timestamp", TS),
        ("Content-Type", "application/octet-stream"),
    ]);
    let mut headers = sdk_sign(&sender.secret, &signed);
    for (k, v) in headers.iter_mut() {
        if k == "XroadVnpt-from" {
            *v = TO.to_string();
        }
    }
    let r = https_request(
        sender.gateway,
        sender.tls.clone(),
        "POST",
        "/sendEdoc",
        &headers,
        &sdk_body(&edoc),
    )
    .await;
    refused(&r, "105");

    // A message whose sender is another agency than the signed `from`: the bus refuses it.
    let foreign = String::from_utf8(edoc.clone())
        .unwrap()
        .replacen(
            &format!("<edXML:OrganId>{FROM}</edXML:OrganId>"),
            "<edXML:OrganId>002.00.20.H41</edXML:OrganId>",
            1,
        )
        .into_bytes();
    let r = sender.send_edoc("edoc", &foreign).await;
    refused(&r, "202");

    // Nothing reached the recipient, nothing was noted as sent.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let list = recipient.received("edoc").await;
    assert_eq!(
        list["data"].as_array().map(Vec::len).unwrap_or(0),
        0,
        "{list}"
    );
    let sent = ok(&sender
        .call(
            "getSentEdocList",
            &[("servicetype", "eDoc"), ("messagetype", "edoc")],
            b"{}",
        )
        .await);
    assert_eq!(
        sent["data"].as_array().map(Vec::len).unwrap_or(0),
        0,
        "{sent}"
    );
    // An unknown DocId is "not found", in the SDK's shape.
    let r = recipient.update_status("no-such-document", "done").await;
    assert_eq!(r.json()["status"], "FAIL");
    assert_eq!(r.json()["ErrorCode"], "201");

    net.stop().await.unwrap();
}
