//! The client direction: [`VxpClient`] calls a VXP server (the national platform, for the
//! bridge by which a lienthong node is one more system on it; or a lienthong gateway) as
//! the SDK does: the same signed headers ([`crate::headers`]), the same request shapes
//! ([`crate::ops`]), the same responses ([`crate::response`]), over HTTPS with rustls
//! (ring) and hyper-util's pooled client.
//!
//! Where it differs from the SDK, on purpose: a fresh timestamp for every call (the SDK
//! freezes it per service object); no stale keys from earlier calls; messages streamed
//! from and to files, never held whole; HTTPS only.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Request, Uri};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::{TokioExecutor, TokioIo};
use ring::digest;
use serde::de::DeserializeOwned;
use time::UtcOffset;
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use crate::body::ReaderBody;
use crate::error::{Result, VxpError};
use crate::get_edoc::GetEdocDecoder;
use crate::hash_file::hash_file_hex;
use crate::headers::Secret;
use crate::ops::{DeliveryStatus, MessageType, Operation, OperationKind, SendEdoc};
use crate::response::{
    AgencyEntry, AgencyQd20Entry, CountResponse, DataResponse, Outcome, ReceivedEdoc,
    SendEdocResponse, SentEdoc, SyncUnit,
};
use crate::timestamp::{VIETNAM, timestamp_now};

/// Default [`ClientConfig::max_response_bytes`]: 256 MiB (the national agency list is
/// about 110,000 entries).
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 256 << 20;

/// How to reach a VXP server and who to be on it.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// The base URL, `https://host[:port][/path]`; operations go to `<endpoint>/<op>`.
    pub endpoint: String,
    /// The system id the server knows this system by.
    pub system_id: String,
    pub secret: Secret,
    /// TLS to the server (build it with the ring provider).
    pub tls: Arc<rustls::ClientConfig>,
    /// The zone timestamps are written in. Default: +07:00.
    pub utc_offset: UtcOffset,
    /// `filePath`, the local folder the SDK signs on getEdoc and downloadEdoc; servers
    /// are not known to need it, the SDK always sends it. `None` leaves it out.
    pub file_path: Option<String>,
    /// The largest JSON answer read (getEdoc's is streamed and not bounded by this).
    pub max_response_bytes: usize,
}

impl ClientConfig {
    pub fn new(
        endpoint: impl Into<String>,
        system_id: impl Into<String>,
        secret: Secret,
        tls: Arc<rustls::ClientConfig>,
    ) -> Self {
        ClientConfig {
            endpoint: endpoint.into(),
            system_id: system_id.into(),
            secret,
            tls,
            utc_offset: VIETNAM,
            file_path: Some(".".into()),
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
        }
    }
}

type ReqBody = UnsyncBoxBody<Bytes, std::io::Error>;

/// A VXP client. Cheap to clone; connections are pooled and kept alive.
#[derive(Clone, Debug)]
pub struct VxpClient {
    config: ClientConfig,
    http: Client<TlsConnector, ReqBody>,
}

impl VxpClient {
    pub fn new(config: ClientConfig) -> Result<Self> {
        let bad = |reason: &str| VxpError::BadEndpoint {
            endpoint: config.endpoint.clone(),
            reason: reason.to_string(),
        };
        let uri: Uri = config
            .endpoint
            .parse()
            .map_err(|_| bad("it is not a URL"))?;
        if uri.scheme_str() != Some("https") {
            return Err(bad(
                "it must start with https:// (lienthong has no plaintext mode)",
            ));
        }
        if uri.host().is_none() {
            return Err(bad("it names no host"));
        }
        let connector = TlsConnector {
            tls: tokio_rustls::TlsConnector::from(config.tls.clone()),
        };
        let http = Client::builder(TokioExecutor::new()).build(connector);
        Ok(VxpClient { config, http })
    }

    /// `endpoint + "/" + op`, plain concatenation as in the SDK.
    fn url(&self, kind: OperationKind) -> Result<Uri> {
        let url = format!("{}/{}", self.config.endpoint, kind.name());
        url.parse().map_err(|_| VxpError::BadEndpoint {
            endpoint: self.config.endpoint.clone(),
            reason: format!("{url} is not a URL"),
        })
    }

