//! A stand-in for the national VXP platform (the server the VNPT SDKVXP 2.0.1 Java client
//! talks to), for tests of our gateway and bridge client.
//!
//! The real server is not available; this one is written **only** from what is known of
//! its client, the shared reference `vxp-rest.md` (cited as "§n" below), and the real
//! edXML samples next to it (`edxml/edoc.edxml`, `edxml/status_*.edxml`). On purpose it shares no code with
//! `lienthong-vxp` or `lienthong-edxml`: the HMAC, the header checks, the hash-file, the
//! JSON answers and the edXML addresses are all computed here again, so that a bug in our
//! gateway or client cannot hide behind a helper both sides use.
//!
//! What this module owns, by section of vxp-rest.md:
//!
//! - **Transport** (§1 "Two HTTP stacks"): HTTPS with a CA and a server certificate for
//!   `127.0.0.1`/`localhost` generated at start ([`Platform::ca_pem_path`]), HTTP/1.1 with
//!   `Expect: 100-continue` answered (hyper sends `100 Continue` when the body is read).
//!   Operations live under a base path: `https://127.0.0.1:PORT/vxp/<op>` (§0 "URL").
//! - **Verification of every request** (§1 "How a server verifies"): `verify` looks up
//!   the secret by `XroadVnpt-systemid`, MACs the received bytes of
//!   `XroadVnpt-sign-header`, compares with `XroadVnpt-hash-header` in constant time,
//!   checks each signed property against the actual header (case-insensitive names) and
//!   `XroadVnpt-sign-header-key` against the signed keys in their (HashMap) order, and
//!   hands the operations only the signed values. Unexpected signed keys are ignored
//!   (§4: a long-lived SDK object re-sends stale keys); the timestamp's shape is checked
//!   but not its age (§5).
//! - **sendEdoc body and hash-file** (§2.1): the body is the file plus exactly one CRLF;
//!   `XroadVnpt-hash-file` is the SHA-256 of the file in hex *without zero padding*.
//! - **Answers** (§3, §5): ASCII-only JSON (`\uXXXX` escapes), never `null`, always
//!   `status`/`ErrorCode`/`ErrorDesc`, `DocId` on every sendEdoc answer (`""` on errors);
//!   success is `"status":"OK","ErrorCode":"0"`, failure `"status":"FAIL"` with a
//!   non-zero code (see [`code`]).
//! - **Routing** (§4, and the samples): an `edoc` goes to every `MessageHeader/To/OrganId`
//!   (plus the optional signed `to` header); a `status` to its
//!   `MessageHeader/ResponseFor/OrganId` (plus `to`). See `EdxmlAddresses` for the
//!   reading of the samples this rests on. An OrganId the directory does not know
//!   refuses the whole message; one known without a system is accepted, delivered
//!   nowhere.
//! - **Operations** (§2, §3): getAgenciesList, getAgenciesListQD20, sendEdoc,
//!   getReceivedEdocList, getEdoc, downloadEdoc (GET, the raw file), updateStatus,
//!   getSentEdocList, countReceiveEdoc, countReceiveStatus. Anything else
//!   (registerAgency, deleteAgency, getSynchronizeUnit included) is a 404 with the FAIL
//!   JSON; a known operation with the wrong method a 405.
//! - **Mailboxes and at-least-once delivery** (§1 end, §4, §5): one mailbox per system;
//!   sendEdoc is deduplicated (the rule is on `Inner::dedup`); updateStatus is
//!   idempotent (`done` and `fail` are final, repeating them is OK).
//! - **Test controls**: the request log ([`Platform::requests`]), the mailboxes
//!   ([`Platform::mailbox`]), what a system sent ([`Platform::sent_by`]), an outage
//!   ([`Platform::set_down`]: 503 with an HTML proxy page, the case the SDK maps to an
//!   empty OK list, §3 "Traps").
//!
//! Ids: the sender gets a DocId `S<n>`; each receiving system gets its own received id
//! `R<n>` (one per receiving system, even when several of its agencies are addressed).
//! The two differ on purpose, as getSentEdocList's `senderDocId`/`receiverDocId` allow
//! (§4), so a gateway that confuses them fails here.

use std::collections::HashMap;
use std::convert::Infallible;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::{Value, json};
use time::OffsetDateTime;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;

/// The path every operation lives under: `https://HOST:PORT/vxp/<op>`.
pub const BASE_PATH: &str = "/vxp";

/// Largest request body read (a sendEdoc file plus its CRLF).
pub const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// The `ErrorCode`s of FAIL answers (any non-`"0"` string is a failure for the SDK, §3).
pub mod code {
    /// Unknown system, bad HMAC, or signed properties that do not match the headers.
    pub const AUTH: &str = "401";
    /// A required signed header is missing or has a value the operation does not know.
    pub const BAD_REQUEST: &str = "400";
    /// The sendEdoc body does not end with CRLF or its hash-file does not match.
    pub const HASH_FILE: &str = "422";
    /// The file is not edXML, has no addressee, or names an OrganId the platform does not
    /// know (no delivery at all then).
    pub const ROUTING: &str = "460";
    /// A docId that is not in the caller's mailbox (or not among what it sent).
    pub const UNKNOWN_DOC: &str = "404";
    /// updateStatus that contradicts an earlier final acknowledgement.
    pub const CONFLICT: &str = "409";
    /// An operation the stand-in does not serve.
    pub const UNKNOWN_OP: &str = "404";
    /// A known operation called with the wrong HTTP method.
    pub const METHOD: &str = "405";
}

// ---------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------

/// An agency (OrganId) in the platform's directory.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AgencySpec {
    /// The QCVN 102 code, e.g. `000.00.00.G22`.
    pub code: String,
    /// Its display name (any Unicode; answered with `\u` escapes).
    pub name: String,
    /// `oldCode` in getAgenciesList, when the agency had another code before.
    pub old_code: Option<String>,
    /// `mail` in the agency lists.
    pub mail: Option<String>,
}

impl AgencySpec {
    pub fn new(code: impl Into<String>, name: impl Into<String>) -> Self {
        AgencySpec {
            code: code.into(),
            name: name.into(),
            ..AgencySpec::default()
        }
    }

    pub fn with_old_code(mut self, old_code: impl Into<String>) -> Self {
        self.old_code = Some(old_code.into());
        self
    }
}

/// A system connected to the platform (a DMS, or our gateway): its id, its secret and the
/// agencies it serves.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SystemSpec {
    /// `XroadVnpt-systemid`.
    pub id: String,
    /// The shared secret; its literal UTF-8 bytes are the HMAC key (§1).
    pub secret: String,
    /// The agencies this system sends for and receives for.
    pub agencies: Vec<AgencySpec>,
}

impl SystemSpec {
    pub fn new(
        id: impl Into<String>,
        secret: impl Into<String>,
        agencies: impl IntoIterator<Item = AgencySpec>,
    ) -> Self {
        SystemSpec {
            id: id.into(),
            secret: secret.into(),
            agencies: agencies.into_iter().collect(),
        }
    }
}

/// How to start a [`Platform`].
#[derive(Clone, Debug)]
pub struct PlatformConfig {
    /// Where to listen; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Where the CA certificate (`ca.pem`) and every accepted file (`sent/<DocId>.edxml`)
    /// are written; created if missing.
    pub dir: PathBuf,
    pub systems: Vec<SystemSpec>,
    /// Agencies known to the directory that no simulated system serves: listed by the
    /// agency lists; a document addressed to them is accepted but delivered nowhere.
    pub extra_agencies: Vec<AgencySpec>,
    /// Print one line per request on stderr (the binary does).
    pub trace: bool,
}

