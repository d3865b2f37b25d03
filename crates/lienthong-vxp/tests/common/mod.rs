//! Shared parts of the gateway and client tests: a test PKI, a gateway on port 0 over
//! real TLS, an in-memory bus behind it, a signer written from the reference's rules
//! (independent of the crate's own), and a bare HTTP/1.1 client over TLS.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use lienthong_core::AgencyCode;
use lienthong_vxp::error::BackendError;
use lienthong_vxp::gateway::{
    EdocStream, EdocSubmission, Gateway, GatewayConfig, GatewaySettings, SystemConfig, SystemScope,
    Systems, VxpBackend,
};
use lienthong_vxp::ops::{DeliveryStatus, MessageType};
use lienthong_vxp::response::{AgencyEntry, AgencyQd20Entry, ReceivedEdoc, SentEdoc, SyncUnit};
use lienthong_vxp::{ClientConfig, Secret, VxpClient};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio::net::{TcpListener, TcpStream};

/// The sample document of the reference (VXP SDK example), From 002.00.20.H13 To
/// 000.00.15.H51, CRLF line endings, with its attachment's placeholder replaced by real
/// base64 (see `fixtures/README.md`).
pub const EDOC: &[u8] = include_bytes!("../fixtures/edoc_attachment.edxml");
/// The sample exactly as published: a JMeter placeholder where the attachment's base64
/// should be.
pub const EDOC_AS_PUBLISHED: &[u8] = include_bytes!("../fixtures/edoc.edxml");
/// The sample status 01 of the reference, From 000.00.00.H41, ResponseFor 000.00.00.G22.
pub const STATUS_01: &[u8] = include_bytes!("../fixtures/status_inbox_01.edxml");

/// `hash-file` of [`EDOC`], computed with Python: `''.join('%x' % b for b in
/// hashlib.sha256(open('edoc_attachment.edxml','rb').read()).digest())` (61 characters:
/// three bytes below 0x10 lose their leading zero).
pub const EDOC_HASH_FILE: &str = "c7dc24f5447785f65b7c6df7f48106954bc4c33fce6e031eb5651a48589d5";
/// `hash-file` of [`EDOC_AS_PUBLISHED`], computed the same way (61 characters).
pub const EDOC_AS_PUBLISHED_HASH_FILE: &str =
    "7e4a746b898d9b54749de74b58e7bd24c8b86287a386653f6593adf9db5eb";
/// `hash-file` of [`STATUS_01`], computed the same way (55 characters).
pub const STATUS_01_HASH_FILE: &str = "f51ba8b927ea8c7e6c2be88ef55b86ca859f23fbcbf9e213e23e24e";

/// The sending system: a DMS of the commune 002.00.20.H13.
pub const SENDER: &str = "dms-commune";
pub const SENDER_SECRET: &str = "c2VuZGVyLXNlY3JldA==";
pub const SENDER_AGENCY: &str = "002.00.20.H13";
/// The receiving system, acting for 000.00.15.H51 and 000.00.00.G22.
pub const RECEIVER: &str = "dms-province";
pub const RECEIVER_SECRET: &str = "bí-mật/Zm9vYmFy+==";
pub const RECEIVER_AGENCY: &str = "000.00.15.H51";
/// A system acting for 000.00.00.H41 (sends the status sample).
pub const H41: &str = "000.00.00.H41";
pub const H41_SECRET: &str = "h41-secret";

pub fn install_ring() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A self-signed certificate for localhost and 127.0.0.1.
pub struct TestPki {
    pub cert: CertificateDer<'static>,
    pub key: PrivatePkcs8KeyDer<'static>,
}

impl TestPki {
    pub fn new() -> Self {
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
            .unwrap();
        TestPki {
            cert: ck.cert.der().clone(),
            key: PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der()),
        }
    }

    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        Arc::new(
            lienthong_vxp::gateway::server_tls_config(
                vec![self.cert.clone()],
                PrivateKeyDer::Pkcs8(self.key.clone_key()),
            )
            .unwrap(),
        )
    }

    pub fn client_config(&self) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.cert.clone()).unwrap();
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
}

