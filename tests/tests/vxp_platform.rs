//! Tests of the VXP platform stand-in (`lienthong_testkit::vxp_platform`) through a real
//! HTTPS client: hyper's HTTP/1.1 client over tokio-rustls, trusting the stand-in's CA.
//!
//! The client side here is written again from `/work/shared/reference/vxp-rest.md` §1, as
//! the Java SDK behaves: its header map iterated in Java `HashMap` order, the Gson
//! sign-header, HMAC-SHA256 with the secret's literal bytes, sendEdoc's body (file +
//! CRLF) and unpadded hash-file. It uses neither the stand-in's helpers nor our VXP
//! client.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;
use lienthong_testkit::vxp_platform::{
    AgencySpec, DeliveryStatus, Platform, PlatformConfig, SystemSpec,
};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject as _;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};

// ---------------------------------------------------------------------------------------
// The platform under test
// ---------------------------------------------------------------------------------------

const SYS_A: &str = "SYS-A";
const SYS_B: &str = "SYS-B";
/// Secrets that look like base64: the SDK uses the literal bytes, never decoded (§1).
const SECRET_A: &str = "c2VjcmV0LWE=";
const SECRET_B: &str = "c2VjcmV0LWI=";
/// Served by system A.
const G22: &str = "000.00.00.G22";
/// Served by system B.
const H41: &str = "000.00.00.H41";
const H14: &str = "000.00.00.H14";
/// Known to the directory, served by no system.
const G17: &str = "000.00.00.G17";
const UNKNOWN: &str = "999.99.99.X99";

struct Fixture {
    platform: Platform,
    _dir: tempfile::TempDir,
}

async fn start() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let mut config = PlatformConfig::new(dir.path());
    config.systems = vec![
        SystemSpec::new(
            SYS_A,
            SECRET_A,
            [AgencySpec::new(G22, "Văn phòng Chính phủ")],
        ),
        SystemSpec::new(
            SYS_B,
            SECRET_B,
            [
                AgencySpec::new(H41, "UBND Tỉnh Nghệ An"),
                AgencySpec::new(H14, "UBND Tỉnh Cao Bằng").with_old_code("28.22.H17"),
            ],
        ),
    ];
    config.extra_agencies = vec![AgencySpec::new(G17, "Sở Thông tin truyền thông Hải Phòng")];
    let platform = Platform::start(config).await.unwrap();
    Fixture {
        platform,
        _dir: dir,
    }
}

impl Fixture {
    fn sdk(&self, system_id: &str, secret: &str) -> Sdk {
        Sdk::new(
            self.platform.url(),
            self.platform.ca_pem_path(),
            system_id,
            secret,
        )
    }
    fn a(&self) -> Sdk {
        self.sdk(SYS_A, SECRET_A)
    }
    fn b(&self) -> Sdk {
        self.sdk(SYS_B, SECRET_B)
    }
    fn last_request(&self) -> lienthong_testkit::vxp_platform::RequestRecord {
        self.platform.requests().pop().unwrap()
    }
}

// ---------------------------------------------------------------------------------------
// The SDK's side of §1, written again
// ---------------------------------------------------------------------------------------

/// `String.hashCode()` of Java.
fn java_string_hash(s: &str) -> u32 {
    s.encode_utf16().fold(0i32, |h, unit| {
        h.wrapping_mul(31).wrapping_add(i32::from(unit))
    }) as u32
}

/// The order a `java.util.HashMap<String,String>` iterates keys inserted in `keys` order
/// (no removals): by bucket (`(h ^ h >>> 16) & (capacity - 1)`, capacity 16 doubling past
/// a 0.75 load), then by insertion within a bucket (a resize keeps that relative order).
fn java_hashmap_order<'k>(keys: &[&'k str]) -> Vec<&'k str> {
    let mut capacity = 16usize;
    while keys.len() * 4 > capacity * 3 {
        capacity *= 2;
    }
    let mut ordered: Vec<(usize, usize, &str)> = (keys.iter().enumerate())
        .map(|(i, key)| {
            let h = java_string_hash(key);
            (((h ^ (h >> 16)) as usize) & (capacity - 1), i, *key)
        })
        .collect();
    ordered.sort();
    ordered.into_iter().map(|(_, _, key)| key).collect()
}

/// Lowercase hex of HMAC-SHA256(secret's UTF-8 bytes, sign-header's UTF-8 bytes).
fn hmac_hex(secret: &str, sign_header: &str) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    hex::encode(ring::hmac::sign(&key, sign_header.as_bytes()).as_ref())
}

/// `Integer.toHexString(0xff & b)` per byte of the SHA-256: no zero padding (§2.1).
fn hash_file(file: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, file);
    digest.as_ref().iter().map(|b| format!("{b:x}")).collect()
}

fn padded_hash(file: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, file).as_ref())
}

static TIMESTAMPS: AtomicU32 = AtomicU32::new(0);

/// One SDK service object: its timestamp is taken once, at construction (§1).
struct Sdk {
    addr: SocketAddr,
    base_path: String,
    tls: tokio_rustls::TlsConnector,
    system_id: String,
    secret: String,
    timestamp: String,
}

