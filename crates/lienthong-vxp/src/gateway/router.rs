//! The gateway's HTTP surface: one route `/{op}` for every operation, generic over the
//! [`VxpBackend`].
//!
//! Every request goes the same way: headers verified ([`crate::headers::verify`]), the
//! timestamp checked when a window is configured, the operation read from the signed set,
//! the agency checked against the system's, and only then the body read and the backend
//! called. A refusal answers in the SDK's error shape (HTTP 200, `status` `FAIL`; the SDK
//! ignores HTTP status) and the backend never hears of the request.
//!
//! `Expect: 100-continue`, which the SDK's HttpClient sends with every non-empty body, is
//! answered by hyper when the handler first reads the body: the gateway reads a body only
//! after the headers passed, so a refused request is answered at once and its body is
//! never sent.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use http_body_util::BodyExt;
use lienthong_core::AgencyCode;
use serde::Serialize;
use time::UtcOffset;

use crate::body::ReaderBody;
use crate::error::{Result, VxpError};
use crate::gateway::backend::{EdocSubmission, VxpBackend, idempotency_key};
use crate::gateway::config::{GatewayConfig, SystemScope, Systems};
use crate::gateway::spool::spool_body;
use crate::get_edoc::{TAIL, success_head};
use crate::headers::verify;
use crate::ops::{MessageType, Operation, OperationKind, SendEdoc};
use crate::response::{
    CountResponse, DataResponse, Outcome, SendEdocResponse, ascii_escape, to_ascii_json,
};
use crate::timestamp::check_freshness;

/// The largest body read (and discarded) for operations other than sendEdoc, whose SDK
/// bodies are `{}` or empty. A larger one is left unread and the connection closes.
const MAX_SMALL_BODY: usize = 64 * 1024;

/// Limits and clocks of a gateway.
#[derive(Clone, Debug)]
pub struct GatewaySettings {
    pub max_edoc_bytes: u64,
    pub spool_dir: PathBuf,
    pub timestamp_window: Option<Duration>,
    pub utc_offset: UtcOffset,
}

/// A gateway: the systems it knows, its settings and the backend it calls.
pub struct Gateway<B> {
    backend: B,
    systems: Systems,
    settings: GatewaySettings,
    /// One lock per sendEdoc idempotency key in flight, so that a re-send arriving while
    /// the first copy is still being accepted waits for it instead of racing it into the
    /// backend.
    in_flight: Mutex<HashMap<[u8; 32], Weak<tokio::sync::Mutex<()>>>>,
}

impl<B> std::fmt::Debug for Gateway<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("settings", &self.settings)
            .finish()
    }
}

impl<B: VxpBackend> Gateway<B> {
    /// Loads the systems and secrets of `config` (refusing a secrets file others can read)
    /// and builds the gateway.
    pub fn from_config(config: &GatewayConfig, backend: B) -> Result<Arc<Self>> {
        let settings = GatewaySettings {
            max_edoc_bytes: config.max_edoc_bytes,
            spool_dir: config.spool_dir.clone().unwrap_or_else(std::env::temp_dir),
            timestamp_window: config.timestamp_window_secs.map(Duration::from_secs),
            utc_offset: config.utc_offset()?,
        };
        Ok(Self::new(config.load_systems()?, settings, backend))
    }

    pub fn new(systems: Systems, settings: GatewaySettings, backend: B) -> Arc<Self> {
        Arc::new(Gateway {
            backend,
            systems,
            settings,
            in_flight: Mutex::new(HashMap::new()),
        })
    }

    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// The axum router serving every operation at `/<operation>`. Nest it under a path to
    /// serve the gateway below a base URL.
    pub fn router(self: &Arc<Self>) -> Router {
        Router::new()
            .route("/{op}", any(handle::<B>))
            .fallback(|uri: http::Uri| async move {
                let op = uri.path().to_string();
                failure(None, &VxpError::UnsupportedOperation { op })
            })
            .with_state(self.clone())
    }

    fn key_lock(&self, key: [u8; 32]) -> Arc<tokio::sync::Mutex<()>> {
        let mut map = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(lock) = map.get(&key).and_then(Weak::upgrade) {
            return lock;
        }
        map.retain(|_, w| w.strong_count() > 0);
        let lock = Arc::new(tokio::sync::Mutex::new(()));
        map.insert(key, Arc::downgrade(&lock));
        lock
    }