impl PlatformConfig {
    /// Listens on 127.0.0.1:0, writes into `dir`, no systems yet.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        PlatformConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            dir: dir.into(),
            systems: Vec::new(),
            extra_agencies: Vec::new(),
            trace: false,
        }
    }
}

// ---------------------------------------------------------------------------------------
// What tests read
// ---------------------------------------------------------------------------------------

/// One request as the platform saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestRecord {
    /// The operation (the last path segment), or the whole path when it is not under
    /// [`BASE_PATH`].
    pub op: String,
    pub method: String,
    /// The claimed `XroadVnpt-systemid` (`""` when absent).
    pub system_id: String,
    /// The secret was found and `XroadVnpt-hash-header` is its HMAC of the sign-header.
    pub hmac_ok: bool,
    /// The sign-header is a JSON object of `XroadVnpt-*` strings, each equal to its actual
    /// header, listed in `XroadVnpt-sign-header-key` in the same order, with `systemid`,
    /// `timestamp` and `Content-Type` among them.
    pub headers_ok: bool,
    /// The HTTP status answered.
    pub http_status: u16,
    /// `OK` or `FAIL` (the JSON `status`), or `DOWN` for a 503 page.
    pub status: String,
    /// The JSON `ErrorCode` (`""` for a 503 page).
    pub error_code: String,
    /// Why the request failed, in short; `None` when it succeeded.
    pub reason: Option<String>,
    /// The DocId answered by sendEdoc, or the docId acted on by getEdoc/updateStatus.
    pub doc_id: Option<String>,
    /// A sendEdoc answered from the deduplication table, or a repeated updateStatus.
    pub duplicate: bool,
}

impl fmt::Display for RequestRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} system={:?} hmac={} headers={} -> {} {} {}",
            self.method,
            self.op,
            self.system_id,
            if self.hmac_ok { "ok" } else { "BAD" },
            if self.headers_ok { "ok" } else { "BAD" },
            self.http_status,
            self.status,
            self.error_code,
        )?;
        if let Some(doc_id) = &self.doc_id {
            write!(f, " doc={doc_id}")?;
        }
        if self.duplicate {
            write!(f, " (duplicate)")?;
        }
        if let Some(reason) = &self.reason {
            write!(f, ": {reason}")?;
        }
        Ok(())
    }
}

/// The receiver's acknowledgement of a received item (updateStatus, §4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DeliveryStatus {
    /// Not acknowledged yet.
    None,
    Processing,
    Done,
    Fail,
}

impl DeliveryStatus {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "done" => Some(DeliveryStatus::Done),
            "fail" => Some(DeliveryStatus::Fail),
            "processing" => Some(DeliveryStatus::Processing),
            _ => None,
        }
    }

    /// Still listed by getReceivedEdocList.
    fn is_pending(self) -> bool {
        matches!(self, DeliveryStatus::None | DeliveryStatus::Processing)
    }

    fn wire(self) -> (&'static str, &'static str) {
        match self {
            DeliveryStatus::None => ("initial", "Chờ tiếp nhận"),
            DeliveryStatus::Processing => ("processing", "Đang xử lý"),
            DeliveryStatus::Done => ("done", "Đã tiếp nhận"),
            DeliveryStatus::Fail => ("fail", "Tiếp nhận lỗi"),
        }
    }
}

/// A message in a system's mailbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MailItem {
    /// The received id, what getReceivedEdocList lists and getEdoc/updateStatus take.
    pub doc_id: String,
    /// The DocId the sender was given.
    pub sender_doc_id: String,
    /// `edoc` or `status`.
    pub message_type: String,
    /// The sender's signed `servicetype`.
    pub service_type: String,
    /// The sender's signed `from`.
    pub from: String,
    pub from_system: String,
    /// The addressed OrganIds this system serves.
    pub to: Vec<String>,
    /// The exact file (the body without its trailing CRLF).
    pub bytes: Vec<u8>,
    pub status: DeliveryStatus,
    /// Every accepted updateStatus, in order, repeats included.
    pub updates: Vec<DeliveryStatus>,
    /// How many times getEdoc or downloadEdoc handed it out.
    pub fetches: u32,
}

/// Where a sent message went, per receiving system.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    pub system_id: String,
    /// The received id in that system's mailbox.
    pub doc_id: String,
    pub to: Vec<String>,
}

/// A message a system sent and the platform accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SentItem {
    pub doc_id: String,
    pub message_type: String,
    pub service_type: String,
    /// The signed `from`.
    pub from: String,
    /// `MessageHeader/From/OrganId` in the edXML, to compare with `from`.
    pub edxml_from: Option<String>,
    /// Every addressed OrganId (edXML and `to` header), without repeats.
    pub addressed: Vec<String>,
    pub deliveries: Vec<Delivery>,
    /// Addressed agencies known to the directory that no system serves.
    pub undelivered: Vec<String>,
    pub bytes: Vec<u8>,
    /// How many later requests were recognised as re-sends of this one.
    pub resends: u32,
}

// ---------------------------------------------------------------------------------------
// The running platform
// ---------------------------------------------------------------------------------------