#[derive(Debug)]
struct Reply {
    status: u16,
    content_type: String,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// Asserts the §3 envelope (ASCII-only, no null anywhere, the three fields as
    /// strings) and returns the JSON.
    #[track_caller]
    fn envelope(&self) -> Value {
        assert!(
            self.body.is_ascii(),
            "the JSON must be ASCII-only: {}",
            String::from_utf8_lossy(&self.body)
        );
        let json = self.json();
        assert!(!contains_null(&json), "JSON null in {json}");
        for key in ["status", "ErrorCode", "ErrorDesc"] {
            assert!(json[key].is_string(), "{key} missing in {json}");
        }
        json
    }

    #[track_caller]
    fn ok(&self) -> Value {
        let json = self.envelope();
        assert_eq!(json["status"], "OK", "{json}");
        assert_eq!(json["ErrorCode"], "0", "{json}");
        json
    }

    #[track_caller]
    fn fail(&self) -> Value {
        let json = self.envelope();
        assert_eq!(json["status"], "FAIL", "{json}");
        assert_ne!(json["ErrorCode"], "0", "{json}");
        assert!(!json["ErrorDesc"].as_str().unwrap().is_empty(), "{json}");
        json
    }
}

fn contains_null(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Array(items) => items.iter().any(contains_null),
        Value::Object(members) => members.values().any(contains_null),
        _ => false,
    }
}

impl Sdk {
    fn new(url: &str, ca_pem: &Path, system_id: &str, secret: &str) -> Sdk {
        let uri: http::Uri = url.parse().unwrap();
        assert_eq!(uri.scheme_str(), Some("https"));
        let addr: SocketAddr = uri.authority().unwrap().as_str().parse().unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_file(ca_pem).unwrap())
            .unwrap();
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        let n = TIMESTAMPS.fetch_add(1, Ordering::SeqCst);
        Sdk {
            addr,
            base_path: uri.path().to_owned(),
            tls: tokio_rustls::TlsConnector::from(Arc::new(config)),
            system_id: system_id.to_owned(),
            secret: secret.to_owned(),
            // ddMMyyyy'T'HHmmss+SSSS: +SSSS is milliseconds, not a zone.
            timestamp: format!("05122026T0759{:02}+{:04}", n % 60, n % 1000),
        }
    }

    /// The headers the SDK sends for a call with `params` (in the caller's JSON order).
    fn headers(&self, content_type: &str, params: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut map: Vec<(&str, &str)> = vec![
            ("systemid", &self.system_id),
            ("timestamp", &self.timestamp),
            ("Content-Type", content_type),
        ];
        map.extend_from_slice(params);
        let keys: Vec<&str> = map.iter().map(|(k, _)| *k).collect();
        let order = java_hashmap_order(&keys);
        let value = |key: &str| map.iter().find(|(k, _)| *k == key).unwrap().1;
        let sign_header = format!(
            "{{{}}}",
            order
                .iter()
                .map(|k| format!(
                    "{}:{}",
                    serde_json::to_string(&format!("XroadVnpt-{k}")).unwrap(),
                    serde_json::to_string(value(k)).unwrap()
                ))
                .collect::<Vec<_>>()
                .join(",")
        );
        let mut headers: Vec<(String, String)> = order
            .iter()
            .map(|k| (format!("XroadVnpt-{k}"), value(k).to_owned()))
            .collect();
        headers.push(("Content-Type".into(), content_type.into()));
        headers.push(("XroadVnpt-sign-header-key".into(), order.join(";")));
        headers.push((
            "XroadVnpt-hash-header".into(),
            hmac_hex(&self.secret, &sign_header),
        ));
        headers.push(("XroadVnpt-sign-header".into(), sign_header));
        headers.push(("User-Agent".into(), "JAVASDKAgent/1.0.0 XRoad/VPCP".into()));
        headers.push(("XroadVnpt-version".into(), "3.0.201608".into()));
        headers
    }

    /// One HTTP/1.1 exchange over a fresh TLS connection.
    async fn raw(
        &self,
        method: &str,
        op: &str,
        headers: &[(String, String)],
        body: Vec<u8>,
    ) -> Reply {
        let tcp = tokio::net::TcpStream::connect(self.addr).await.unwrap();
        let tls = self
            .tls
            .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
            .await
            .unwrap();
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .unwrap();
        tokio::spawn(connection);
        let mut request = http::Request::builder()
            .method(method)
            .uri(format!("{}/{op}", self.base_path))
            .header("Host", self.addr.to_string());
        for (name, value) in headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let response = sender
            .send_request(request.body(Full::new(Bytes::from(body))).unwrap())
            .await
            .unwrap();
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        Reply {
            status,
            content_type,
            body: body.to_vec(),
        }
    }

    /// A JSON operation (every one but sendEdoc), its body as the SDK sends it.
    async fn call(&self, op: &str, params: &[(&str, &str)]) -> Reply {
        let body = match op {
            "countReceiveEdoc" | "countReceiveStatus" | "getEdoc" | "updateStatus" => {
                b"{}".to_vec()
            }
            _ => Vec::new(),
        };
        let headers = self.headers("application/json", params);
        self.raw("POST", op, &headers, body).await
    }

    /// sendEdoc as the SDK does it: body = file + CRLF, unpadded hash-file signed.
    async fn send(&self, from: &str, message_type: &str, file: &[u8]) -> Reply {
        self.send_with(from, message_type, file, &hash_file(file), None, None)
            .await
    }

    /// sendEdoc with the hash-file, the body and the `to` header chosen by the test.
    async fn send_with(
        &self,
        from: &str,
        message_type: &str,
        file: &[u8],
        hash: &str,
        body: Option<Vec<u8>>,
        to: Option<&str>,
    ) -> Reply {
        let mut params = vec![
            ("from", from),
            ("servicetype", "eDoc"),
            ("messagetype", message_type),
            ("hash-file", hash),
        ];
        if let Some(to) = to {
            params.push(("to", to));
        }
        let headers = self.headers("application/octet-stream", &params);
        let body = body.unwrap_or_else(|| [file, b"\r\n"].concat());
        self.raw("POST", "sendEdoc", &headers, body).await
    }

    async fn list(&self, message_type: &str) -> Vec<Value> {
        let reply = self
            .call(
                "getReceivedEdocList",
                &[("servicetype", "eDoc"), ("messagetype", message_type)],
            )
            .await;
        reply.ok()["data"].as_array().unwrap().clone()
    }

    async fn get_edoc(&self, doc_id: &str) -> Reply {
        self.call("getEdoc", &[("filePath", "/tmp/dms"), ("docId", doc_id)])
            .await
    }

    async fn update(&self, doc_id: &str, status: &str) -> Reply {
        self.call("updateStatus", &[("status", status), ("docId", doc_id)])
            .await
    }
}