    /// Sends `op` signed, with `body`; returns the answer's head and body.
    async fn call(
        &self,
        op: &Operation,
        body: ReqBody,
    ) -> Result<http::Response<hyper::body::Incoming>> {
        self.call_at(op, body, &timestamp_now(self.config.utc_offset))
            .await
    }

    /// [`VxpClient::call`] signed with `timestamp`.
    async fn call_at(
        &self,
        op: &Operation,
        body: ReqBody,
        timestamp: &str,
    ) -> Result<http::Response<hyper::body::Incoming>> {
        let kind = op.kind();
        let url = self.url(kind)?;
        let signed = op.signed_headers(&self.config.system_id, timestamp);
        let mut request = Request::builder().method(kind.method()).uri(url.clone());
        let headers = request.headers_mut().expect("the builder has no error yet");
        for (name, value) in signed.to_http_headers(&self.config.secret) {
            // Raw bytes: a non-ASCII value goes out as UTF-8, as HttpURLConnection sends it.
            let header = HeaderName::from_bytes(name.as_bytes())
                .ok()
                .zip(HeaderValue::from_bytes(value.as_bytes()).ok());
            let Some((n, v)) = header else {
                return Err(VxpError::BadHeader { name, value });
            };
            headers.append(n, v);
        }
        let request = request.body(body).map_err(|e| VxpError::Transport {
            url: url.to_string(),
            reason: e.to_string(),
        })?;
        self.http
            .request(request)
            .await
            .map_err(|e| VxpError::Transport {
                url: url.to_string(),
                reason: error_chain(&e),
            })
    }

    /// Calls `op` with the SDK's small body and reads a JSON answer of type `T`.
    async fn call_json<T: DeserializeOwned>(&self, op: &Operation) -> Result<T> {
        let body = Full::new(Bytes::from_static(op.kind().sdk_body()))
            .map_err(|never| match never {})
            .boxed_unsync();
        let response = self.call(op, body).await?;
        self.read_json(op.kind(), response).await
    }