/// A running stand-in. Dropping it stops serving (use [`Platform::shutdown`] to wait).
#[derive(Debug)]
pub struct Platform {
    shared: Arc<Shared>,
    url: String,
    local_addr: SocketAddr,
    ca_pem: String,
    ca_pem_path: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Platform {
    /// Generates the certificates, writes `ca.pem` into `config.dir`, binds and serves.
    pub async fn start(config: PlatformConfig) -> anyhow::Result<Platform> {
        let directory = Directory::new(&config.systems, &config.extra_agencies)?;
        std::fs::create_dir_all(config.dir.join("sent"))
            .with_context(|| format!("creating {}", config.dir.display()))?;
        let (ca_pem, tls) = tls_config()?;
        let ca_pem_path = config.dir.join("ca.pem");
        std::fs::write(&ca_pem_path, &ca_pem)
            .with_context(|| format!("writing {}", ca_pem_path.display()))?;

        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("binding {}", config.listen))?;
        let local_addr = listener.local_addr()?;
        let url = format!("https://{local_addr}{BASE_PATH}");
        let shared = Arc::new(Shared {
            directory,
            dir: config.dir.clone(),
            trace: config.trace,
            down: AtomicBool::new(false),
            updates_down: AtomicBool::new(false),
            send_answer_delay_ms: std::sync::atomic::AtomicU64::new(0),
            inner: Mutex::new(Inner::default()),
        });
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(serve(
            listener,
            TlsAcceptor::from(Arc::new(tls)),
            shared.clone(),
            stopped,
        ));
        Ok(Platform {
            shared,
            url,
            local_addr,
            ca_pem,
            ca_pem_path,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// The base URL, `https://127.0.0.1:PORT/vxp`; operations are `<url>/<op>`.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The CA certificate (PEM) a client must trust.
    pub fn ca_pem_path(&self) -> &Path {
        &self.ca_pem_path
    }

    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// Every request so far, oldest first.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared.lock().log.clone()
    }

    /// Everything delivered to `system_id` (acknowledged or not), oldest first.
    pub fn mailbox(&self, system_id: &str) -> Vec<MailItem> {
        let inner = self.shared.lock();
        inner
            .mailboxes
            .get(system_id)
            .map(|items| items.iter().map(|stored| stored.item.clone()).collect())
            .unwrap_or_default()
    }

    /// Every message `system_id` sent that the platform accepted, oldest first.
    pub fn sent_by(&self, system_id: &str) -> Vec<SentItem> {
        let inner = self.shared.lock();
        inner
            .sent
            .iter()
            .filter(|sent| sent.system_id == system_id)
            .map(|sent| sent.item.clone())
            .collect()
    }

    /// While down, every request is answered `503` with an HTML proxy error page.
    pub fn set_down(&self, down: bool) {
        self.shared.down.store(down, Ordering::SeqCst);
    }

    /// While set, `updateStatus` alone is answered as when down (503 and an HTML page):
    /// a receiver that imported a message cannot acknowledge it, which holds it between
    /// its own durable write and the acknowledgement.
    pub fn set_updates_down(&self, down: bool) {
        self.shared.updates_down.store(down, Ordering::SeqCst);
    }

    /// Delays the answer to each sendEdoc by `delay` after the message is stored and
    /// delivered: a sender that dies meanwhile never learns its DocId, and must re-send.
    pub fn set_send_answer_delay(&self, delay: std::time::Duration) {
        self.shared
            .send_answer_delay_ms
            .store(delay.as_millis() as u64, Ordering::SeqCst);
    }

    /// Stops accepting and closes every connection.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Platform {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

async fn serve(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    shared: Arc<Shared>,
    mut stopped: oneshot::Receiver<()>,
) {
    // Dropping the set (when this task ends or is aborted) aborts every connection.
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            _ = &mut stopped => return,
            accepted = listener.accept() => accepted,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let Ok((tcp, _peer)) = accepted else {
            // A transient accept error (e.g. out of file descriptors): try again shortly.
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            continue;
        };
        let acceptor = acceptor.clone();
        let shared = shared.clone();
        connections.spawn(async move {
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            let service = hyper::service::service_fn(move |request| {
                let shared = shared.clone();
                async move { Ok::<_, Infallible>(shared.handle(request).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .serve_connection(TokioIo::new(tls), service)
                .await;
        });
    }
}

/// A CA and a server certificate for `localhost`/`127.0.0.1` signed by it; the CA's PEM
/// and the server's TLS configuration (rustls, ring provider, HTTP/1.1 only).
fn tls_config() -> anyhow::Result<(String, rustls::ServerConfig)> {
    use rcgen::{
        BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose,
        IsCa, Issuer, KeyPair, KeyUsagePurpose,
    };
    let now = OffsetDateTime::now_utc();
    let validity = |params: &mut CertificateParams| {
        params.not_before = now - time::Duration::days(1);
        params.not_after = now + time::Duration::days(30);
    };

    let ca_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut ca_params = CertificateParams::default();
    ca_params.distinguished_name = DistinguishedName::new();
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "VXP platform stand-in CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    validity(&mut ca_params);
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, ca_key);

    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut params = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])?;
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, "VXP platform stand-in");
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    validity(&mut params);
    let cert = params.signed_by(&key, &issuer)?;

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((ca_cert.pem(), config))
}

// ---------------------------------------------------------------------------------------
// State
// ---------------------------------------------------------------------------------------

#[derive(Debug)]
struct Shared {
    directory: Directory,
    dir: PathBuf,
    trace: bool,
    down: AtomicBool,
    /// [`Platform::set_updates_down`].
    updates_down: AtomicBool,
    /// [`Platform::set_send_answer_delay`], in milliseconds.
    send_answer_delay_ms: std::sync::atomic::AtomicU64,
    inner: Mutex<Inner>,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves consistent-enough data for a test double.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The systems and the agency directory, fixed at start.
#[derive(Debug)]
struct Directory {
    /// (system id, secret), in configuration order.
    systems: Vec<(String, String)>,
    /// Every agency, systems' first, in configuration order.
    agencies: Vec<AgencySpec>,
    /// Agency code → the id of the system serving it (`None` for extra agencies).
    owner: HashMap<String, Option<String>>,
}

impl Directory {
    fn new(systems: &[SystemSpec], extra: &[AgencySpec]) -> anyhow::Result<Self> {
        let mut directory = Directory {
            systems: Vec::new(),
            agencies: Vec::new(),
            owner: HashMap::new(),
        };
        for system in systems {
            anyhow::ensure!(!system.id.is_empty(), "a system needs an id");
            anyhow::ensure!(
                !system.secret.is_empty(),
                "system {} needs a secret",
                system.id
            );
            anyhow::ensure!(
                directory.secret(&system.id).is_none(),
                "system {} is given twice",
                system.id
            );
            for agency in &system.agencies {
                directory.add(agency, Some(&system.id))?;
            }
            directory
                .systems
                .push((system.id.clone(), system.secret.clone()));
        }
        for agency in extra {
            directory.add(agency, None)?;
        }
        Ok(directory)
    }

    fn add(&mut self, agency: &AgencySpec, system: Option<&str>) -> anyhow::Result<()> {
        anyhow::ensure!(!agency.code.is_empty(), "an agency needs a code");
        anyhow::ensure!(
            !self.owner.contains_key(&agency.code),
            "agency {} is given twice",
            agency.code
        );
        self.owner
            .insert(agency.code.clone(), system.map(str::to_owned));
        self.agencies.push(agency.clone());
        Ok(())
    }

    fn secret(&self, system_id: &str) -> Option<&str> {
        self.systems
            .iter()
            .find(|(id, _)| id == system_id)
            .map(|(_, secret)| secret.as_str())
    }

    fn serves(&self, system_id: &str, code: &str) -> bool {
        matches!(self.owner.get(code), Some(Some(owner)) if owner == system_id)
    }
}

#[derive(Debug)]
struct StoredItem {
    item: MailItem,
    created: OffsetDateTime,
    updated: OffsetDateTime,
    /// When the receiver first fetched it (getSentEdocList's `receivedTime`).
    fetched: Option<OffsetDateTime>,
}

#[derive(Debug)]
struct StoredSent {
    system_id: String,
    item: SentItem,
    title: Option<String>,
    notation: Option<String>,
    sent: OffsetDateTime,
}

#[derive(Debug, Default)]
struct Inner {
    log: Vec<RequestRecord>,
    mailboxes: HashMap<String, Vec<StoredItem>>,
    sent: Vec<StoredSent>,
    /// The deduplication rule of sendEdoc (§1 "delivery is at-least-once", §5): a request
    /// from the same system whose `XroadVnpt-sign-header` bytes are identical to an
    /// earlier **accepted** sendEdoc's, and whose (signed, verified) hash-file is the
    /// same, is a re-send: it gets the earlier DocId and delivers nothing. The sign-header
    /// covers the frozen timestamp, `from`, `messagetype`, `to` and the hash-file, so any
    /// change there is a new message. As §1 warns, a long-lived SDK object re-sending the
    /// same file yields the same headers too and is taken for a re-send; nothing on the
    /// wire tells the two apart. Refused requests are not remembered.
    ///
    /// Key: (system id, sign-header bytes, hash-file) → DocId.
    dedup: HashMap<(String, Vec<u8>, String), String>,
    next_id: u64,
}

impl Inner {
    fn next(&mut self, prefix: char) -> String {
        self.next_id += 1;
        format!("{prefix}{:06}", self.next_id)
    }

    fn item_mut(&mut self, system_id: &str, doc_id: &str) -> Option<&mut StoredItem> {
        self.mailboxes
            .get_mut(system_id)?
            .iter_mut()
            .find(|stored| stored.item.doc_id == doc_id)
    }
}

// ---------------------------------------------------------------------------------------
// Request handling
// ---------------------------------------------------------------------------------------

/// What an operation answers, and what the log says about it.
#[derive(Debug)]
struct Answer {
    http: StatusCode,
    body: Value,
    reason: Option<String>,
    doc_id: Option<String>,
    duplicate: bool,
    /// downloadEdoc: the file itself instead of the JSON.
    raw: Option<Vec<u8>>,
}

impl Answer {
    /// `{"status":"OK","ErrorCode":"0","ErrorDesc":"Thành công", ...extra}`.
    fn ok(extra: Value) -> Answer {
        let mut body = json!({"status": "OK", "ErrorCode": "0", "ErrorDesc": "Thành công"});
        merge(&mut body, extra);
        Answer {
            http: StatusCode::OK,
            body,
            reason: None,
            doc_id: None,
            duplicate: false,
            raw: None,
        }
    }

    /// `{"status":"FAIL","ErrorCode":code,"ErrorDesc":desc, ...extra}`.
    fn fail(code: &str, desc: impl Into<String>, extra: Value) -> Answer {
        let desc = desc.into();
        let mut body = json!({"status": "FAIL", "ErrorCode": code, "ErrorDesc": desc});
        merge(&mut body, extra);
        Answer {
            http: StatusCode::OK,
            body,
            reason: Some(desc),
            doc_id: None,
            duplicate: false,
            raw: None,
        }
    }

    fn http(mut self, status: StatusCode) -> Answer {
        self.http = status;
        self
    }

    fn doc(mut self, doc_id: &str) -> Answer {
        self.doc_id = Some(doc_id.to_owned());
        self
    }
}

fn merge(body: &mut Value, extra: Value) {
    if let (Value::Object(body), Value::Object(extra)) = (body, extra) {
        body.extend(extra);
    }
}

/// The operations served, with their HTTP method (§2).
fn known_op(op: &str) -> Option<Method> {
    match op {
        "getAgenciesList"
        | "getAgenciesListQD20"
        | "sendEdoc"
        | "getReceivedEdocList"
        | "getEdoc"
        | "updateStatus"
        | "getSentEdocList"
        | "countReceiveEdoc"
        | "countReceiveStatus" => Some(Method::POST),
        "downloadEdoc" => Some(Method::GET),
        _ => None,
    }
}

impl Shared {
    async fn handle(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let (parts, body) = request.into_parts();
        let path = parts.uri.path();
        let op = path
            .strip_prefix(BASE_PATH)
            .and_then(|rest| rest.strip_prefix('/'))
            .filter(|op| !op.is_empty() && !op.contains('/'))
            .unwrap_or(path)
            .to_owned();
        let mut record = RequestRecord {
            op: op.clone(),
            method: parts.method.to_string(),
            system_id: header_str(&parts.headers, "XroadVnpt-systemid").unwrap_or_default(),
            hmac_ok: false,
            headers_ok: false,
            http_status: 0,
            status: String::new(),
            error_code: String::new(),
            reason: None,
            doc_id: None,
            duplicate: false,
        };

        if self.down.load(Ordering::SeqCst)
            || (op == "updateStatus" && self.updates_down.load(Ordering::SeqCst))
        {
            // What a reverse proxy in front of a dead platform answers. The SDK's
            // getReceivedEdocList turns this into an empty OK list (§3 "Traps").
            record.http_status = 503;
            record.status = "DOWN".to_owned();
            record.reason = Some("the platform is down".to_owned());
            self.note(record);
            return Response::builder()
                .status(StatusCode::SERVICE_UNAVAILABLE)
                .header(http::header::CONTENT_TYPE, "text/html")
                .body(Full::new(Bytes::from_static(DOWN_PAGE.as_bytes())))
                .expect("a valid response");
        }

        let answer = match known_op(&op) {
            None => Answer::fail(
                code::UNKNOWN_OP,
                format!("unknown operation {path}"),
                json!({}),
            )
            .http(StatusCode::NOT_FOUND),
            Some(method) if method != parts.method => Answer::fail(
                code::METHOD,
                format!("{op} takes {method}, not {}", parts.method),
                doc_id_if(op == "sendEdoc"),
            )
            .http(StatusCode::METHOD_NOT_ALLOWED),
            Some(_) => match Limited::new(body, MAX_BODY_BYTES).collect().await {
                Err(e) => Answer::fail(
                    code::BAD_REQUEST,
                    format!("reading the body: {e}"),
                    doc_id_if(op == "sendEdoc"),
                ),
                Ok(body) => {
                    let body = body.to_bytes();
                    let verified = verify(&self.directory, &parts.headers);
                    record.hmac_ok = verified.hmac_ok;
                    record.headers_ok = verified.headers_ok;
                    match verified.result {
                        Err(reason) => {
                            Answer::fail(code::AUTH, reason, doc_id_if(op == "sendEdoc"))
                        }
                        Ok(call) => self.dispatch(&op, &call, &body),
                    }
                }
            },
        };

        record.http_status = answer.http.as_u16();
        record.status = answer.body["status"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        record.error_code = answer.body["ErrorCode"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        record.reason = answer.reason.clone();
        record.doc_id = answer.doc_id.clone();
        record.duplicate = answer.duplicate;
        self.note(record);
        if op == "sendEdoc" {
            // Accepted and stored; the answer is late (Platform::set_send_answer_delay).
            let delay = self.send_answer_delay_ms.load(Ordering::SeqCst);
            if delay > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
            }
        }

        if let Some(bytes) = answer.raw {
            return Response::builder()
                .status(StatusCode::OK)
                .header(http::header::CONTENT_TYPE, "application/octet-stream")
                .body(Full::new(Bytes::from(bytes)))
                .expect("a valid response");
        }
        Response::builder()
            .status(answer.http)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(ascii_json(&answer.body))))
            .expect("a valid response")
    }

    fn note(&self, record: RequestRecord) {
        if self.trace {
            eprintln!("{record}");
        }
        self.lock().log.push(record);
    }

    fn dispatch(&self, op: &str, call: &Call, body: &[u8]) -> Answer {
        match op {
            "getAgenciesList" => self.get_agencies_list(),
            "getAgenciesListQD20" => self.get_agencies_list_qd20(),
            "sendEdoc" => self.send_edoc(call, body),
            "getReceivedEdocList" => self.get_received_edoc_list(call),
            "getEdoc" => self.get_edoc(call, false),
            "downloadEdoc" => self.get_edoc(call, true),
            "updateStatus" => self.update_status(call),
            "getSentEdocList" => self.get_sent_edoc_list(call),
            "countReceiveEdoc" => self.count(call, "edoc"),
            "countReceiveStatus" => self.count(call, "status"),
            _ => unreachable!("known_op lists {op}"),
        }
    }

    /// getAgenciesList (§3): `data[]` of `{code, id, name, mail?, pid?, oldCode?}`. No
    /// agency has a parent here, so `pid` is always omitted (never `null`).
    fn get_agencies_list(&self) -> Answer {
        let data: Vec<Value> = (self.directory.agencies.iter().enumerate())
            .map(|(i, agency)| {
                let mut item =
                    json!({"code": agency.code, "id": (i + 1).to_string(), "name": agency.name});
                if let Some(mail) = &agency.mail {
                    item["mail"] = json!(mail);
                }
                if let Some(old_code) = &agency.old_code {
                    item["oldCode"] = json!(old_code);
                }
                item
            })
            .collect();
        Answer::ok(json!({ "data": data }))
    }

    /// getAgenciesListQD20 (§3): `data[]` of `{code, id, name, mail?, code102}`, where
    /// `code102` is the QCVN 102 code (the same as `code` here). The signed `level` is
    /// accepted and ignored: the stand-in's directory is flat.
    fn get_agencies_list_qd20(&self) -> Answer {
        let data: Vec<Value> = (self.directory.agencies.iter().enumerate())
            .map(|(i, agency)| {
                let mut item = json!({
                    "code": agency.code,
                    "id": (i + 1).to_string(),
                    "name": agency.name,
                    "code102": agency.code,
                });
                if let Some(mail) = &agency.mail {
                    item["mail"] = json!(mail);
                }
                item
            })
            .collect();
        Answer::ok(json!({ "data": data }))
    }

    /// sendEdoc (§2, §2.1, §4): checks, deduplicates, routes and delivers.
    fn send_edoc(&self, call: &Call, body: &[u8]) -> Answer {
        let fail = |code: &str, desc: String| Answer::fail(code, desc, json!({"DocId": ""}));
        let message_type = match call.get("messagetype") {
            Some(t @ ("edoc" | "status")) => t,
            Some(other) => {
                return fail(
                    code::BAD_REQUEST,
                    format!("messagetype must be edoc or status, not {other:?}"),
                );
            }
            None => return fail(code::BAD_REQUEST, "messagetype is not signed".into()),
        };
        let Some(service_type) = call.get("servicetype") else {
            return fail(code::BAD_REQUEST, "servicetype is not signed".into());
        };
        let Some(from) = call.get("from") else {
            return fail(code::BAD_REQUEST, "from is not signed".into());
        };
        if !self.directory.serves(&call.system_id, from) {
            return fail(
                code::ROUTING,
                format!("from {from} is not an agency of system {}", call.system_id),
            );
        }
        let Some(hash_file) = call.get("hash-file") else {
            return fail(code::BAD_REQUEST, "hash-file is not signed".into());
        };
        // §2.1: the body is the file followed by exactly one CRLF.
        let Some(file) = body.strip_suffix(b"\r\n") else {
            return fail(
                code::HASH_FILE,
                "the body does not end with CRLF (sendEdoc sends the file bytes + \\r\\n)".into(),
            );
        };
        let expected = unpadded_sha256_hex(file);
        if hash_file != expected {
            return fail(
                code::HASH_FILE,
                format!(
                    "hash-file {hash_file} does not match the file ({expected}: SHA-256 of the body without its final CRLF, hex without zero padding)"
                ),
            );
        }

        let dedup_key = (
            call.system_id.clone(),
            call.sign_header.clone(),
            hash_file.to_owned(),
        );
        {
            let mut inner = self.lock();
            if let Some(doc_id) = inner.dedup.get(&dedup_key).cloned() {
                if let Some(sent) = inner.sent.iter_mut().find(|s| s.item.doc_id == doc_id) {
                    sent.item.resends += 1;
                }
                let mut answer = Answer::ok(json!({ "DocId": doc_id })).doc(&doc_id);
                answer.duplicate = true;
                return answer;
            }
        }

        let addresses = match EdxmlAddresses::read(file) {
            Ok(addresses) => addresses,
            Err(e) => return fail(code::ROUTING, format!("the file is not edXML: {e}")),
        };
        let mut addressed: Vec<String> = Vec::new();
        let from_edxml = match message_type {
            "edoc" => addresses.to.clone(),
            _ => addresses.response_for.clone(),
        };
        let from_header = call.get("to").map(parse_to_header).unwrap_or_default();
        for code in from_edxml.into_iter().chain(from_header) {
            if !addressed.contains(&code) {
                addressed.push(code);
            }
        }
        if addressed.is_empty() {
            let element = if message_type == "edoc" {
                "MessageHeader/To/OrganId"
            } else {
                "MessageHeader/ResponseFor/OrganId"
            };
            return fail(
                code::ROUTING,
                format!("no addressee: the {message_type} has no {element} and no to header"),
            );
        }
        let unknown: Vec<&str> = (addressed.iter())
            .filter(|code| !self.directory.owner.contains_key(code.as_str()))
            .map(String::as_str)
            .collect();
        if !unknown.is_empty() {
            return fail(
                code::ROUTING,
                format!(
                    "unknown OrganId {} (not in the platform's directory); nothing was delivered",
                    unknown.join(", ")
                ),
            );
        }

        let now = now();
        let mut inner = self.lock();
        // Re-check under this lock: a concurrent re-send may have won the race.
        if let Some(doc_id) = inner.dedup.get(&dedup_key).cloned() {
            let mut answer = Answer::ok(json!({ "DocId": doc_id })).doc(&doc_id);
            answer.duplicate = true;
            return answer;
        }
        let doc_id = inner.next('S');
        let mut deliveries = Vec::new();
        let mut undelivered = Vec::new();
        for (system_id, _) in &self.directory.systems {
            let to: Vec<String> = (addressed.iter())
                .filter(|code| self.directory.serves(system_id, code))
                .cloned()
                .collect();
            if to.is_empty() {
                continue;
            }
            let received_id = inner.next('R');
            inner
                .mailboxes
                .entry(system_id.clone())
                .or_default()
                .push(StoredItem {
                    item: MailItem {
                        doc_id: received_id.clone(),
                        sender_doc_id: doc_id.clone(),
                        message_type: message_type.to_owned(),
                        service_type: service_type.to_owned(),
                        from: from.to_owned(),
                        from_system: call.system_id.clone(),
                        to: to.clone(),
                        bytes: file.to_vec(),
                        status: DeliveryStatus::None,
                        updates: Vec::new(),
                        fetches: 0,
                    },
                    created: now,
                    updated: now,
                    fetched: None,
                });
            deliveries.push(Delivery {
                system_id: system_id.clone(),
                doc_id: received_id,
                to,
            });
        }
        for code in &addressed {
            if matches!(self.directory.owner.get(code), Some(None)) {
                undelivered.push(code.clone());
            }
        }
        inner.sent.push(StoredSent {
            system_id: call.system_id.clone(),
            item: SentItem {
                doc_id: doc_id.clone(),
                message_type: message_type.to_owned(),
                service_type: service_type.to_owned(),
                from: from.to_owned(),
                edxml_from: addresses.from,
                addressed,
                deliveries,
                undelivered,
                bytes: file.to_vec(),
                resends: 0,
            },
            title: addresses.subject,
            notation: addresses.notation,
            sent: now,
        });
        inner.dedup.insert(dedup_key, doc_id.clone());
        drop(inner);
        // For a look by hand; the mailboxes above are what the operations serve.
        let _ = std::fs::write(self.dir.join("sent").join(format!("{doc_id}.edxml")), file);
        Answer::ok(json!({ "DocId": doc_id })).doc(&doc_id)
    }

    /// getReceivedEdocList (§3): the caller's items of the signed `messagetype` not yet
    /// acknowledged `done` or `fail`.
    fn get_received_edoc_list(&self, call: &Call) -> Answer {
        let message_type = match call.get("messagetype") {
            Some(t @ ("edoc" | "status")) => t,
            other => {
                return Answer::fail(
                    code::BAD_REQUEST,
                    format!("messagetype must be edoc or status, not {other:?}"),
                    json!({}),
                );
            }
        };
        let inner = self.lock();
        let data: Vec<Value> = (inner.mailboxes.get(&call.system_id).into_iter().flatten())
            .filter(|stored| {
                stored.item.message_type == message_type && stored.item.status.is_pending()
            })
            .map(|stored| {
                let (status, status_desc) = stored.item.status.wire();
                json!({
                    "docId": stored.item.doc_id,
                    "serviceType": stored.item.service_type,
                    "messageType": stored.item.message_type,
                    "created_time": format_time(stored.created),
                    "updated_time": format_time(stored.updated),
                    "from": stored.item.from,
                    "to": stored.item.to.join(","),
                    "status": status,
                    "status_desc": status_desc,
                })
            })
            .collect();
        Answer::ok(json!({ "data": data }))
    }

    /// getEdoc (§3): `data` = base64 of the stored file; downloadEdoc (§2): the file
    /// itself. Only for an item in the caller's mailbox.
    fn get_edoc(&self, call: &Call, raw: bool) -> Answer {
        let Some(doc_id) = call.get("docId") else {
            return Answer::fail(code::BAD_REQUEST, "docId is not signed", json!({}));
        };
        let mut inner = self.lock();
        let Some(stored) = inner.item_mut(&call.system_id, doc_id) else {
            let answer = Answer::fail(
                code::UNKNOWN_DOC,
                format!("docId {doc_id} is not in the mailbox of {}", call.system_id),
                json!({}),
            )
            .doc(doc_id);
            return if raw {
                answer.http(StatusCode::NOT_FOUND)
            } else {
                answer
            };
        };
        stored.item.fetches += 1;
        stored.fetched.get_or_insert_with(now);
        if raw {
            let mut answer = Answer::ok(json!({})).doc(doc_id);
            answer.raw = Some(stored.item.bytes.clone());
            return answer;
        }
        let data = base64::engine::general_purpose::STANDARD.encode(&stored.item.bytes);
        Answer::ok(json!({ "data": data })).doc(doc_id)
    }

    /// updateStatus (§2, §4): done | fail | processing on an item of the caller's
    /// mailbox. Repeating the current status is OK (at-least-once, §1); `done` and `fail`
    /// are final, so changing them afterwards is refused.
    fn update_status(&self, call: &Call) -> Answer {
        let Some(doc_id) = call.get("docId") else {
            return Answer::fail(code::BAD_REQUEST, "docId is not signed", json!({}));
        };
        let status = match call.get("status").map(|s| (s, DeliveryStatus::parse(s))) {
            Some((_, Some(status))) => status,
            other => {
                return Answer::fail(
                    code::BAD_REQUEST,
                    format!(
                        "status must be done, fail or processing, not {:?}",
                        other.map(|(s, _)| s)
                    ),
                    json!({}),
                )
                .doc(doc_id);
            }
        };
        let mut inner = self.lock();
        let Some(stored) = inner.item_mut(&call.system_id, doc_id) else {
            return Answer::fail(
                code::UNKNOWN_DOC,
                format!("docId {doc_id} is not in the mailbox of {}", call.system_id),
                json!({}),
            )
            .doc(doc_id);
        };
        let current = stored.item.status;
        let repeat = current == status;
        if !repeat && matches!(current, DeliveryStatus::Done | DeliveryStatus::Fail) {
            return Answer::fail(
                code::CONFLICT,
                format!(
                    "docId {doc_id} was already acknowledged {}",
                    current.wire().0
                ),
                json!({}),
            )
            .doc(doc_id);
        }
        stored.item.status = status;
        stored.item.updates.push(status);
        if !repeat {
            stored.updated = now();
        }
        let mut answer = Answer::ok(json!({})).doc(doc_id);
        answer.duplicate = repeat;
        answer
    }

    /// getSentEdocList (§3), best effort: one `data` item per receiving system (and per
    /// addressed agency no system serves) of the caller's sent message `docId`; without a
    /// `docId`, of every message it sent (of the signed `messagetype`, if any).
    fn get_sent_edoc_list(&self, call: &Call) -> Answer {
        let doc_id = call.get("docId");
        let message_type = call.get("messagetype");
        let inner = self.lock();
        let mine = (inner.sent.iter())
            .filter(|sent| sent.system_id == call.system_id)
            .filter(|sent| match doc_id {
                Some(doc_id) => sent.item.doc_id == doc_id,
                None => message_type.is_none_or(|t| t == sent.item.message_type),
            })
            .collect::<Vec<_>>();
        if let (Some(doc_id), true) = (doc_id, mine.is_empty()) {
            return Answer::fail(
                code::UNKNOWN_DOC,
                format!("{} sent no docId {doc_id}", call.system_id),
                json!({}),
            )
            .doc(doc_id);
        }
        let mut data = Vec::new();
        for sent in mine {
            let base = |to: &[String]| {
                let mut item = json!({
                    "senderDocId": sent.item.doc_id,
                    "fromCode": sent.item.from,
                    "toCode": to.join(","),
                    "sentTime": format_time(sent.sent),
                    "sendStatus": "sent",
                    "sendStatusDesc": "Đã gửi",
                    "serviceType": sent.item.service_type,
                    "messageType": sent.item.message_type,
                });
                if let Some(title) = &sent.title {
                    item["title"] = json!(title);
                }
                if let Some(notation) = &sent.notation {
                    item["notation"] = json!(notation);
                }
                item
            };
            for delivery in &sent.item.deliveries {
                let mut item = base(&delivery.to);
                item["receiverDocId"] = json!(delivery.doc_id);
                let received = (inner
                    .mailboxes
                    .get(&delivery.system_id)
                    .into_iter()
                    .flatten())
                .find(|stored| stored.item.doc_id == delivery.doc_id);
                if let Some(received) = received {
                    let (status, desc) = received.item.status.wire();
                    item["receiveStatus"] = json!(status);
                    item["receiveStatusDesc"] = json!(desc);
                    if let Some(fetched) = received.fetched {
                        item["receivedTime"] = json!(format_time(fetched));
                    }
                }
                data.push(item);
            }
            for code in &sent.item.undelivered {
                let mut item = base(std::slice::from_ref(code));
                item["receiveStatus"] = json!("outside");
                item["receiveStatusDesc"] = json!("Đơn vị không có hệ thống trên nền tảng giả lập");
                data.push(item);
            }
        }
        Answer::ok(json!({ "data": data }))
    }

    /// countReceiveEdoc / countReceiveStatus (§3): how many items getReceivedEdocList
    /// would list.
    fn count(&self, call: &Call, message_type: &str) -> Answer {
        let inner = self.lock();
        let count = (inner.mailboxes.get(&call.system_id).into_iter().flatten())
            .filter(|stored| {
                stored.item.message_type == message_type && stored.item.status.is_pending()
            })
            .count();
        Answer::ok(json!({ "count": count }))
    }
}

/// `{"DocId": ""}` for a failed sendEdoc (§3: without it the SDK's result is null).
fn doc_id_if(send_edoc: bool) -> Value {
    if send_edoc {
        json!({"DocId": ""})
    } else {
        json!({})
    }
}

/// The signed `to` header of sendEdoc: the raw JSON text of what the caller gave (§0),
/// usually an array of codes, maybe a single JSON string; a bare code or a comma-separated
/// list is taken too.
fn parse_to_header(value: &str) -> Vec<String> {
    let codes = match serde_json::from_str::<Value>(value) {
        Ok(Value::Array(items)) => items
            .iter()
            .filter_map(|item| item.as_str().map(str::to_owned))
            .collect(),
        Ok(Value::String(code)) => code.split(',').map(str::to_owned).collect(),
        _ => value.split(',').map(str::to_owned).collect::<Vec<_>>(),
    };
    codes
        .into_iter()
        .map(|code| code.trim().to_owned())
        .filter(|code| !code.is_empty())
        .collect()
}

/// SHA-256 in hex with `Integer.toHexString(0xff & b)` per byte: no zero padding (§2.1).
fn unpadded_sha256_hex(bytes: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    digest.as_ref().iter().map(|b| format!("{b:x}")).collect()
}

/// JSON with every non-ASCII character as a `\uXXXX` escape (surrogate pairs beyond the
/// BMP), §3 "sendEdoc decodes its response as US-ASCII". Non-ASCII only occurs inside
/// strings, so escaping it in the serialised text keeps the JSON valid.
fn ascii_json(value: &Value) -> String {
    let text = value.to_string();
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        if ch.is_ascii() {
            out.push(ch);
        } else {
            let mut units = [0u16; 2];
            for unit in ch.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// `yyyy/MM/dd HH:mm:ss` in Vietnam's time (UTC+7), like edXML timestamps. The SDK does
/// not parse these, and vxp-rest.md does not say what the real platform sends.
fn format_time(at: OffsetDateTime) -> String {
    let at = at.to_offset(time::macros::offset!(+7));
    at.format(time::macros::format_description!(
        "[year]/[month]/[day] [hour]:[minute]:[second]"
    ))
    .unwrap_or_default()
}

fn header_str(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
}

const DOWN_PAGE: &str = "<html>\r\n<head><title>503 Service Temporarily Unavailable</title></head>\r\n<body>\r\n<center><h1>503 Service Temporarily Unavailable</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n";

// ---------------------------------------------------------------------------------------
// §1 "How a server verifies"
// ---------------------------------------------------------------------------------------

/// A verified request: its system and its signed properties.
#[derive(Debug)]
struct Call {
    system_id: String,
    /// The received bytes of `XroadVnpt-sign-header` (the deduplication key, with the
    /// hash-file).
    sign_header: Vec<u8>,
    /// The signed properties without the `XroadVnpt-` prefix, in the signed order.
    signed: Vec<(String, String)>,
}

impl Call {
    /// A signed value; keys compare case-insensitively (§1 point 6: `docid` for `docId`).
    fn get(&self, key: &str) -> Option<&str> {
        self.signed
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug)]
struct Verified {
    hmac_ok: bool,
    headers_ok: bool,
    result: Result<Call, String>,
}

/// Checks a request's signature (§1 "How a server verifies", points 1–6). The HMAC and the
/// header checks are both evaluated, whatever the other's outcome, so that the log tells
/// them apart; the request goes on only if both pass.
fn verify(directory: &Directory, headers: &HeaderMap) -> Verified {
    let hmac = check_hmac(directory, headers);
    let signed = check_signed_headers(headers);
    let (hmac_ok, headers_ok) = (hmac.is_ok(), signed.is_ok());
    let result = match (hmac, signed) {
        (Err(reason), _) | (Ok(_), Err(reason)) => Err(reason),
        (Ok(system_id), Ok(signed)) => Ok(Call {
            system_id,
            sign_header: headers
                .get("XroadVnpt-sign-header")
                .map(|v| v.as_bytes().to_vec())
                .unwrap_or_default(),
            signed,
        }),
    };
    Verified {
        hmac_ok,
        headers_ok,
        result,
    }
}

/// Points 1–2: the secret of `XroadVnpt-systemid`; HMAC-SHA256(secret as UTF-8, the
/// received sign-header bytes) equals `XroadVnpt-hash-header` (hex, any case), compared in
/// constant time.
fn check_hmac(directory: &Directory, headers: &HeaderMap) -> Result<String, String> {
    let system_id = single(headers, "XroadVnpt-systemid")?.ok_or("no XroadVnpt-systemid header")?;
    let system_id =
        std::str::from_utf8(system_id).map_err(|_| "XroadVnpt-systemid is not UTF-8".to_owned())?;
    let secret = directory
        .secret(system_id)
        .ok_or_else(|| format!("unknown system {system_id:?}"))?;
    let sign_header =
        single(headers, "XroadVnpt-sign-header")?.ok_or("no XroadVnpt-sign-header header")?;
    let hash_header =
        single(headers, "XroadVnpt-hash-header")?.ok_or("no XroadVnpt-hash-header header")?;
    let tag =
        hex::decode(hash_header).map_err(|_| "XroadVnpt-hash-header is not hex".to_owned())?;
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    ring::hmac::verify(&key, sign_header, &tag).map_err(|_| {
        format!("XroadVnpt-hash-header is not the HMAC of the sign-header with the secret of {system_id}")
    })?;
    Ok(system_id.to_owned())
}

/// Points 3–6: the sign-header is a JSON object whose properties are all `XroadVnpt-*`
/// strings equal to the actual headers (names case-insensitive, values byte for byte),
/// listed in `XroadVnpt-sign-header-key` in the same order (never sorted), with
/// `systemid`, `timestamp` and `Content-Type` signed. Returns the properties without
/// their prefix.
fn check_signed_headers(headers: &HeaderMap) -> Result<Vec<(String, String)>, String> {
    const PREFIX: &str = "XroadVnpt-";
    let sign_header =
        single(headers, "XroadVnpt-sign-header")?.ok_or("no XroadVnpt-sign-header header")?;
    let object: OrderedObject = serde_json::from_slice(sign_header)
        .map_err(|e| format!("XroadVnpt-sign-header is not a JSON object: {e}"))?;
    let mut signed: Vec<(String, String)> = Vec::new();
    for (name, value) in object.0 {
        let Value::String(value) = value else {
            return Err(format!("signed {name} is not a string"));
        };
        let key = name
            .get(..PREFIX.len())
            .filter(|prefix| prefix.eq_ignore_ascii_case(PREFIX))
            .map(|_| &name[PREFIX.len()..])
            .ok_or_else(|| format!("signed property {name} lacks the {PREFIX} prefix"))?;
        if signed.iter().any(|(k, _)| k.eq_ignore_ascii_case(key)) {
            return Err(format!("{name} is signed twice"));
        }
        let actual = single(headers, &name)
            .map_err(|e| format!("signed {e}"))?
            .ok_or_else(|| format!("{name} is signed but absent from the headers"))?;
        if actual != value.as_bytes() {
            return Err(format!(
                "{name} is signed as {value:?} but the header is {:?}",
                String::from_utf8_lossy(actual)
            ));
        }
        signed.push((key.to_owned(), value));
    }
    let listed = single(headers, "XroadVnpt-sign-header-key")?
        .ok_or("no XroadVnpt-sign-header-key header")?;
    let keys = signed
        .iter()
        .map(|(k, _)| k.as_str())
        .collect::<Vec<_>>()
        .join(";");
    if listed != keys.as_bytes() {
        return Err(format!(
            "XroadVnpt-sign-header-key {:?} does not list the signed keys in their order ({keys:?})",
            String::from_utf8_lossy(listed)
        ));
    }
    for required in ["systemid", "timestamp", "Content-Type"] {
        if !signed.iter().any(|(k, _)| k.eq_ignore_ascii_case(required)) {
            return Err(format!("{PREFIX}{required} is not signed"));
        }
    }
    let timestamp = (signed.iter())
        .find(|(k, _)| k.eq_ignore_ascii_case("timestamp"))
        .map(|(_, v)| v.as_str())
        .unwrap_or_default();
    if !is_sdk_timestamp(timestamp) {
        return Err(format!(
            "timestamp {timestamp:?} is not ddMMyyyy'T'HHmmss+SSSS"
        ));
    }
    Ok(signed)
}

/// The shape of the SDK's timestamp, `ddMMyyyy'T'HHmmss+SSSS` (§1), e.g.
/// `05122026T075731+0423`. Its age is not checked: the SDK freezes it per object (§5).
fn is_sdk_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    let digits = |range: std::ops::Range<usize>| b[range].iter().all(u8::is_ascii_digit);
    b.len() == 20
        && digits(0..8)
        && b[8] == b'T'
        && digits(9..15)
        && b[15] == b'+'
        && digits(16..20)
}

/// The one value of header `name` (case-insensitive); an error when it is repeated.
fn single<'h>(headers: &'h HeaderMap, name: &str) -> Result<Option<&'h [u8]>, String> {
    let mut values = headers.get_all(name).iter();
    let first = values.next().map(|v| v.as_bytes());
    if values.next().is_some() {
        return Err(format!("header {name} is repeated"));
    }
    Ok(first)
}

/// A JSON object's members in their received order (serde_json's `Map` may sort them),
/// duplicates kept so that they can be refused.
#[derive(Debug)]
struct OrderedObject(Vec<(String, Value)>);

impl<'de> serde::Deserialize<'de> for OrderedObject {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = OrderedObject;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<OrderedObject, A::Error> {
                let mut members = Vec::new();
                while let Some(member) = map.next_entry::<String, Value>()? {
                    members.push(member);
                }
                Ok(OrderedObject(members))
            }
        }
        deserializer.deserialize_map(Visitor)
    }
}