// ---------------------------------------------------------------------------------------
// edXML fixtures (CRLF, `edXML:` prefix on the envelope, Vietnamese text, like the samples)
// ---------------------------------------------------------------------------------------

fn edoc_with_prefix(prefix: &str, from: &str, to: &[&str], subject: &str) -> Vec<u8> {
    let p = prefix;
    let to: String = to
        .iter()
        .map(|code| {
            format!(
                "        <{p}To>\r\n          <{p}OrganId>{code}</{p}OrganId>\r\n          <{p}OrganName>Đơn vị nhận</{p}OrganName>\r\n        </{p}To>\r\n"
            )
        })
        .collect();
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n<edXML xmlns=\"http://www.mic.gov.vn/TBT/QCVN_102_2016\">\r\n  <{p}edXMLEnvelope xmlns:{ns}=\"http://www.mic.gov.vn/TBT/QCVN_102_2016\">\r\n    <{p}edXMLHeader>\r\n      <{p}MessageHeader>\r\n        <{p}From>\r\n          <{p}OrganId>{from}</{p}OrganId>\r\n          <{p}OrganName>Văn phòng Chính phủ</{p}OrganName>\r\n        </{p}From>\r\n{to}        <{p}Code>\r\n          <{p}CodeNumber>12</{p}CodeNumber>\r\n          <{p}CodeNotation>VPCP-TTĐT</{p}CodeNotation>\r\n        </{p}Code>\r\n        <{p}Subject>{subject}</{p}Subject>\r\n        <{p}ResponseFor>\r\n          <{p}OrganId></{p}OrganId>\r\n        </{p}ResponseFor>\r\n      </{p}MessageHeader>\r\n      <{p}TraceHeaderList>\r\n        <{p}TraceHeader>\r\n          <{p}OrganId>{UNKNOWN}</{p}OrganId>\r\n        </{p}TraceHeader>\r\n      </{p}TraceHeaderList>\r\n    </{p}edXMLHeader>\r\n  </{p}edXMLEnvelope>\r\n  <AttachmentEncoded><Attachment><ContentId>cid:1</ContentId><Value>UEsDBBQAAAAIAA==</Value></Attachment></AttachmentEncoded>\r\n</edXML>\r\n",
        ns = prefix.trim_end_matches(':'),
    )
    .into_bytes()
}

fn edoc(from: &str, to: &[&str], subject: &str) -> Vec<u8> {
    edoc_with_prefix("edXML:", from, to, subject)
}

/// A status as in `status_*.edxml`: `From` the organisation reporting, `ResponseFor` the
/// original document's reference and the addressee.
fn status(from: &str, response_for: &str, code: &str) -> Vec<u8> {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n<edXML xmlns=\"http://www.mic.gov.vn/TBT/QCVN_102_2016\">\r\n  <edXML:edXMLEnvelope xmlns:edXML=\"http://www.mic.gov.vn/TBT/QCVN_102_2016\">\r\n    <edXML:edXMLHeader>\r\n      <edXML:MessageHeader>\r\n        <edXML:From>\r\n\t\t\t<edXML:OrganId>{from}</edXML:OrganId>\r\n\t\t\t<edXML:OrganName>UBND Tỉnh Nghệ An</edXML:OrganName>\r\n        </edXML:From>\r\n        <edXML:ResponseFor>\r\n\t\t\t<edXML:OrganId>{response_for}</edXML:OrganId>\r\n\t\t\t<edXML:Code>7816/VPCP-TTĐT</edXML:Code>\r\n\t\t\t<edXML:DocumentId>000.00.00.G22,2015/09/30,7816/VPCP-TTĐT</edXML:DocumentId>\r\n        </edXML:ResponseFor>\r\n        <edXML:StatusCode>{code}</edXML:StatusCode>\r\n        <edXML:Description>Văn thư: Tiếp nhận văn bản điện tử</edXML:Description>\r\n        <edXML:Timestamp>2015/09/20 11:08:36</edXML:Timestamp>\r\n      </edXML:MessageHeader>\r\n    </edXML:edXMLHeader>\r\n  </edXML:edXMLEnvelope>\r\n</edXML>\r\n"
    )
    .into_bytes()
}