    /// Verifies, authorizes and serves one request. `body` stays in its slot until the
    /// request is accepted far enough to read it.
    async fn process(
        &self,
        kind: OperationKind,
        parts: &http::request::Parts,
        body: &mut Option<Body>,
    ) -> Result<Response> {
        let verified = verify(&parts.headers, &self.systems)?;
        if let Some(window) = self.settings.timestamp_window {
            let ts = verified
                .signed
                .get("timestamp")?
                .ok_or(VxpError::MissingInput {
                    op: kind.name(),
                    key: "timestamp",
                })?;
            check_freshness(
                ts,
                self.settings.utc_offset,
                window,
                time::OffsetDateTime::now_utc(),
            )?;
        }
        let op = Operation::from_signed(kind, &verified.signed)?;
        // verify() found the system's secret, so the system is configured.
        let scope =
            self.systems
                .scope(&verified.system_id)
                .ok_or_else(|| VxpError::UnknownSystem {
                    system_id: verified.system_id.clone(),
                })?;
        if let Operation::SendEdoc(send) = op {
            return self.send_edoc(scope, send, &parts.headers, body).await;
        }
        if let Some(body) = body.take() {
            drain(body, MAX_SMALL_BODY).await;
        }
        let b = &self.backend;
        Ok(match op {
            Operation::SendEdoc(_) => unreachable!("handled above"),
            Operation::GetReceivedEdocList { message_type } => {
                data(b.received_edocs(scope, message_type).await?)
            }
            Operation::GetSentEdocList {
                message_type,
                doc_id,
            } => data(b.sent_edocs(scope, message_type, doc_id.as_deref()).await?),
            Operation::GetAgenciesList => data(b.agencies(scope).await?),
            Operation::GetAgenciesListQD20 { level } => data(b.agencies_qd20(scope, &level).await?),
            Operation::GetSynchronizeUnit => data(b.synchronize_units(scope).await?),
            Operation::CountReceiveEdoc => count(b.count_received(scope, MessageType::Edoc).await?),
            Operation::CountReceiveStatus => {
                count(b.count_received(scope, MessageType::Status).await?)
            }
            Operation::UpdateStatus { status, doc_id } => {
                b.update_status(scope, &doc_id, status).await?;
                json(&Outcome::success())
            }
            Operation::GetEdoc { doc_id, .. } => {
                let edoc = b.edoc(scope, &doc_id).await?;
                let body = ReaderBody::base64(success_head(), edoc.reader, edoc.len, TAIL);
                with_type(Body::new(body), "application/json")
            }
            Operation::DownloadEdoc { doc_id, .. } => {
                let edoc = b.edoc(scope, &doc_id).await?;
                let body = ReaderBody::raw(Bytes::new(), edoc.reader, edoc.len, Bytes::new());
                with_type(Body::new(body), "application/xml")
            }
        })
    }

    async fn send_edoc(
        &self,
        scope: &SystemScope,
        send: SendEdoc,
        headers: &http::HeaderMap,
        body: &mut Option<Body>,
    ) -> Result<Response> {
        // A QĐ 20/2020 code, or an identifier the bus's directory places (a platform
        // account id, a legacy code).
        let from = match AgencyCode::parse_canonical(&send.from) {
            Ok(code) => code,
            Err(_) => self
                .backend
                .resolve_agency(scope, &send.from)
                .await?
                .ok_or_else(|| VxpError::InvalidInput {
                    key: "from",
                    value: send.from.clone(),
                    expected: "an agency code of QĐ 20/2020 written canonically, such as 000.00.00.H41, or an identifier the directory lists for an agency",
                })?,
        };
        if !scope.may_act_for(&from) {
            return Err(VxpError::AgencyNotAllowed {
                system_id: scope.system_id.clone(),
                agency: send.from,
            });
        }
        let max = self.settings.max_edoc_bytes;
        let declared = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|len| len > max.saturating_add(2)) {
            return Err(VxpError::BodyTooLarge { limit: max });
        }
        let body = body.take().ok_or_else(|| VxpError::BodyUnreadable {
            reason: "it was already read".into(),
        })?;
        let edoc = spool_body(body, &self.settings.spool_dir, max, &send.hash_file).await?;
        let key = idempotency_key(&from, send.message_type, send.to.as_deref(), &edoc.sha256);
        let lock = self.key_lock(key);
        let _serialized = lock.lock().await;
        let doc_id = self
            .backend
            .send_edoc(
                scope,
                EdocSubmission {
                    from,
                    message_type: send.message_type,
                    to: send.to,
                    idempotency_key: key,
                    edoc,
                },
            )
            .await?;
        Ok(json(&SendEdocResponse {
            outcome: Outcome::success(),
            doc_id,
        }))
    }
}

