//! Real mutual-TLS handshakes over loopback TCP with the configs this crate builds.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{agency, issue_files, new_ca, node};
use lienthong_pki::{Error, Identity, TlsFiles, client_config, peer_identity, server_config};
use rustls::pki_types::ServerName;
use rustls::{AlertDescription, CertificateError, ClientConfig, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

const LIMIT: Duration = Duration::from_secs(10);

/// What each side saw of one connection: the server the client's identity, the client
/// the server's reply.
struct Outcome {
    server: std::io::Result<Identity>,
    client: std::io::Result<Vec<u8>>,
}

/// Accepts one connection with `server`, connects with `client` to `server_name`, and does
/// a ping/pong round trip. With TLS 1.3 a rejected client certificate only shows on the
/// client's first read, which is why the client always reads.
async fn exchange(
    server: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
    server_name: &str,
) -> Outcome {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = TlsAcceptor::from(server);
    let server_task = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await?;
        let mut tls = acceptor.accept(tcp).await?;
        // This is how a node learns who is calling.
        let (_, conn) = tls.get_ref();
        assert_eq!(conn.alpn_protocol(), Some(&b"h2"[..]));
        let leaf = conn
            .peer_certificates()
            .expect("client certificate required")[0]
            .clone();
        let identity = peer_identity(&leaf).map_err(std::io::Error::other)?;
        let mut buf = [0u8; 4];
        tls.read_exact(&mut buf).await?;
        assert_eq!(&buf, b"ping");
        tls.write_all(b"pong").await?;
        tls.shutdown().await?;
        Ok::<_, std::io::Error>(identity)
    });

    let connector = TlsConnector::from(client);
    let name = ServerName::try_from(server_name.to_string()).unwrap();
    let client = tokio::time::timeout(LIMIT, async move {
        let tcp = TcpStream::connect(addr).await?;
        let mut tls = connector.connect(name, tcp).await?;
        tls.write_all(b"ping").await?;
        tls.flush().await?;
        let mut buf = Vec::new();
        tls.read_to_end(&mut buf).await?;
        Ok::<_, std::io::Error>(buf)
    })
    .await
    .expect("client finished in time");
    let server = tokio::time::timeout(LIMIT, server_task)
        .await
        .expect("server finished in time")
        .unwrap();
    Outcome { server, client }
}

/// The rustls error inside an I/O error from tokio-rustls.
fn tls_error(e: &std::io::Error) -> &rustls::Error {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .unwrap_or_else(|| panic!("not a TLS error: {e:?}"))
}

/// The lienthong error a custom verifier put inside a rustls certificate error.
fn pki_error(e: &rustls::Error) -> &Error {
    match e {
        rustls::Error::InvalidCertificate(CertificateError::Other(other)) => other
            .0
            .downcast_ref::<Error>()
            .unwrap_or_else(|| panic!("not a lienthong error: {e:?}")),
        e => panic!("not a certificate error carrying a lienthong error: {e:?}"),
    }
}

fn assert_alert(client: &std::io::Result<Vec<u8>>, alert: AlertDescription) {
    let err = client
        .as_ref()
        .expect_err("the client must not get a reply");
    assert_eq!(
        tls_error(err),
        &rustls::Error::AlertReceived(alert),
        "{err:?}"
    );
}

struct Cluster {
    dir: tempfile::TempDir,
    ca: lienthong_pki::CertificateAuthority,
    h41: TlsFiles,
    agency: TlsFiles,
}

fn cluster() -> Cluster {
    let dir = tempfile::tempdir().unwrap();
    let ca = new_ca(dir.path(), "ca");
    let (h41, _) = issue_files(dir.path(), &ca, "ca", &node("H41"), "h41");
    let (agency_files, _) = issue_files(dir.path(), &ca, "ca", &agency("000.00.00.H41"), "dms");
    Cluster {
        dir,
        ca,
        h41,
        agency: agency_files,
    }
}

#[tokio::test]
async fn mutual_tls_exchanges_bytes_and_reveals_client_identity() {
    let c = cluster();
    let server = server_config(&c.h41).unwrap();
    let client = client_config(&c.agency, Some(node("H41"))).unwrap();
    let out = exchange(server, client, "localhost").await;
    assert_eq!(out.client.unwrap(), b"pong");
    assert_eq!(out.server.unwrap(), agency("000.00.00.H41"));
}

#[tokio::test]
async fn node_to_node_with_hostname_check_only() {
    let c = cluster();
    let (h42, _) = issue_files(c.dir.path(), &c.ca, "ca", &node("H42"), "h42");
    let out = exchange(
        server_config(&c.h41).unwrap(),
        client_config(&h42, None).unwrap(),
        "localhost",
    )
    .await;
    assert_eq!(out.client.unwrap(), b"pong");
    assert_eq!(out.server.unwrap(), node("H42"));
}

#[tokio::test]
async fn expected_identity_replaces_the_hostname_check() {
    let c = cluster();
    // The certificate names localhost and 127.0.0.1 only; the identity vouches for it.
    let out = exchange(
        server_config(&c.h41).unwrap(),
        client_config(&c.agency, Some(node("H41"))).unwrap(),
        "h41.elsewhere.test",
    )
    .await;
    assert_eq!(out.client.unwrap(), b"pong");
}