fn doc_id(reply: &Reply) -> String {
    let json = reply.ok();
    let doc_id = json["DocId"].as_str().unwrap().to_owned();
    assert!(!doc_id.is_empty());
    doc_id
}

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

/// §1's worked example: the test's HMAC and HashMap order reproduce it, and the platform
/// accepts exactly those recorded headers (and the hash-header in upper case).
#[tokio::test]
async fn the_worked_example_of_section_1_is_accepted() {
    let sign_header = r#"{"XroadVnpt-systemid":"000.00.00.H41","XroadVnpt-timestamp":"05122026T075928+0200","XroadVnpt-Content-Type":"application/json"}"#;
    let mac = "17bf2a0735f9a10d057d93daa3128dee4d94c00be374e182731eb60dc3bfa1fd";
    assert_eq!(hmac_hex("test-secret", sign_header), mac);
    assert_eq!(
        java_hashmap_order(&["systemid", "timestamp", "Content-Type"]).join(";"),
        "systemid;timestamp;Content-Type"
    );
    assert_eq!(
        java_hashmap_order(&[
            "systemid",
            "timestamp",
            "Content-Type",
            "from",
            "servicetype",
            "messagetype",
            "hash-file"
        ])
        .join(";"),
        "systemid;servicetype;messagetype;hash-file;from;timestamp;Content-Type"
    );

    let dir = tempfile::tempdir().unwrap();
    let mut config = PlatformConfig::new(dir.path());
    config.systems = vec![SystemSpec::new(
        "000.00.00.H41",
        "test-secret",
        [AgencySpec::new(H41, "UBND Tỉnh Nghệ An")],
    )];
    let platform = Platform::start(config).await.unwrap();
    let sdk = Sdk::new(
        platform.url(),
        platform.ca_pem_path(),
        "000.00.00.H41",
        "test-secret",
    );
    for hash_header in [mac.to_owned(), mac.to_uppercase()] {
        let headers: Vec<(String, String)> = [
            ("XroadVnpt-systemid", "000.00.00.H41"),
            ("XroadVnpt-timestamp", "05122026T075928+0200"),
            ("XroadVnpt-Content-Type", "application/json"),
            ("Content-Type", "application/json"),
            (
                "XroadVnpt-sign-header-key",
                "systemid;timestamp;Content-Type",
            ),
            ("XroadVnpt-sign-header", sign_header),
            ("XroadVnpt-hash-header", &hash_header),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let reply = sdk
            .raw("POST", "getAgenciesList", &headers, Vec::new())
            .await;
        let json = reply.ok();
        assert_eq!(json["data"][0]["code"], H41);
    }
    let log = platform.requests();
    assert_eq!(log.len(), 2);
    assert!(
        log.iter()
            .all(|r| r.hmac_ok && r.headers_ok && r.status == "OK")
    );
    platform.shutdown().await;
}

/// A → B: listed for B only, getEdoc gives the exact bytes, `done` removes it, repeats
/// are idempotent, `done` is final; the ids of sender and receiver differ.
#[tokio::test]
async fn an_edoc_from_a_reaches_b_and_leaves_the_list_when_done() {
    let f = start().await;
    let (a, b) = (f.a(), f.b());
    let file = edoc(G22, &[H41], "Văn bản liên thông chỉ đạo");
    let reply = a.send(G22, "edoc", &file).await;
    assert!(
        String::from_utf8_lossy(&reply.body).contains(r"Th\u00e0nh c\u00f4ng"),
        "non-ASCII must be \\u-escaped: {}",
        String::from_utf8_lossy(&reply.body)
    );
    let sent_id = doc_id(&reply);

    assert!(
        a.list("edoc").await.is_empty(),
        "A must not receive its own"
    );
    assert!(b.list("status").await.is_empty());
    let listed = b.list("edoc").await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    let item = &listed[0];
    let received_id = item["docId"].as_str().unwrap().to_owned();
    assert_ne!(received_id, sent_id, "the receiver gets its own id");
    assert_eq!(item["from"], G22);
    assert_eq!(item["to"], H41);
    assert_eq!(item["messageType"], "edoc");
    assert_eq!(item["serviceType"], "eDoc");
    for key in ["created_time", "updated_time", "status", "status_desc"] {
        assert!(item[key].is_string(), "{key} in {item}");
    }
    let count = b.call("countReceiveEdoc", &[]).await.ok();
    assert_eq!(count["count"], 1);

    // Only the receiver can fetch it, and only by the received id.
    a.get_edoc(&received_id).await.fail();
    b.get_edoc(&sent_id).await.fail();
    let got = b.get_edoc(&received_id).await.ok();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(got["data"].as_str().unwrap())
        .unwrap();
    assert_eq!(
        bytes, file,
        "getEdoc must give the exact file, without the CRLF"
    );

    b.update(&received_id, "done").await.ok();
    assert!(b.list("edoc").await.is_empty(), "done leaves the list");
    assert_eq!(b.call("countReceiveEdoc", &[]).await.ok()["count"], 0);
    // A re-sent acknowledgement is OK, with the key in another case (§1 point 6).
    b.call(
        "updateStatus",
        &[("status", "done"), ("docid", &received_id)],
    )
    .await
    .ok();
    assert!(f.last_request().duplicate);
    // done is final.
    b.update(&received_id, "processing").await.fail();
    // Someone else's document cannot be acknowledged.
    a.update(&received_id, "done").await.fail();

    let mailbox = f.platform.mailbox(SYS_B);
    assert_eq!(mailbox.len(), 1);
    assert_eq!(mailbox[0].bytes, file);
    assert_eq!(mailbox[0].status, DeliveryStatus::Done);
    assert_eq!(
        mailbox[0].updates,
        [DeliveryStatus::Done, DeliveryStatus::Done]
    );
    assert_eq!(mailbox[0].fetches, 1);
    assert!(f.platform.mailbox(SYS_A).is_empty());
    let sent = f.platform.sent_by(SYS_A);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].doc_id, sent_id);
    assert_eq!(sent[0].edxml_from.as_deref(), Some(G22));
    assert_eq!(sent[0].deliveries.len(), 1);
    assert_eq!(sent[0].deliveries[0].system_id, SYS_B);
    assert_eq!(sent[0].deliveries[0].doc_id, received_id);

    // The sender sees the delivery.
    let report = a
        .call(
            "getSentEdocList",
            &[
                ("servicetype", "eDoc"),
                ("messagetype", "edoc"),
                ("docId", &sent_id),
            ],
        )
        .await
        .ok();
    let data = report["data"].as_array().unwrap();
    assert_eq!(data.len(), 1);
    assert_eq!(data[0]["senderDocId"], sent_id.as_str());
    assert_eq!(data[0]["receiverDocId"], received_id.as_str());
    assert_eq!(data[0]["receiveStatus"], "done");
    assert_eq!(data[0]["toCode"], H41);
    // B did not send it.
    b.call("getSentEdocList", &[("docId", &sent_id)])
        .await
        .fail();
}