/// The systems of the tests.
pub fn systems() -> Systems {
    let scope = |id: &str, agencies: &[&str]| SystemScope {
        system_id: id.into(),
        agencies: agencies
            .iter()
            .map(|a| AgencyCode::parse_canonical(a).unwrap())
            .collect(),
    };
    Systems::from_entries([
        (scope(SENDER, &[SENDER_AGENCY]), Secret::new(SENDER_SECRET)),
        (
            scope(RECEIVER, &[RECEIVER_AGENCY, "000.00.00.G22"]),
            Secret::new(RECEIVER_SECRET),
        ),
        (scope(H41, &[H41]), Secret::new(H41_SECRET)),
    ])
}

pub fn settings(spool: &std::path::Path) -> GatewaySettings {
    GatewaySettings {
        max_edoc_bytes: 64 << 20,
        spool_dir: spool.to_path_buf(),
        timestamp_window: None,
        utc_offset: lienthong_vxp::timestamp::VIETNAM,
    }
}

/// What the config file of the tests' systems says (for tests that load it).
pub fn system_configs() -> Vec<SystemConfig> {
    vec![
        SystemConfig {
            id: SENDER.into(),
            agencies: vec![SENDER_AGENCY.into()],
        },
        SystemConfig {
            id: RECEIVER.into(),
            agencies: vec![RECEIVER_AGENCY.into(), "000.00.00.G22".into()],
        },
    ]
}

pub fn gateway_config(secrets_file: &std::path::Path) -> GatewayConfig {
    GatewayConfig::new(secrets_file, system_configs())
}

/// A gateway serving on 127.0.0.1:0 over TLS until dropped.
pub struct Running {
    pub addr: SocketAddr,
    pub gateway: Arc<Gateway<MemBackend>>,
    pub pki: TestPki,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    pub spool: tempfile::TempDir,
}

impl Running {
    pub async fn start() -> Self {
        Self::start_with(|s| s).await
    }

    pub async fn start_with(tune: impl FnOnce(GatewaySettings) -> GatewaySettings) -> Self {
        install_ring();
        let pki = TestPki::new();
        let spool = tempfile::tempdir().unwrap();
        let gateway = Gateway::new(
            systems(),
            tune(settings(spool.path())),
            MemBackend::default(),
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(lienthong_vxp::gateway::serve(
            listener,
            pki.server_config(),
            gateway.router(),
            async move {
                let _ = rx.await;
            },
        ));
        Running {
            addr,
            gateway,
            pki,
            shutdown: Some(tx),
            task: Some(task),
            spool,
        }
    }

    pub fn backend(&self) -> &MemBackend {
        self.gateway.backend()
    }

    /// Stops the server and waits for it to return.
    pub async fn stop(mut self) {
        let _ = self.shutdown.take().unwrap().send(());
        self.task.take().unwrap().await.unwrap().unwrap();
    }

    pub fn client(&self, system_id: &str, secret: &str) -> VxpClient {
        VxpClient::new(ClientConfig::new(
            format!("https://127.0.0.1:{}", self.addr.port()),
            system_id,
            Secret::new(secret),
            self.pki.client_config(),
        ))
        .unwrap()
    }

    /// One request over a fresh TLS connection with a bare hyper HTTP/1.1 client.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(String, String)],
        body: &[u8],
    ) -> RawResponse {
        https_request(
            self.addr,
            self.pki.client_config(),
            method,
            path,
            headers,
            body,
        )
        .await
    }