#[tokio::test]
async fn rejects_server_not_matching_hostname_without_expected_identity() {
    let c = cluster();
    let out = exchange(
        server_config(&c.h41).unwrap(),
        client_config(&c.agency, None).unwrap(),
        "h41.elsewhere.test",
    )
    .await;
    let err = out.client.unwrap_err();
    assert!(
        matches!(
            tls_error(&err),
            rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. }
            )
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn rejects_client_from_wrong_ca() {
    let c = cluster();
    let rogue_ca = new_ca(c.dir.path(), "rogue");
    let (mut rogue, _) = issue_files(
        c.dir.path(),
        &rogue_ca,
        "rogue",
        &agency("000.00.00.H41"),
        "rogue",
    );
    // The rogue client trusts the real CA, so only the server's check can stop it.
    rogue.ca = c.h41.ca.clone();
    let out = exchange(
        server_config(&c.h41).unwrap(),
        client_config(&rogue, Some(node("H41"))).unwrap(),
        "localhost",
    )
    .await;
    let err = out.server.unwrap_err();
    assert_eq!(
        tls_error(&err),
        &rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer),
        "{err:?}"
    );
    assert_alert(&out.client, AlertDescription::UnknownCA);
}

#[tokio::test]
async fn rejects_client_without_certificate() {
    let c = cluster();
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(lienthong_pki::load_certs(&c.h41.ca).unwrap());
    let anonymous = ClientConfig::builder_with_provider(lienthong_pki::crypto_provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let out = exchange(
        server_config(&c.h41).unwrap(),
        Arc::new(anonymous),
        "localhost",
    )
    .await;
    let err = out.server.unwrap_err();
    assert_eq!(
        tls_error(&err),
        &rustls::Error::NoCertificatesPresented,
        "{err:?}"
    );
    assert_alert(&out.client, AlertDescription::CertificateRequired);
}

#[tokio::test]
async fn rejects_revoked_client_certificate() {
    let c = cluster();
    let (revoked, issued) = issue_files(
        c.dir.path(),
        &c.ca,
        "ca",
        &agency("000.00.00.H41"),
        "revoked",
    );
    let crl = c.dir.path().join("ca.crl");
    std::fs::write(&crl, c.ca.revoke(&[&issued.serial]).unwrap()).unwrap();
    let mut server_files = c.h41.clone();
    server_files.crls = vec![crl];
    let server = server_config(&server_files).unwrap();

    // A certificate not on the list still gets in...
    let out = exchange(
        server.clone(),
        client_config(&c.agency, Some(node("H41"))).unwrap(),
        "localhost",
    )
    .await;
    assert_eq!(out.client.unwrap(), b"pong");

    // ...the revoked one does not.
    let out = exchange(
        server,
        client_config(&revoked, Some(node("H41"))).unwrap(),
        "localhost",
    )
    .await;
    let err = out.server.unwrap_err();
    assert_eq!(
        tls_error(&err),
        &rustls::Error::InvalidCertificate(CertificateError::Revoked),
        "{err:?}"
    );
    assert_alert(&out.client, AlertDescription::CertificateRevoked);
}

#[tokio::test]
async fn rejects_revoked_server_certificate() {
    let c = cluster();
    let crl = c.dir.path().join("ca.crl");
    let h41_serial =
        lienthong_pki::cert_serial(&lienthong_pki::load_certs(&c.h41.cert).unwrap()[0]).unwrap();
    std::fs::write(&crl, c.ca.revoke(&[h41_serial]).unwrap()).unwrap();
    let mut client_files = c.agency.clone();
    client_files.crls = vec![crl];
    let out = exchange(
        server_config(&c.h41).unwrap(),
        client_config(&client_files, Some(node("H41"))).unwrap(),
        "localhost",
    )
    .await;
    let err = out.client.unwrap_err();
    assert_eq!(
        tls_error(&err),
        &rustls::Error::InvalidCertificate(CertificateError::Revoked),
        "{err:?}"
    );
}

#[tokio::test]
async fn rejects_server_presenting_another_node_id() {
    let c = cluster();
    let (h42, _) = issue_files(c.dir.path(), &c.ca, "ca", &node("H42"), "h42");
    let out = exchange(
        server_config(&h42).unwrap(),
        client_config(&c.agency, Some(node("H41"))).unwrap(),
        "localhost",
    )
    .await;
    let err = out.client.unwrap_err();
    match pki_error(tls_error(&err)) {
        Error::WrongPeer { expected, actual } => {
            assert_eq!(expected, &node("H41"));
            assert_eq!(actual, &node("H42"));
        }
        e => panic!("expected WrongPeer, got {e}"),
    }
    assert!(out.server.is_err());
}

#[test]
fn rejects_ca_file_without_certificate() {
    let c = cluster();
    let empty = c.dir.path().join("empty.pem");
    std::fs::write(&empty, "# no certificate here\n").unwrap();
    let mut files = c.h41.clone();
    files.ca = empty;
    assert!(matches!(
        server_config(&files),
        Err(Error::NoCertificate { .. })
    ));
    assert!(matches!(
        client_config(&files, None),
        Err(Error::NoCertificate { .. })
    ));
}

#[test]
fn rejects_ca_file_with_unparsable_certificate() {
    let c = cluster();
    let bad = c.dir.path().join("bad.pem");
    std::fs::write(
        &bad,
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let mut files = c.h41.clone();
    files.ca = bad;
    let err = server_config(&files).unwrap_err();
    assert!(matches!(err, Error::InvalidTrustRoots { .. }), "{err}");
}

#[test]
fn rejects_key_of_another_certificate() {
    let c = cluster();
    let mut files = c.h41.clone();
    files.key = c.agency.key.clone();
    let err = server_config(&files).unwrap_err();
    assert!(matches!(err, Error::KeyMismatch { .. }), "{err}");
}

#[cfg(unix)]
#[test]
fn rejects_world_readable_tls_key() {
    use std::os::unix::fs::PermissionsExt;
    let c = cluster();
    std::fs::set_permissions(&c.h41.key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = server_config(&c.h41).unwrap_err();
    assert!(matches!(err, Error::KeyFileTooOpen { .. }), "{err}");
}