async fn handle<B: VxpBackend>(
    State(gateway): State<Arc<Gateway<B>>>,
    Path(op): Path<String>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let mut body = Some(body);
    let kind = OperationKind::from_name(&op);
    let result = match kind {
        Some(kind) => gateway.process(kind, &parts, &mut body).await,
        None => Err(VxpError::UnsupportedOperation { op }),
    };
    match result {
        Ok(response) => response,
        Err(error) => {
            tracing::info!(
                op = kind.map_or("?", OperationKind::name),
                code = %error.code(),
                %error,
                "vxp request refused"
            );
            if let Some(body) = body.take() {
                gateway.drain_refused(&parts.headers, kind, body).await;
            }
            failure(kind, &error)
        }
    }
}

impl<B: VxpBackend> Gateway<B> {
    /// Reads and drops the body of a refused request before answering, unless the client
    /// waits for `100 Continue` (then it sends no body). HttpURLConnection, which carries
    /// sendEdoc, writes the whole body before it reads anything: answering and closing
    /// while it still writes makes it fail with a broken pipe (and re-send), and the DMS
    /// never sees the refusal. A body longer than the largest accepted is not drained; the
    /// connection closes.
    async fn drain_refused(
        &self,
        headers: &http::HeaderMap,
        kind: Option<OperationKind>,
        body: Body,
    ) {
        let expects_continue = headers
            .get_all(header::EXPECT)
            .iter()
            .any(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
        if expects_continue {
            return;
        }
        let limit = match kind {
            Some(OperationKind::SendEdoc) => {
                usize::try_from(self.settings.max_edoc_bytes.saturating_add(2))
                    .unwrap_or(usize::MAX)
            }
            _ => MAX_SMALL_BODY,
        };
        let declared = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|len| len > limit as u64) {
            return;
        }
        drain(body, limit).await;
    }
}

/// Reads and drops at most about `limit` bytes of a body, which also answers
/// `Expect: 100-continue` and keeps the connection reusable.
async fn drain(body: Body, limit: usize) {
    let mut body = body;
    let mut seen = 0usize;
    while let Some(Ok(frame)) = body.frame().await {
        seen += frame.data_ref().map_or(0, |d| d.len());
        if seen > limit {
            break;
        }
    }
}

fn with_type(body: Body, content_type: &'static str) -> Response {
    let mut response = Response::new(body);
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

fn json<T: Serialize>(value: &T) -> Response {
    with_type(Body::from(to_ascii_json(value)), "application/json")
}

fn data<T: Serialize>(items: Vec<T>) -> Response {
    json(&DataResponse {
        outcome: Outcome::success(),
        data: Some(items),
    })
}

fn count(n: u64) -> Response {
    json(&CountResponse {
        outcome: Outcome::success(),
        count: Some(n),
    })
}

/// The SDK's error shape for `kind`: `DocId` on sendEdoc (without it the SDK returns no
/// result at all), an empty body on downloadEdoc (the SDK reports success for any
/// non-empty body, even an error message), the bare outcome otherwise.
fn failure(kind: Option<OperationKind>, error: &VxpError) -> Response {
    let outcome = Outcome::from_error(error);
    match kind {
        Some(OperationKind::SendEdoc) => json(&SendEdocResponse {
            outcome,
            doc_id: String::new(),
        }),
        Some(OperationKind::DownloadEdoc) => {
            let mut response = (StatusCode::NOT_FOUND, Body::empty()).into_response();
            // For people reading logs; the SDK looks at the body only.
            let headers = response.headers_mut();
            for (name, value) in [
                ("x-vxp-errorcode", outcome.error_code),
                ("x-vxp-errordesc", ascii_escape(&outcome.error_desc)),
            ] {
                if let Ok(value) = HeaderValue::from_str(&value) {
                    headers.insert(name, value);
                }
            }
            response
        }
        _ => json(&outcome),
    }
}