/// A status goes to its `ResponseFor/OrganId`: the receiver's feedback back to the
/// original sender, a cancellation request (13) from the sender to the receiver.
#[tokio::test]
async fn a_status_routes_by_response_for() {
    let f = start().await;
    let (a, b) = (f.a(), f.b());
    doc_id(&a.send(G22, "edoc", &edoc(G22, &[H41], "Công văn")).await);

    let feedback = status(H41, G22, "03");
    let sent = doc_id(&b.send(H41, "status", &feedback).await);
    let statuses = a.list("status").await;
    assert_eq!(statuses.len(), 1, "{statuses:?}");
    assert_eq!(statuses[0]["messageType"], "status");
    assert_eq!(statuses[0]["from"], H41);
    assert_ne!(statuses[0]["docId"], sent.as_str());
    assert!(a.list("edoc").await.is_empty(), "a status is not an edoc");
    assert!(b.list("status").await.is_empty(), "not back to its sender");
    let got = a
        .get_edoc(statuses[0]["docId"].as_str().unwrap())
        .await
        .ok();
    assert_eq!(
        base64::engine::general_purpose::STANDARD
            .decode(got["data"].as_str().unwrap())
            .unwrap(),
        feedback
    );

    // Status 13: From the original sender, ResponseFor the original receiver.
    doc_id(&a.send(G22, "status", &status(G22, H14, "13")).await);
    let to_b = b.list("status").await;
    assert_eq!(to_b.len(), 1);
    assert_eq!(to_b[0]["to"], H14);

    // A status with an empty ResponseFor/OrganId has no addressee.
    let reply = b.send(H41, "status", &status(H41, "", "05")).await;
    let json = reply.fail();
    assert_eq!(json["DocId"], "");
    assert_eq!(f.platform.mailbox(SYS_A).len(), 1);
}

/// §1: a retry carries byte-identical headers; it gets the same DocId and is delivered
/// once. A new service object (a new timestamp) sending the same file is a new message.
#[tokio::test]
async fn an_identical_resend_gets_the_same_doc_id_and_is_delivered_once() {
    let f = start().await;
    let a = f.a();
    let file = edoc(G22, &[H41, H14], "Gửi lại");
    let first = doc_id(&a.send(G22, "edoc", &file).await);
    let again = doc_id(&a.send(G22, "edoc", &file).await);
    assert_eq!(first, again);
    assert!(f.last_request().duplicate);
    let mailbox = f.platform.mailbox(SYS_B);
    assert_eq!(
        mailbox.len(),
        1,
        "delivered once to B (for both its agencies)"
    );
    assert_eq!(mailbox[0].to, [H41, H14]);
    assert_eq!(f.platform.sent_by(SYS_A)[0].resends, 1);
    assert_eq!(f.b().list("edoc").await.len(), 1);

    // The same file from a fresh SDK object: new timestamp, new sign-header, new message.
    let other = doc_id(&f.a().send(G22, "edoc", &file).await);
    assert_ne!(other, first);
    assert_eq!(f.platform.mailbox(SYS_B).len(), 2);
    assert_eq!(f.platform.sent_by(SYS_A).len(), 2);
}