// ---------------------------------------------------------------------------------------
// edXML addresses (§4 "Routing")
// ---------------------------------------------------------------------------------------

/// The addresses in an edXML `MessageHeader`, read with quick-xml by local name (any
/// namespace prefix, `edXML:` or none), ignoring what is outside `MessageHeader` (the
/// `TraceHeaderList`, the `Bussiness` receiver lists, `ToPlaces`).
///
/// **How a status is routed: by `MessageHeader/ResponseFor/OrganId`.** In every status
/// sample that element names the organisation the status is meant for:
///
/// - 01–06, 15, 16 (`status_acceptance_03.edxml` and the rest): `From/OrganId` is
///   `000.00.00.H41`, the receiver of the original document, reporting back, and
///   `ResponseFor` is `<edXML:OrganId>000.00.00.G22</edXML:OrganId>` with
///   `<edXML:DocumentId>000.00.00.G22,2015/09/30,7816/VPCP-TTĐT</edXML:DocumentId>`: the
///   organisation that sent the original document (its code opens the DocumentId).
/// - 13 (`status_cancellation_13.edxml`, "Văn thư yêu cầu lấy lại văn bản", the sender
///   asking for its document back) goes the other way: `From/OrganId` is
///   `000.00.00.G22`, the original sender, and `ResponseFor/OrganId` is
///   `000.00.00.H41`, the original receiver, while the DocumentId still starts with G22.
///
/// So `ResponseFor/OrganId` is the status's addressee: the original sender for the
/// receiver's feedback, the original receiver for a cancellation request. The
/// DocumentId's leading code (always the original sender) would misroute status 13.
#[derive(Debug, Default, PartialEq, Eq)]
struct EdxmlAddresses {
    from: Option<String>,
    /// Every non-empty `MessageHeader/To/OrganId`.
    to: Vec<String>,
    /// Every non-empty `MessageHeader/ResponseFor/OrganId`.
    response_for: Vec<String>,
    subject: Option<String>,
    notation: Option<String>,
}

