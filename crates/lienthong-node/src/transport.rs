//! Mutual TLS on both ends of a gRPC connection.
//!
//! Server side: [`tls_incoming`] accepts TCP with `TCP_NODELAY` (tonic's
//! `serve_with_incoming` ignores `Server::tcp_nodelay`), runs the rustls handshake under a
//! timeout, reads the peer's identity from its certificate once per connection, and yields
//! [`PeerConn`]s whose [`PeerInfo`] every request can read with [`peer`].
//!
//! Client side: [`connect`] opens a tonic channel through the same rustls configuration,
//! checking the server's identity as well as its chain.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use lienthong_pki::{Identity, TlsFiles};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::Connected;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::Error;

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
        Pin::new(&mut self.stream).poll_read(cx, buf)
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
/// dropped with a log line. The returned task ends (and closes the listener) after
/// `shutdown`.
pub fn tls_incoming(
    listener: TcpListener,
    config: Arc<rustls::ServerConfig>,
    handshake_timeout: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> (
    ReceiverStream<io::Result<PeerConn>>,
    tokio::task::JoinHandle<()>,
) {
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
                let conn = PeerConn {
                    stream,
                    info: PeerInfo { identity, remote },
                };
                let _ = tx.send(Ok(conn)).await;
            });
        }
    });
    (ReceiverStream::new(rx), accept_loop)
}

/// Opens a gRPC channel to `endpoint` (`https://host:port`) over mutual TLS with the
/// certificate in `tls`, checking that the server presents `expected` when given.
/// The connection is made lazily on first use and re-made after failures.
pub fn connect(
    endpoint: &str,
    tls: &TlsFiles,
    expected: Option<Identity>,
) -> Result<Channel, Error> {
    let config = lienthong_pki::client_config(tls, expected)?;
    channel(endpoint, config)
}

/// Like [`connect`] with a ready rustls client configuration.
pub fn channel(endpoint: &str, config: Arc<rustls::ClientConfig>) -> Result<Channel, Error> {
    let uri: Uri = endpoint
        .parse()
        .map_err(|e| Error::Config(format!("endpoint {endpoint:?} is not a URI: {e}")))?;
    if uri.scheme_str() != Some("https") {
        return Err(Error::Config(format!(
            "endpoint {endpoint:?} must start with https:// (lienthong speaks only mutual TLS)"
        )));
    }
    let host = uri
        .host()
        .ok_or_else(|| Error::Config(format!("endpoint {endpoint:?} has no host")))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = uri.port_u16().unwrap_or(443);
    let server_name = ServerName::try_from(host.clone())
        .map_err(|e| Error::Config(format!("endpoint host {host:?}: {e}")))?;
    // TLS is done by the connector below, so tonic sees a plain http URI.
    let plain = format!("http://{}:{port}", uri.host().unwrap_or_default());
    let connector = TlsConnector::from(config);
    let endpoint = Endpoint::from_shared(plain)
        .map_err(|e| Error::Config(e.to_string()))?
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(10))
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_while_idle(true);
    Ok(
        endpoint.connect_with_connector_lazy(tower::service_fn(move |_: Uri| {
            let connector = connector.clone();
            let server_name = server_name.clone();
            let host = host.clone();
            async move {
                let tcp = TcpStream::connect((host.as_str(), port)).await?;
                tcp.set_nodelay(true)?;
                let tls = connector.connect(server_name, tcp).await?;
                Ok::<_, io::Error>(TokioIo::new(tls))
            }
        })),
    )
}