/// A wrong secret, a signed value that differs from its header, a reordered
/// sign-header-key and an unknown system are all refused, delivered nowhere, and logged
/// with the right flags.
#[tokio::test]
async fn a_bad_signature_is_refused_and_logged() {
    let f = start().await;
    let file = edoc(G22, &[H41], "Giả mạo");

    // Wrong secret.
    let reply = f.sdk(SYS_A, SECRET_B).send(G22, "edoc", &file).await;
    assert_eq!(reply.fail()["DocId"], "", "DocId even on errors (§3)");
    let record = f.last_request();
    assert_eq!(record.op, "sendEdoc");
    assert_eq!(record.system_id, SYS_A);
    assert!(!record.hmac_ok);
    assert!(record.headers_ok);
    assert!(record.reason.unwrap().contains("HMAC"));

    // The secret is not base64-decoded.
    let decoded = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(SECRET_A)
            .unwrap(),
    )
    .unwrap();
    f.sdk(SYS_A, &decoded).send(G22, "edoc", &file).await.fail();
    assert!(!f.last_request().hmac_ok);

    // A correct MAC, but a header changed after signing.
    let a = f.a();
    let mut headers = a.headers(
        "application/octet-stream",
        &[
            ("from", G22),
            ("servicetype", "eDoc"),
            ("messagetype", "edoc"),
            ("hash-file", &hash_file(&file)),
        ],
    );
    for (name, value) in &mut headers {
        if name == "XroadVnpt-messagetype" {
            *value = "status".into();
        }
    }
    let body = [file.as_slice(), b"\r\n"].concat();
    a.raw("POST", "sendEdoc", &headers, body.clone())
        .await
        .fail();
    let record = f.last_request();
    assert!(record.hmac_ok);
    assert!(!record.headers_ok);
    assert!(record.reason.unwrap().contains("XroadVnpt-messagetype"));

    // sign-header-key sorted instead of in the signed (HashMap) order.
    let mut headers = a.headers(
        "application/json",
        &[("servicetype", "eDoc"), ("messagetype", "edoc")],
    );
    for (name, value) in &mut headers {
        if name == "XroadVnpt-sign-header-key" {
            let mut keys: Vec<&str> = value.split(';').collect();
            keys.sort();
            *value = keys.join(";");
        }
    }
    a.raw("POST", "getReceivedEdocList", &headers, Vec::new())
        .await
        .fail();
    assert!(!f.last_request().headers_ok);

    // An unknown system.
    f.sdk("SYS-X", SECRET_A)
        .call("getAgenciesList", &[])
        .await
        .fail();
    let record = f.last_request();
    assert_eq!(record.system_id, "SYS-X");
    assert!(!record.hmac_ok);
    assert!(record.reason.unwrap().contains("unknown system"));

    // No headers at all.
    a.raw("POST", "getAgenciesList", &[], Vec::new())
        .await
        .fail();

    assert!(f.platform.mailbox(SYS_B).is_empty());
    assert!(f.platform.sent_by(SYS_A).is_empty());
    // And the well-signed request still works.
    doc_id(&a.send(G22, "edoc", &file).await);
    assert!(f.last_request().hmac_ok && f.last_request().headers_ok);
}

/// §2.1: hash-file is the unpadded hex SHA-256 of the body minus one CRLF. A padded hash,
/// a hash over the CRLF too, or a body without the CRLF are refused without delivery.
#[tokio::test]
async fn a_wrong_hash_file_is_refused() {
    let f = start().await;
    let a = f.a();
    // A file whose SHA-256 has a byte below 0x10, so the padded and unpadded forms differ.
    let file = (0..)
        .map(|i| edoc(G22, &[H41], &format!("Băm {i}")))
        .find(|file| hash_file(file).len() < 64)
        .unwrap();
    assert_ne!(hash_file(&file), padded_hash(&file));

    let padded = a
        .send_with(G22, "edoc", &file, &padded_hash(&file), None, None)
        .await;
    assert_eq!(padded.fail()["DocId"], "");
    let with_crlf = [file.as_slice(), b"\r\n"].concat();
    a.send_with(G22, "edoc", &file, &hash_file(&with_crlf), None, None)
        .await
        .fail();
    a.send_with(
        G22,
        "edoc",
        &file,
        &hash_file(&file),
        Some(file.clone()),
        None,
    )
    .await
    .fail();
    let record = f.last_request();
    assert!(record.hmac_ok && record.headers_ok);
    assert!(record.reason.unwrap().contains("CRLF"));
    assert!(f.platform.mailbox(SYS_B).is_empty());

    doc_id(&a.send(G22, "edoc", &file).await);
    assert_eq!(f.platform.mailbox(SYS_B)[0].bytes, file);
}