impl EdxmlAddresses {
    fn read(file: &[u8]) -> Result<Self, String> {
        // Some real files carry stray bytes (a BOM, junk) before `<?xml`.
        let start = file.iter().position(|&b| b == b'<').ok_or("no XML in it")?;
        let text = String::from_utf8_lossy(&file[start..]);
        let mut reader = quick_xml::Reader::from_str(&text);
        let mut path: Vec<String> = Vec::new();
        let mut current = String::new();
        let mut found = EdxmlAddresses::default();
        let mut saw_header = false;
        loop {
            use quick_xml::events::Event;
            let event = reader
                .read_event()
                .map_err(|e| format!("at byte {}: {e}", reader.buffer_position()))?;
            match event {
                Event::Start(e) => {
                    path.push(e.local_name().as_ref().to_owned());
                    current.clear();
                }
                Event::Empty(_) => current.clear(),
                Event::Text(t) => current.push_str(&t.xml10_content()),
                Event::CData(t) => current.push_str(&t),
                Event::GeneralRef(r) => match r.resolve_char_ref() {
                    Ok(Some(ch)) => current.push(ch),
                    _ => current.push_str(match &*r {
                        "lt" => "<",
                        "gt" => ">",
                        "amp" => "&",
                        "apos" => "'",
                        "quot" => "\"",
                        _ => "",
                    }),
                },
                Event::End(_) => {
                    let names: Vec<&str> = path.iter().map(String::as_str).collect();
                    let value = current.trim().to_owned();
                    let push = |list: &mut Vec<String>| {
                        if !value.is_empty() && !list.contains(&value) {
                            list.push(value.clone());
                        }
                    };
                    match names.as_slice() {
                        [.., "MessageHeader"] => saw_header = true,
                        [.., "MessageHeader", "From", "OrganId"] if !value.is_empty() => {
                            found.from.get_or_insert(value.clone());
                        }
                        [.., "MessageHeader", "To", "OrganId"] => push(&mut found.to),
                        [.., "MessageHeader", "ResponseFor", "OrganId"] => {
                            push(&mut found.response_for)
                        }
                        [.., "MessageHeader", "Subject"] if !value.is_empty() => {
                            found.subject.get_or_insert(value.clone());
                        }
                        [.., "MessageHeader", "Code", "CodeNotation"] if !value.is_empty() => {
                            found.notation.get_or_insert(value.clone());
                        }
                        _ => {}
                    }
                    path.pop();
                    current.clear();
                }
                Event::Eof => break,
                _ => {}
            }
        }
        if !saw_header {
            return Err("no MessageHeader element".to_owned());
        }
        Ok(found)
    }
}

