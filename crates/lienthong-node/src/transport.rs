//! Mutual TLS on both ends of a gRPC connection.
//!
//! Server side: [`tls_incoming`] accepts TCP with `TCP_NODELAY` (tonic's
//! `serve_with_incoming` ignores `Server::tcp_nodelay`), runs the rustls handshake under a
//! timeout, reads the peer's identity from its certificate once per connection, caps the
//! connections one identity holds open, and yields [`PeerConn`]s whose [`PeerInfo`] every
//! request can read with [`peer`]. A [`PeerConn`] is closed when its client does not start
//! HTTP/2 in time: an authenticated client cannot hold a socket without speaking.
//!
//! The client side (a channel to a node, for DMSs and for this node's own links) is
//! `lienthong_client::transport`.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use lienthong_pki::Identity;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::Connected;

use crate::Error;
use crate::config::{DEFAULT_MAX_CONNECTIONS_PER_IDENTITY, Limits};

/// Length of the HTTP/2 client connection preface (RFC 9113 §3.4), the first bytes a
/// client sends.
const H2_PREFACE_LEN: usize = 24;
/// How long a refused connection gets to receive its TLS close_notify.
const REFUSAL_CLOSE: Duration = Duration::from_secs(1);

/// What [`tls_incoming`] enforces on every connection.
#[derive(Clone, Copy, Debug)]
pub struct IncomingLimits {
    /// Time to finish the TLS handshake, and then again to send the HTTP/2 preface.
    pub handshake_timeout: Duration,
    /// Connections one certificate identity may hold open at once.
    pub max_connections_per_identity: usize,
}

impl From<&Limits> for IncomingLimits {
    fn from(limits: &Limits) -> Self {
        IncomingLimits {
            handshake_timeout: limits.handshake_timeout(),
            max_connections_per_identity: limits.max_connections_per_identity,
        }
    }
}

/// A bare duration is the handshake timeout, with the default cap per identity.
impl From<Duration> for IncomingLimits {
    fn from(handshake_timeout: Duration) -> Self {
        IncomingLimits {
            handshake_timeout,
            max_connections_per_identity: DEFAULT_MAX_CONNECTIONS_PER_IDENTITY,
        }
    }
}

/// How many connections each identity holds open.
#[derive(Debug, Default)]
struct OpenConnections {
    by_identity: Mutex<HashMap<Identity, usize>>,
}

/// One connection's place among [`OpenConnections`], given back when it is dropped (when
/// the server is done with the connection, however it ended).
#[derive(Debug)]
struct ConnectionSlot {
    open: Arc<OpenConnections>,
    identity: Identity,
}

impl OpenConnections {
    /// A slot for one more connection of `identity`, unless it holds `max` already.
    fn take(self: &Arc<Self>, identity: &Identity, max: usize) -> Option<ConnectionSlot> {
        let mut counts = self.by_identity.lock().unwrap_or_else(|p| p.into_inner());
        let count = counts.entry(identity.clone()).or_insert(0);
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(ConnectionSlot {
            open: self.clone(),
            identity: identity.clone(),
        })
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut counts = self
            .open
            .by_identity
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(count) = counts.get_mut(&self.identity) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.identity);
            }
        }
    }
}

/// The time by which a new connection's client must have sent the HTTP/2 preface.
#[derive(Debug)]
struct PrefaceDeadline {
    timer: Pin<Box<tokio::time::Sleep>>,
    /// Bytes of the preface not yet read.
    remaining: usize,
}

/// Who is on the other end of a connection, established during the handshake.
#[derive(Clone, Debug)]
pub struct PeerInfo {
    pub identity: Identity,
    pub remote: SocketAddr,
}

/// A server-side TLS connection whose peer identity has been checked.
#[derive(Debug)]
pub struct PeerConn {
    stream: TlsStream<TcpStream>,
    info: PeerInfo,
    /// Until the preface has been read: reading fails with `TimedOut` once this passes,
    /// which makes the HTTP/2 server close the connection.
    preface: Option<PrefaceDeadline>,
    /// Counts this connection against its identity's cap while it lives.
    _slot: ConnectionSlot,
}