    pub async fn tls_connect(&self) -> tokio_rustls::client::TlsStream<TcpStream> {
        let tcp = TcpStream::connect(self.addr).await.unwrap();
        tokio_rustls::TlsConnector::from(self.pki.client_config())
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .unwrap()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// One request to `addr` over a fresh TLS connection (server name `localhost`, trusted by
/// `tls`) with a bare hyper HTTP/1.1 client.
pub async fn https_request(
    addr: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
    method: &str,
    path: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> RawResponse {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let stream = tokio_rustls::TlsConnector::from(tls)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let mut request = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", format!("127.0.0.1:{}", addr.port()));
    for (k, v) in headers {
        request = request.header(
            k.as_str(),
            http::HeaderValue::from_bytes(v.as_bytes()).unwrap(),
        );
    }
    let request = request
        .body(Full::new(Bytes::copy_from_slice(body)))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    RawResponse {
        status,
        headers,
        body,
    }
}

#[derive(Debug)]
pub struct RawResponse {
    pub status: http::StatusCode,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl RawResponse {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }

    /// Asserts the SDK's failure shape and returns the ErrorCode.
    pub fn assert_fail(&self) -> String {
        assert!(
            self.body.is_ascii(),
            "the answer is not ASCII: {:?}",
            self.body
        );
        let v = self.json();
        assert_eq!(v["status"], "FAIL", "{v}");
        let code = v["ErrorCode"]
            .as_str()
            .expect("ErrorCode is a string")
            .to_string();
        assert_ne!(code, "0");
        assert!(
            !v["ErrorDesc"]
                .as_str()
                .expect("ErrorDesc is a string")
                .is_empty()
        );
        code
    }
}

/// The signed headers of a request built from the reference's rules, without the crate:
/// `entries` in the order to send, JSON written by hand (test values need no escaping),
/// HMAC-SHA256 with ring, lowercase hex. `test_signer_reproduces_the_reference_example`
/// checks it against the reference's worked example.
pub fn sdk_sign(secret: &str, entries: &[(&str, &str)]) -> Vec<(String, String)> {
    let sign_header = format!(
        "{{{}}}",
        entries
            .iter()
            .map(|(k, v)| format!("\"XroadVnpt-{k}\":\"{v}\""))
            .collect::<Vec<_>>()
            .join(",")
    );
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let tag = ring::hmac::sign(&key, sign_header.as_bytes());
    let hash: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    let mut out: Vec<(String, String)> = entries
        .iter()
        .map(|(k, v)| (format!("XroadVnpt-{k}"), v.to_string()))
        .collect();
    if let Some((_, ct)) = entries.iter().find(|(k, _)| *k == "Content-Type") {
        out.push(("Content-Type".into(), ct.to_string()));
    }
    let keys: Vec<&str> = entries.iter().map(|(k, _)| *k).collect();
    out.push(("XroadVnpt-sign-header-key".into(), keys.join(";")));
    out.push(("XroadVnpt-sign-header".into(), sign_header));
    out.push(("XroadVnpt-hash-header".into(), hash));
    out.push(("User-Agent".into(), "JAVASDKAgent/1.0.0 XRoad/VPCP".into()));
    out.push(("XroadVnpt-version".into(), "3.0.201608".into()));
    out
}

pub const TS: &str = "05122026T075731+0423";

/// sendEdoc headers in the recorded key order
/// `systemid;servicetype;messagetype;hash-file;from;timestamp;Content-Type`.
pub fn send_edoc_headers(
    system: &str,
    secret: &str,
    from: &str,
    message_type: &str,
    hash_file: &str,
) -> Vec<(String, String)> {
    sdk_sign(
        secret,
        &[
            ("systemid", system),
            ("servicetype", "eDoc"),
            ("messagetype", message_type),
            ("hash-file", hash_file),
            ("from", from),
            ("timestamp", TS),
            ("Content-Type", "application/octet-stream"),
        ],
    )
}

/// The SDK's sendEdoc body: the file and one CRLF.
pub fn sdk_body(file: &[u8]) -> Vec<u8> {
    let mut body = file.to_vec();
    body.extend_from_slice(b"\r\n");
    body
}

/// Where the in-memory bus keeps a message: edXML in memory, large test messages in the
/// spooled file the gateway handed over (so that memory measurements see the gateway's
/// and the client's use, not the test bus's).
#[derive(Clone, Debug)]
pub enum Content {
    Bytes(Bytes),
    File(Arc<tempfile::TempPath>),
}

impl Content {
    pub fn bytes(&self) -> Vec<u8> {
        match self {
            Content::Bytes(b) => b.to_vec(),
            Content::File(p) => std::fs::read(p.as_ref() as &std::path::Path).unwrap(),
        }
    }
}

/// One message the in-memory bus holds.
#[derive(Clone, Debug)]
pub struct Held {
    pub doc_id: String,
    pub key: [u8; 32],
    pub from: String,
    pub recipients: Vec<String>,
    pub message_type: MessageType,
    pub content: Content,
    pub statuses: HashMap<String, DeliveryStatus>,
}

/// An in-memory bus: parses what it is sent with lienthong-edxml, routes an edoc to its
/// `To` agencies and a status to its `ResponseFor` agency, and records every call so
/// tests can prove a refused request never reached it.
#[derive(Debug, Default)]
pub struct MemBackend {
    pub held: Mutex<Vec<Held>>,
    pub calls: Mutex<Vec<&'static str>>,
}

impl MemBackend {
    pub fn calls(&self) -> Vec<&'static str> {
        self.calls.lock().unwrap().clone()
    }

    fn call(&self, name: &'static str) {
        self.calls.lock().unwrap().push(name);
    }

    pub fn held(&self) -> Vec<Held> {
        self.held.lock().unwrap().clone()
    }

    fn addressed<'h>(
        held: &'h mut [Held],
        scope: &SystemScope,
        doc_id: &str,
    ) -> Option<(&'h mut Held, String)> {
        held.iter_mut().find_map(|h| {
            let agency = h
                .recipients
                .iter()
                .find(|r| scope.agencies.iter().any(|a| a.as_str() == r.as_str()))?;
            (h.doc_id == doc_id).then(|| agency.clone()).map(|a| (h, a))
        })
    }
}

impl VxpBackend for MemBackend {
    async fn send_edoc(
        &self,
        _scope: &SystemScope,
        submission: EdocSubmission,
    ) -> Result<String, BackendError> {
        self.call("send_edoc");
        let internal = |e: std::io::Error| BackendError::Internal(e.to_string());
        // Large test messages are not edXML: a first line `TEST <from> <to>` routes them.
        let mut first = [0u8; 64];
        let n = {
            use tokio::io::AsyncReadExt;
            let mut file = submission.edoc.open().await.map_err(internal)?;
            file.read(&mut first).await.map_err(internal)?
        };
        let (from, recipients, kind, content) = if let Some(rest) =
            first[..n].strip_prefix(b"TEST ")
        {
            let line = &rest[..rest.iter().position(|&b| b == b'\n').unwrap()];
            let line = String::from_utf8_lossy(line).to_string();
            let (from, to) = line.split_once(' ').unwrap();
            let content = Content::File(Arc::new(submission.edoc.into_temp_path()));
            (
                from.to_string(),
                vec![to.to_string()],
                submission.message_type,
                content,
            )
        } else {
            let bytes = submission.edoc.read_to_vec().await.map_err(internal)?;
            let refused = |e| BackendError::Refused(format!("the message is not edXML: {e}"));
            let (from, recipients, kind) = match lienthong_edxml::parse(&bytes).map_err(refused)? {
                lienthong_edxml::Message::Document(d) => (
                    d.header.from.organ_id.clone(),
                    d.header.to.iter().map(|o| o.organ_id.clone()).collect(),
                    MessageType::Edoc,
                ),
                lienthong_edxml::Message::Status(s) => (
                    s.from.organ_id.clone(),
                    vec![s.response_for.organ_id.clone()],
                    MessageType::Status,
                ),
            };
            (from, recipients, kind, Content::Bytes(Bytes::from(bytes)))
        };
        if from != submission.from.as_str() {
            return Err(BackendError::Refused(format!(
                "the message is from {from} but was sent for {}; send it for its own sender",
                submission.from
            )));
        }
        if kind != submission.message_type {
            return Err(BackendError::Refused(format!(
                "the message is a {} but was sent as messagetype {}",
                kind.as_str(),
                submission.message_type.as_str()
            )));
        }
        let mut held = self.held.lock().unwrap();
        if let Some(h) = held.iter().find(|h| h.key == submission.idempotency_key) {
            return Ok(h.doc_id.clone());
        }
        let doc_id = format!("vxp-{}", hex::encode(&submission.idempotency_key[..8]));
        held.push(Held {
            doc_id: doc_id.clone(),
            key: submission.idempotency_key,
            from,
            recipients,
            message_type: kind,
            content,
            statuses: HashMap::new(),
        });
        Ok(doc_id)
    }