/// An OrganId the directory does not know refuses the whole message; one known without a
/// system is accepted and delivered nowhere; the `to` header adds addressees; the
/// namespace prefix does not matter; `from` must be the caller's agency.
#[tokio::test]
async fn unknown_organ_ids_are_refused_and_the_to_header_adds_addressees() {
    let f = start().await;
    let a = f.a();

    let json = a
        .send(G22, "edoc", &edoc(G22, &[H41, UNKNOWN], "Sai mã"))
        .await
        .fail();
    assert_eq!(json["DocId"], "");
    assert!(
        json["ErrorDesc"].as_str().unwrap().contains(UNKNOWN),
        "{json}"
    );
    let file = edoc(G22, &[G17], "Ngoài hệ thống");
    let json = a
        .send_with(
            G22,
            "edoc",
            &file,
            &hash_file(&file),
            None,
            Some(&format!("[\"{UNKNOWN}\"]")),
        )
        .await
        .fail();
    assert!(
        json["ErrorDesc"].as_str().unwrap().contains(UNKNOWN),
        "{json}"
    );
    assert!(f.platform.mailbox(SYS_B).is_empty(), "nothing delivered");
    assert!(f.platform.sent_by(SYS_A).is_empty());

    // G17 is in the directory without a system: accepted, delivered nowhere.
    doc_id(&a.send(G22, "edoc", &file).await);
    let sent = f.platform.sent_by(SYS_A);
    assert_eq!(sent[0].undelivered, [G17]);
    assert!(sent[0].deliveries.is_empty());

    // The to header (raw JSON array) adds H14, served by B.
    let file = edoc(G22, &[G17], "Thêm người nhận");
    doc_id(
        &a.send_with(
            G22,
            "edoc",
            &file,
            &hash_file(&file),
            None,
            Some(&format!("[\"{H14}\"]")),
        )
        .await,
    );
    let mailbox = f.platform.mailbox(SYS_B);
    assert_eq!(mailbox.len(), 1);
    assert_eq!(mailbox[0].to, [H14]);

    // Another prefix (and none on the root) is read the same way.
    let file = edoc_with_prefix("vb:", G22, &[H41], "Tiền tố khác");
    doc_id(&a.send(G22, "edoc", &file).await);
    assert_eq!(f.platform.mailbox(SYS_B)[1].to, [H41]);

    // Not edXML at all.
    a.send(G22, "edoc", b"not xml").await.fail();
    // A sends for G22 only.
    a.send(H41, "edoc", &edoc(H41, &[H14], "Mạo danh"))
        .await
        .fail();
    assert_eq!(f.platform.mailbox(SYS_B).len(), 2);
}

/// `processing` keeps an item listed, `fail` drops it (and is final).
#[tokio::test]
async fn processing_keeps_an_item_listed_and_fail_drops_it() {
    let f = start().await;
    let (a, b) = (f.a(), f.b());
    doc_id(&a.send(G22, "edoc", &edoc(G22, &[H41], "Một")).await);
    doc_id(&a.send(G22, "edoc", &edoc(G22, &[H41], "Hai")).await);
    let listed = b.list("edoc").await;
    assert_eq!(listed.len(), 2);
    let (one, two) = (
        listed[0]["docId"].as_str().unwrap().to_owned(),
        listed[1]["docId"].as_str().unwrap().to_owned(),
    );
    b.update(&one, "processing").await.ok();
    b.update(&two, "fail").await.ok();
    b.update(&two, "bogus").await.fail();
    let listed = b.list("edoc").await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["docId"], one.as_str());
    assert_eq!(listed[0]["status"], "processing");
    b.update(&two, "done").await.fail();
    b.update(&one, "done").await.ok();
    assert!(b.list("edoc").await.is_empty());
    let statuses: Vec<DeliveryStatus> = f
        .platform
        .mailbox(SYS_B)
        .iter()
        .map(|item| item.status)
        .collect();
    assert_eq!(statuses, [DeliveryStatus::Done, DeliveryStatus::Fail]);
}

/// While down, every request gets a 503 HTML page (the SDK's getReceivedEdocList reads
/// it as an empty OK list); nothing is delivered; it serves again once up.
#[tokio::test]
async fn while_down_every_answer_is_a_503_html_page() {
    let f = start().await;
    let (a, b) = (f.a(), f.b());
    f.platform.set_down(true);
    for reply in [
        a.send(G22, "edoc", &edoc(G22, &[H41], "Mất kết nối")).await,
        b.call(
            "getReceivedEdocList",
            &[("servicetype", "eDoc"), ("messagetype", "edoc")],
        )
        .await,
        b.call("getAgenciesList", &[]).await,
    ] {
        assert_eq!(reply.status, 503);
        assert!(reply.content_type.starts_with("text/html"), "{reply:?}");
        assert!(reply.body.starts_with(b"<html>"));
        assert!(serde_json::from_slice::<Value>(&reply.body).is_err());
    }
    assert!(f.platform.mailbox(SYS_B).is_empty());
    let log = f.platform.requests();
    assert_eq!(log.len(), 3);
    assert!(
        log.iter()
            .all(|r| r.status == "DOWN" && r.http_status == 503)
    );

    f.platform.set_down(false);
    assert_eq!(b.call("getAgenciesList", &[]).await.status, 200);
}

/// getAgenciesList lists every agency of every system and the extra ones, with oldCode
/// only where configured; getAgenciesListQD20 adds code102. Names arrive \u-escaped.
#[tokio::test]
async fn the_agency_lists() {
    let f = start().await;
    let a = f.a();
    let reply = a.call("getAgenciesList", &[]).await;
    let json = reply.ok();
    assert!(String::from_utf8_lossy(&reply.body).contains(r"V\u0103n ph\u00f2ng"));
    let data = json["data"].as_array().unwrap();
    let codes: Vec<&str> = data.iter().map(|d| d["code"].as_str().unwrap()).collect();
    assert_eq!(codes, [G22, H41, H14, G17]);
    assert_eq!(data[0]["name"], "Văn phòng Chính phủ");
    assert_eq!(data[3]["name"], "Sở Thông tin truyền thông Hải Phòng");
    assert_eq!(data[2]["oldCode"], "28.22.H17");
    assert!(
        data[0].get("oldCode").is_none(),
        "absent, not null: {}",
        data[0]
    );
    assert!(data.iter().all(|d| d["id"].is_string()));
    let mut ids: Vec<&str> = data.iter().map(|d| d["id"].as_str().unwrap()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 4);

    let json = a.call("getAgenciesListQD20", &[("level", "1")]).await.ok();
    let data = json["data"].as_array().unwrap();
    assert_eq!(data.len(), 4);
    for item in data {
        assert_eq!(item["code102"], item["code"]);
        assert!(item["name"].is_string());
    }
}

