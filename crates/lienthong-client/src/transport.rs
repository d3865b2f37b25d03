//! A gRPC channel to a node over mutual TLS: the rustls configuration of the profile,
//! the server's identity checked as well as its chain, `TCP_NODELAY`, keep-alives. The
//! node's own links to its neighbours use it too.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use lienthong_pki::{Identity, TlsFiles};
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::Error;

/// A channel to `endpoint` (`https://host:port`) with the PKI files of `tls`; when
/// `expected` is given, the server's certificate must name that identity.
pub fn connect(
    endpoint: &str,
    tls: &TlsFiles,
    expected: Option<Identity>,
) -> Result<Channel, Error> {
    let config = lienthong_pki::client_config(tls, expected)?;
    channel(endpoint, config)
}

/// Like [`connect`] with a ready rustls client configuration. The channel connects
/// lazily, on the first call.
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