    async fn received_edocs(
        &self,
        scope: &SystemScope,
        message_type: MessageType,
    ) -> Result<Vec<ReceivedEdoc>, BackendError> {
        self.call("received_edocs");
        let held = self.held.lock().unwrap();
        Ok(held
            .iter()
            .filter(|h| h.message_type == message_type)
            .flat_map(|h| {
                h.recipients
                    .iter()
                    .filter(|r| scope.agencies.iter().any(|a| a.as_str() == r.as_str()))
                    .filter(|r| h.statuses.get(*r) != Some(&DeliveryStatus::Done))
                    .map(move |r| ReceivedEdoc {
                        doc_id: Some(h.doc_id.clone()),
                        service_type: Some("eDoc".into()),
                        message_type: Some(h.message_type.as_str().into()),
                        from: Some(h.from.clone()),
                        to: Some(r.clone()),
                        status: Some("initial".into()),
                        status_desc: Some("Chưa nhận".into()),
                        ..Default::default()
                    })
            })
            .collect())
    }

    async fn edoc(&self, scope: &SystemScope, doc_id: &str) -> Result<EdocStream, BackendError> {
        self.call("edoc");
        let content = {
            let mut held = self.held.lock().unwrap();
            let (h, _) = Self::addressed(&mut held, scope, doc_id).ok_or_else(|| {
                BackendError::NotFound(format!("no message {doc_id} for this system"))
            })?;
            h.content.clone()
        };
        match content {
            Content::Bytes(b) => Ok(EdocStream::from_bytes(b)),
            Content::File(path) => {
                let path: &std::path::Path = path.as_ref();
                EdocStream::from_file(path)
                    .await
                    .map_err(|e| BackendError::Internal(e.to_string()))
            }
        }
    }