/// Unknown operations are 404 with the FAIL envelope; a known one with the wrong method
/// is refused too, sendEdoc still with a DocId.
#[tokio::test]
async fn unknown_operations_get_a_fail_json() {
    let f = start().await;
    let a = f.a();
    let reply = a.call("registerAgency", &[]).await;
    assert_eq!(reply.status, 404);
    reply.fail();
    assert_eq!(f.last_request().op, "registerAgency");
    let headers = a.headers("application/json", &[]);
    let reply = a.raw("GET", "sendEdoc", &headers, Vec::new()).await;
    assert_eq!(reply.status, 405);
    assert_eq!(reply.fail()["DocId"], "");
}

/// Apache HttpClient sends `Expect: 100-continue` with a body (§1): the platform answers
/// `100 Continue` before the body is sent, then the real answer.
#[tokio::test]
async fn expect_100_continue_is_answered() {
    let f = start().await;
    let a = f.a();
    let headers = a.headers("application/json", &[]);
    let tcp = tokio::net::TcpStream::connect(a.addr).await.unwrap();
    let mut tls = a
        .tls
        .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await
        .unwrap();
    let mut head = format!(
        "POST {}/countReceiveEdoc HTTP/1.1\r\nHost: {}\r\nContent-Length: 2\r\nExpect: 100-continue\r\n",
        a.base_path, a.addr
    );
    for (name, value) in &headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    tls.write_all(head.as_bytes()).await.unwrap();
    let mut interim = Vec::new();
    let mut byte = [0u8; 1];
    while !interim.ends_with(b"\r\n\r\n") {
        tokio::time::timeout(Duration::from_secs(2), tls.read_exact(&mut byte))
            .await
            .expect("no 100 Continue before the body")
            .unwrap();
        interim.push(byte[0]);
    }
    assert!(
        interim.starts_with(b"HTTP/1.1 100"),
        "{}",
        String::from_utf8_lossy(&interim)
    );
    tls.write_all(b"{}").await.unwrap();
    let mut rest = vec![0u8; 4096];
    let n = tls.read(&mut rest).await.unwrap();
    let text = String::from_utf8_lossy(&rest[..n]);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains(r#""count":0"#), "{text}");
}

/// The binary prints `platform <URL> <CA PEM path>`, serves, logs each request on stderr
/// and exits when its standard input closes.
#[tokio::test]
async fn the_binary_serves_until_stdin_closes() {
    let dir = tempfile::tempdir().unwrap();
    let secret_a = dir.path().join("a.secret");
    let secret_b = dir.path().join("b.secret");
    std::fs::write(&secret_a, format!("{SECRET_A}\n")).unwrap();
    std::fs::write(&secret_b, SECRET_B).unwrap();
    let data: PathBuf = dir.path().join("platform");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_vxp-platform"))
        .arg("--dir")
        .arg(&data)
        .arg("--system")
        .arg(format!("{SYS_A}:{}:{G22}", secret_a.display()))
        .arg("--system")
        .arg(format!(
            "{SYS_B}:{}:{H41},{H14}=UBND Tỉnh Cao Bằng",
            secret_b.display()
        ))
        .arg("--agency")
        .arg(format!("{G17}=Sở TTTT Hải Phòng"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdout = tokio::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    tokio::time::timeout(Duration::from_secs(30), stdout.read_line(&mut line))
        .await
        .unwrap()
        .unwrap();
    let parts: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(parts.len(), 3, "{line:?}");
    assert_eq!(parts[0], "platform");
    assert!(parts[1].starts_with("https://127.0.0.1:") && parts[1].ends_with("/vxp"));
    assert_eq!(Path::new(parts[2]), data.join("ca.pem"));

    let a = Sdk::new(parts[1], Path::new(parts[2]), SYS_A, SECRET_A);
    let b = Sdk::new(parts[1], Path::new(parts[2]), SYS_B, SECRET_B);
    let json = a.call("getAgenciesList", &[]).await.ok();
    let names: Vec<&str> = (json["data"].as_array().unwrap().iter())
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, [G22, H41, "UBND Tỉnh Cao Bằng", "Sở TTTT Hải Phòng"]);
    doc_id(
        &a.send(G22, "edoc", &edoc(G22, &[H14], "Qua tiến trình"))
            .await,
    );
    assert_eq!(b.list("edoc").await.len(), 1);

    drop(child.stdin.take());
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("the platform should exit when stdin closes")
        .unwrap();
    assert!(status.success());
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .await
        .unwrap();
    assert_eq!(stderr.lines().count(), 3, "{stderr}");
    assert!(
        stderr.contains("POST sendEdoc system=\"SYS-A\" hmac=ok headers=ok -> 200 OK 0"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_dir(data.join("sent")).unwrap().count(),
        1,
        "the accepted file is kept"
    );
}