#[cfg(test)]
mod unit {
    use super::*;

    const STATUS_03: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n<edXML xmlns=\"http://www.mic.gov.vn/TBT/QCVN_102_2016\">\r\n  <edXML:edXMLEnvelope xmlns:edXML=\"http://www.mic.gov.vn/TBT/QCVN_102_2016\">\r\n    <edXML:edXMLHeader>\r\n      <edXML:MessageHeader>\r\n        <edXML:From>\r\n\t\t\t<edXML:OrganId>000.00.00.H41</edXML:OrganId>\r\n        </edXML:From>\r\n        <edXML:ResponseFor>\r\n\t\t\t<edXML:OrganId>000.00.00.G22</edXML:OrganId>\r\n\t\t\t<edXML:DocumentId>000.00.00.G22,2015/09/30,7816/VPCP-TTĐT</edXML:DocumentId>\r\n        </edXML:ResponseFor>\r\n        <edXML:StatusCode>03</edXML:StatusCode>\r\n      </edXML:MessageHeader>\r\n    </edXML:edXMLHeader>\r\n  </edXML:edXMLEnvelope>\r\n</edXML>\r\n";

    #[test]
    fn a_status_is_addressed_by_response_for() {
        let found = EdxmlAddresses::read(STATUS_03.as_bytes()).unwrap();
        assert_eq!(found.from.as_deref(), Some("000.00.00.H41"));
        assert_eq!(found.response_for, ["000.00.00.G22"]);
        assert!(found.to.is_empty());
    }