    async fn update_status(
        &self,
        scope: &SystemScope,
        doc_id: &str,
        status: DeliveryStatus,
    ) -> Result<(), BackendError> {
        self.call("update_status");
        let mut held = self.held.lock().unwrap();
        let (h, agency) = Self::addressed(&mut held, scope, doc_id).ok_or_else(|| {
            BackendError::NotFound(format!("no message {doc_id} for this system"))
        })?;
        h.statuses.insert(agency, status);
        Ok(())
    }

    async fn sent_edocs(
        &self,
        scope: &SystemScope,
        message_type: MessageType,
        doc_id: Option<&str>,
    ) -> Result<Vec<SentEdoc>, BackendError> {
        self.call("sent_edocs");
        let held = self.held.lock().unwrap();
        Ok(held
            .iter()
            .filter(|h| h.message_type == message_type)
            .filter(|h| scope.agencies.iter().any(|a| a.as_str() == h.from))
            .filter(|h| doc_id.is_none_or(|d| d == h.doc_id))
            .flat_map(|h| {
                h.recipients.iter().map(move |r| SentEdoc {
                    sender_doc_id: Some(h.doc_id.clone()),
                    receiver_doc_id: Some(h.doc_id.clone()),
                    from_code: Some(h.from.clone()),
                    to_code: Some(r.clone()),
                    receive_status: h.statuses.get(r).map(|s| s.as_str().to_string()),
                    ..Default::default()
                })
            })
            .collect())
    }

    async fn agencies(&self, _scope: &SystemScope) -> Result<Vec<AgencyEntry>, BackendError> {
        self.call("agencies");
        Ok(vec![AgencyEntry {
            code: Some("000.00.00.G22".into()),
            name: Some("Văn phòng Chính phủ".into()),
            ..Default::default()
        }])
    }

    async fn agencies_qd20(
        &self,
        _scope: &SystemScope,
        level: &str,
    ) -> Result<Vec<AgencyQd20Entry>, BackendError> {
        self.call("agencies_qd20");
        Ok(vec![AgencyQd20Entry {
            code: Some("000.00.00.H41".into()),
            name: Some(format!("UBND Tỉnh Nghệ An (level {level})")),
            ..Default::default()
        }])
    }

    async fn synchronize_units(&self, _scope: &SystemScope) -> Result<Vec<SyncUnit>, BackendError> {
        self.call("synchronize_units");
        Ok(vec![SyncUnit {
            code: Some("000.00.00.H41".into()),
            version: Some(2),
            deleted: Some(false),
            is_agency: Some(true),
            ..Default::default()
        }])
    }
}