    async fn read_json<T: DeserializeOwned>(
        &self,
        kind: OperationKind,
        response: http::Response<hyper::body::Incoming>,
    ) -> Result<T> {
        let op = kind.name();
        // The HTTP status is ignored, as the SDK ignores it: a JSON answer is an answer
        // (the status only says more about one that is not).
        let status = response.status();
        let bad = |reason: String| VxpError::BadResponse {
            op,
            reason: format!("HTTP {status}: {reason}"),
        };
        let bytes = Limited::new(response.into_body(), self.config.max_response_bytes)
            .collect()
            .await
            .map_err(|e| bad(format!("reading it failed: {e}")))?
            .to_bytes();
        if bytes.is_empty() {
            return Err(bad("it is empty".into()));
        }
        serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))
    }

    fn check(kind: OperationKind, outcome: &Outcome) -> Result<()> {
        if outcome.is_success() {
            Ok(())
        } else {
            Err(VxpError::Remote {
                op: kind.name(),
                error_code: outcome.error_code.clone(),
                error_desc: outcome.error_desc.clone(),
            })
        }
    }

    async fn data<T: DeserializeOwned>(&self, op: Operation) -> Result<Vec<T>> {
        let answer: DataResponse<T> = self.call_json(&op).await?;
        Self::check(op.kind(), &answer.outcome)?;
        Ok(answer.data.unwrap_or_default())
    }

    /// sendEdoc: sends the edXML file at `path` from agency `from`; returns the DocId.
    /// The file is read twice (for `hash-file`, then as the body) and never held whole.
    pub async fn send_edoc(
        &self,
        from: &str,
        message_type: MessageType,
        to: Option<&str>,
        path: &Path,
    ) -> Result<String> {
        let timestamp = self.timestamp();
        self.send_edoc_at(from, message_type, to, path, &timestamp)
            .await
    }

    /// A timestamp for a call made now, in the client's zone.
    pub fn timestamp(&self) -> String {
        timestamp_now(self.config.utc_offset)
    }

    /// [`VxpClient::send_edoc`] signed with `timestamp`: a re-send with the timestamp of
    /// the first attempt is byte for byte the request the SDK re-sends after a dropped
    /// connection, which a VXP server deduplicates (vxp-rest.md §1, §5).
    pub async fn send_edoc_at(
        &self,
        from: &str,
        message_type: MessageType,
        to: Option<&str>,
        path: &Path,
        timestamp: &str,
    ) -> Result<String> {
        let io = |source| VxpError::Io {
            what: "cannot read",
            path: path.to_path_buf(),
            source,
        };
        let mut file = tokio::fs::File::open(path).await.map_err(io)?;
        let mut ctx = digest::Context::new(&digest::SHA256);
        let mut buf = vec![0u8; 256 * 1024];
        let mut len = 0u64;
        loop {
            let n = file.read(&mut buf).await.map_err(io)?;
            if n == 0 {
                break;
            }
            ctx.update(&buf[..n]);
            len += n as u64;
        }
        let op = Operation::SendEdoc(SendEdoc {
            from: from.to_string(),
            message_type,
            hash_file: hash_file_hex(ctx.finish().as_ref()),
            to: to.map(str::to_string),
        });
        let file = tokio::fs::File::open(path).await.map_err(io)?;
        // The file and the CRLF the SDK appends, with a Content-Length as
        // HttpURLConnection sends it.
        let body = ReaderBody::raw(
            Bytes::new(),
            Box::pin(file),
            Some(len),
            Bytes::from_static(b"\r\n"),
        )
        .boxed_unsync();
        let response = self.call_at(&op, body, timestamp).await?;
        let answer: SendEdocResponse = self.read_json(OperationKind::SendEdoc, response).await?;
        Self::check(OperationKind::SendEdoc, &answer.outcome)?;
        Ok(answer.doc_id)
    }

    /// getReceivedEdocList.
    pub async fn received_edocs(&self, message_type: MessageType) -> Result<Vec<ReceivedEdoc>> {
        self.data(Operation::GetReceivedEdocList { message_type })
            .await
    }

    /// getEdoc: writes the message's edXML to `out` as it arrives; returns its length.
    /// On an error the bytes already written are not a message: write to a temporary file
    /// and keep it only on `Ok`.
    pub async fn get_edoc(&self, doc_id: &str, out: &mut (impl AsyncWrite + Unpin)) -> Result<u64> {
        let op = Operation::GetEdoc {
            doc_id: doc_id.to_string(),
            file_path: self.config.file_path.clone(),
        };
        let body = Full::new(Bytes::from_static(op.kind().sdk_body()))
            .map_err(|never| match never {})
            .boxed_unsync();
        let response = self.call(&op, body).await?;
        let mut body = response.into_body();
        let mut decoder = GetEdocDecoder::new();
        let mut decoded = Vec::with_capacity(64 * 1024);
        let mut written = 0u64;
        let write_err = |e: std::io::Error| VxpError::BadResponse {
            op: "getEdoc",
            reason: format!("writing the message failed: {e}"),
        };
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| VxpError::BadResponse {
                op: "getEdoc",
                reason: format!("the answer broke off: {}", error_chain(&e)),
            })?;
            let Ok(chunk) = frame.into_data() else {
                continue;
            };
            decoder.push(&chunk, &mut decoded)?;
            out.write_all(&decoded).await.map_err(write_err)?;
            written += decoded.len() as u64;
            decoded.clear();
        }
        out.flush().await.map_err(write_err)?;
        let answer = decoder.finish()?;
        Self::check(OperationKind::GetEdoc, &answer.outcome)?;
        if !answer.had_data {
            return Err(VxpError::BadResponse {
                op: "getEdoc",
                reason: "it reports success but carries no data".into(),
            });
        }
        Ok(written)
    }

    /// downloadEdoc: writes the raw answer to `out`; returns its length. An empty answer
    /// is the server's refusal (the SDK then reports `FAIL`/`100`, and so does this).
    pub async fn download_edoc(
        &self,
        doc_id: &str,
        out: &mut (impl AsyncWrite + Unpin),
    ) -> Result<u64> {
        let op = Operation::DownloadEdoc {
            doc_id: doc_id.to_string(),
            file_path: self.config.file_path.clone(),
        };
        let response = self
            .call(
                &op,
                Full::new(Bytes::new())
                    .map_err(|never| match never {})
                    .boxed_unsync(),
            )
            .await?;
        let refusal = response
            .headers()
            .get("x-vxp-errordesc")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("the server sent nothing")
            .to_string();
        let mut body = response.into_body();
        let mut written = 0u64;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| VxpError::BadResponse {
                op: "downloadEdoc",
                reason: format!("the answer broke off: {}", error_chain(&e)),
            })?;
            let Ok(chunk) = frame.into_data() else {
                continue;
            };
            out.write_all(&chunk)
                .await
                .map_err(|e| VxpError::BadResponse {
                    op: "downloadEdoc",
                    reason: format!("writing the message failed: {e}"),
                })?;
            written += chunk.len() as u64;
        }
        if written == 0 {
            return Err(VxpError::Remote {
                op: "downloadEdoc",
                error_code: "100".into(),
                error_desc: refusal,
            });
        }
        Ok(written)
    }

    /// updateStatus.
    pub async fn update_status(&self, doc_id: &str, status: DeliveryStatus) -> Result<()> {
        let op = Operation::UpdateStatus {
            status,
            doc_id: doc_id.to_string(),
        };
        let outcome: Outcome = self.call_json(&op).await?;
        Self::check(op.kind(), &outcome)
    }

    /// getSentEdocList.
    pub async fn sent_edocs(
        &self,
        message_type: MessageType,
        doc_id: Option<&str>,
    ) -> Result<Vec<SentEdoc>> {
        self.data(Operation::GetSentEdocList {
            message_type,
            doc_id: doc_id.map(str::to_string),
        })
        .await
    }

    /// getAgenciesList.
    pub async fn agencies(&self) -> Result<Vec<AgencyEntry>> {
        self.data(Operation::GetAgenciesList).await
    }

    /// getAgenciesListQD20.
    pub async fn agencies_qd20(&self, level: &str) -> Result<Vec<AgencyQd20Entry>> {
        self.data(Operation::GetAgenciesListQD20 {
            level: level.to_string(),
        })
        .await
    }

    /// getSynchronizeUnit.
    pub async fn synchronize_units(&self) -> Result<Vec<SyncUnit>> {
        self.data(Operation::GetSynchronizeUnit).await
    }

    /// countReceiveEdoc or countReceiveStatus.
    pub async fn count_received(&self, message_type: MessageType) -> Result<u64> {
        let op = match message_type {
            MessageType::Edoc => Operation::CountReceiveEdoc,
            MessageType::Status => Operation::CountReceiveStatus,
        };
        let answer: CountResponse = self.call_json(&op).await?;
        Self::check(op.kind(), &answer.outcome)?;
        answer.count.ok_or_else(|| VxpError::BadResponse {
            op: op.kind().name(),
            reason: "it reports success but has no count".into(),
        })
    }
}