    #[test]
    fn to_outside_the_message_header_is_not_an_address() {
        let xml = "\u{feff}<e><MessageHeader><From><OrganId>A</OrganId></From><To><OrganId> B </OrganId></To><To><OrganId>C</OrganId></To><ToPlaces><Place>x</Place></ToPlaces><ResponseFor><OrganId></OrganId></ResponseFor></MessageHeader><TraceHeaderList><TraceHeader><OrganId>T</OrganId></TraceHeader><Bussiness><ReceiverList><Receiver><OrganId>R</OrganId></Receiver></ReceiverList></Bussiness></TraceHeaderList></e>";
        let found = EdxmlAddresses::read(xml.as_bytes()).unwrap();
        assert_eq!(found.to, ["B", "C"]);
        assert!(found.response_for.is_empty());
    }

    #[test]
    fn unpadded_hex_drops_leading_zeros_per_byte() {
        // SHA-256("abc") = ba7816bf 8f01cfea ...: 0x01 becomes "1".
        assert!(unpadded_sha256_hex(b"abc").starts_with("ba7816bf8f1cfea"));
    }

    #[test]
    fn json_is_ascii_with_surrogate_pairs() {
        let text = ascii_json(&json!({"a": "Thành 𝄞"}));
        assert_eq!(text, r#"{"a":"Th\u00e0nh \ud834\udd1e"}"#);
        assert_eq!(
            serde_json::from_str::<Value>(&text).unwrap()["a"],
            "Thành 𝄞"
        );
    }

    #[test]
    fn to_header_forms() {
        assert_eq!(parse_to_header(r#"["A","B"]"#), ["A", "B"]);
        assert_eq!(parse_to_header(r#""A""#), ["A"]);
        assert_eq!(parse_to_header("A, B"), ["A", "B"]);
    }
}