impl Connected for PeerConn {
    type ConnectInfo = PeerInfo;
    fn connect_info(&self) -> PeerInfo {
        self.info.clone()
    }
}

impl AsyncRead for PeerConn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.stream).poll_read(cx, buf);
        let Some(preface) = &mut this.preface else {
            return polled;
        };
        match &polled {
            Poll::Ready(Ok(())) => {
                let read = buf.filled().len() - before;
                preface.remaining = preface.remaining.saturating_sub(read);
                // Done waiting once the preface is in, or the client hung up.
                if preface.remaining == 0 || read == 0 {
                    this.preface = None;
                }
            }
            Poll::Ready(Err(_)) => this.preface = None,
            Poll::Pending => {
                if preface.timer.as_mut().poll(cx).is_ready() {
                    this.preface = None;
                    tracing::info!(
                        remote = %this.info.remote,
                        peer = %this.info.identity,
                        "no HTTP/2 preface within the handshake timeout; closing the connection"
                    );
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the client sent no HTTP/2 preface within the handshake timeout",
                    )));
                }
            }
        }
        polled
    }
}

impl AsyncWrite for PeerConn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// The peer of the connection a request arrived on.
pub fn peer<T>(req: &tonic::Request<T>) -> Result<&PeerInfo, Error> {
    req.extensions()
        .get::<PeerInfo>()
        .ok_or_else(|| Error::Unauthenticated("no verified client certificate".into()))
}

/// Accepts TLS connections on `listener` until `shutdown` resolves. Connections whose
/// handshake fails, times out, or whose certificate carries no lienthong identity are
/// dropped with a log line, and so are those of an identity that already holds
/// `limits.max_connections_per_identity` (after a TLS close_notify). Each connection
/// yielded must then bring the HTTP/2 preface within `limits.handshake_timeout`. The
/// returned task ends (and closes the listener) after `shutdown`.
pub fn tls_incoming(
    listener: TcpListener,
    config: Arc<rustls::ServerConfig>,
    limits: impl Into<IncomingLimits>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> (
    ReceiverStream<io::Result<PeerConn>>,
    tokio::task::JoinHandle<()>,
) {
    let limits = limits.into();
    let handshake_timeout = limits.handshake_timeout;
    let open = Arc::new(OpenConnections::default());
    let (tx, rx) = mpsc::channel(64);
    let acceptor = TlsAcceptor::from(config);
    let accept_loop = tokio::spawn(async move {
        tokio::pin!(shutdown);
        loop {
            let (tcp, remote) = tokio::select! {
                _ = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = acceptor.clone();
            let tx = tx.clone();
            let open = open.clone();
            tokio::spawn(async move {
                let stream =
                    match tokio::time::timeout(handshake_timeout, acceptor.accept(tcp)).await {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            tracing::info!(%remote, error = %e, "TLS handshake refused");
                            return;
                        }
                        Err(_) => {
                            tracing::info!(%remote, "TLS handshake timed out");
                            return;
                        }
                    };
                let identity = match stream
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|c| c.first())
                    .ok_or_else(|| "no client certificate".to_string())
                    .and_then(|c| lienthong_pki::peer_identity(c).map_err(|e| e.to_string()))
                {
                    Ok(id) => id,
                    Err(e) => {
                        tracing::info!(%remote, error = %e, "peer certificate has no usable identity");
                        return;
                    }
                };
                let max = limits.max_connections_per_identity;
                let Some(slot) = open.take(&identity, max) else {
                    tracing::warn!(
                        %remote,
                        peer = %identity,
                        limit = max,
                        "too many connections from this identity; closing the new one \
                         (limits.max_connections_per_identity)"
                    );
                    let mut stream = stream;
                    let _ = tokio::time::timeout(REFUSAL_CLOSE, stream.shutdown()).await;
                    return;
                };
                let conn = PeerConn {
                    stream,
                    info: PeerInfo { identity, remote },
                    preface: Some(PrefaceDeadline {
                        timer: Box::pin(tokio::time::sleep(handshake_timeout)),
                        remaining: H2_PREFACE_LEN,
                    }),
                    _slot: slot,
                };
                let _ = tx.send(Ok(conn)).await;
            });
        }
    });
    (ReceiverStream::new(rx), accept_loop)
}