/// An error and its sources on one line (TLS alerts hide in the sources).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// TCP then TLS to the host of a URI, for hyper-util's pooled client.
#[derive(Clone)]
struct TlsConnector {
    tls: tokio_rustls::TlsConnector,
}

impl std::fmt::Debug for TlsConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsConnector")
    }
}

impl tower::Service<Uri> for TlsConnector {
    type Response = TlsConnection;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = std::io::Result<TlsConnection>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let tls = self.tls.clone();
        Box::pin(async move {
            let invalid =
                |msg: &str| std::io::Error::new(std::io::ErrorKind::InvalidInput, msg.to_string());
            let host = uri.host().ok_or_else(|| invalid("the URL names no host"))?;
            let host = host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string();
            let port = uri.port_u16().unwrap_or(443);
            let name = rustls::pki_types::ServerName::try_from(host.clone())
                .map_err(|_| invalid("the host is not a DNS name or an IP address"))?;
            let tcp = TcpStream::connect((host.as_str(), port)).await?;
            tcp.set_nodelay(true)?;
            let stream = tls.connect(name, tcp).await?;
            Ok(TlsConnection(TokioIo::new(stream)))
        })
    }
}

/// A TLS connection as hyper reads and writes it.
struct TlsConnection(TokioIo<TlsStream<TcpStream>>);

impl Connection for TlsConnection {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl hyper::rt::Read for TlsConnection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for TlsConnection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write_vectored(cx, bufs)
    }
}
