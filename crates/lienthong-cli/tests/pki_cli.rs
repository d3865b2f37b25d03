//! `lienthong pki`, run as the built binary: revocations accumulate in the CRL a node
//! loads, over real mutual TLS.

use std::path::{Path, PathBuf};
use std::process::Output;

use lienthong_client::ClientProfile;
use lienthong_testkit::TestNetwork;

fn init() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Runs the binary off the runtime's threads (the node runs on them).
async fn lienthong(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_lienthong"))
            .args(&args)
            .output()
            .expect("the lienthong binary runs")
    })
    .await
    .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The serial, hex, of the certificate a client profile presents.
fn profile_serial(profile: &Path) -> String {
    let profile = ClientProfile::load(profile).unwrap();
    let cert = lienthong_pki::load_certs(&profile.cert).unwrap().remove(0);
    hex::encode(lienthong_pki::cert_serial(&cert).unwrap())
}

/// The serials, hex, the CRL in `path` lists.
fn crl_serials(path: &Path) -> Vec<String> {
    let crls = lienthong_pki::load_crls(&[path]).unwrap();
    crls.iter()
        .flat_map(|der| {
            let (_, crl) = x509_parser::parse_x509_crl(der.as_ref()).unwrap();
            crl.iter_revoked_certificates()
                .map(|r| hex::encode(r.raw_serial()))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// How the node at `addr` refuses the TLS client of `profile`. With TLS 1.3 the client
/// finishes its side of the handshake before the server has checked its certificate, so
/// the server's alert arrives on the first read; through tonic it may be lost to a plain
/// "connection closed", hence the raw connection.
async fn tls_refusal(profile: &Path, addr: std::net::SocketAddr) -> rustls::Error {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let profile = ClientProfile::load(profile).unwrap();
    let node = lienthong_pki::Identity::Node(profile.node_id().unwrap());
    let config = lienthong_pki::client_config(&profile.tls_files(), Some(node)).unwrap();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let refused = async {
        let mut tls = tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await?;
        tls.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await?;
        let mut buf = [0u8; 64];
        loop {
            if tls.read(&mut buf).await? == 0 {
                return Ok::<(), std::io::Error>(());
            }
        }
    };
    let err = tokio::time::timeout(std::time::Duration::from_secs(10), refused)
        .await
        .expect("the node answers within 10 s")
        .expect_err("the node must refuse the certificate");
    err.get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
        .unwrap_or_else(|| panic!("not a TLS error: {err:?}"))
        .clone()
}

async fn revoke(ca_dir: &Path, serial: &str, out: &Path) -> String {
    let output = lienthong(vec![
        "pki".into(),
        "revoke".into(),
        "--ca-dir".into(),
        ca_dir.display().to_string(),
        "--out".into(),
        out.display().to_string(),
        serial.into(),
    ])
    .await;
    assert!(output.status.success(), "{}", text(&output.stderr));
    text(&output.stdout)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_revocation_keeps_the_first_and_the_node_refuses_both() {
    init();
    let mut t = TestNetwork::start(|_| {}).await.unwrap();
    let ca_dir = t.net.dir.join("ca");
    let crl: PathBuf = t.net.dir.join("crl.pem");
    let profiles: Vec<PathBuf> = t.net.profiles.iter().map(|(_, p)| p.clone()).collect();
    let (a, b) = (profile_serial(&profiles[0]), profile_serial(&profiles[1]));

    revoke(&ca_dir, &a, &crl).await;
    let stdout = revoke(&ca_dir, &b, &crl).await;
    assert_eq!(crl_serials(&crl), vec![a.clone(), b.clone()]);
    assert!(
        stdout.contains("CRL number 2 listing 2 revoked certificates"),
        "{stdout}"
    );

    // The node starts again with the CRL and refuses both certificates.
    t.net.config.tls.crls = vec![crl];
    t.restart().await.unwrap();
    let addr = t.net.config.listen;
    for i in [0, 1] {
        assert_eq!(
            tls_refusal(&profiles[i], addr).await,
            rustls::Error::AlertReceived(rustls::AlertDescription::CertificateRevoked),
            "agency {i}"
        );
        t.client(i)
            .unwrap()
            .list_inbox(0, 1)
            .await
            .expect_err("no RPC gets through with a revoked certificate");
    }
    // A certificate the CA did not revoke still gets in.
    t.client(2).unwrap().list_inbox(0, 1).await.unwrap();
    t.stop().await.unwrap();
}

/// Runs `lienthong pki init --dir DIR` and returns its stderr, after checking it wrote the
/// CA.
fn pki_init(dir: &Path) -> String {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_lienthong"))
        .args(["pki", "init", "--dir"])
        .arg(dir)
        .output()
        .expect("the lienthong binary runs");
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(dir.join("ca.key").exists());
    text(&output.stderr)
}

/// `lienthong dev`'s layout: the CA beside the node configs that name it as `tls.ca`. A
/// CA created again there (the old key moved away) gets a warning naming the node config.
#[test]
fn warns_when_writing_the_ca_key_where_a_node_config_takes_its_ca() {
    let dir = tempfile::tempdir().unwrap();
    let net = lienthong_testkit::generate(
        dir.path(),
        "127.0.0.1:7001".parse().unwrap(),
        &lienthong_testkit::DEV_AGENCIES,
    )
    .unwrap();
    std::fs::remove_dir_all(dir.path().join("ca")).unwrap();
    let stderr = pki_init(&dir.path().join("ca"));
    let config = net.config_path.canonicalize().unwrap();
    assert!(
        stderr.contains(&format!(
            "warning: the CA key {} is within reach of the node configured in {}: its tls.ca is",
            dir.path()
                .canonicalize()
                .unwrap()
                .join("ca/ca.key")
                .display(),
            config.display()
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("keep the CA on an offline machine"),
        "{stderr}"
    );
}

/// A CA directory made inside a node's directory (next to its node.toml, relative paths
/// and all) is within that node's reach too.
#[test]
fn warns_when_writing_the_ca_key_inside_a_node_directory() {
    let dir = tempfile::tempdir().unwrap();
    let node_dir = dir.path().join("H41");
    std::fs::create_dir_all(&node_dir).unwrap();
    std::fs::write(
        node_dir.join("node.toml"),
        "node_id = \"H41\"\nlisten = \"127.0.0.1:7001\"\ndata_dir = \"data\"\n\n\
         [tls]\nca = \"trust/ca.pem\"\ncert = \"node.pem\"\nkey = \"node.key\"\n",
    )
    .unwrap();
    let stderr = pki_init(&node_dir.join("offline-ca"));
    assert!(
        stderr.contains(&format!(
            "within reach of the node configured in {}",
            node_dir.canonicalize().unwrap().join("node.toml").display()
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("lies inside that node's directory"),
        "{stderr}"
    );
}

#[test]
fn does_not_warn_for_a_ca_away_from_node_configs() {
    let dir = tempfile::tempdir().unwrap();
    // A node config elsewhere, taking its CA certificate from elsewhere.
    let node_dir = dir.path().join("nodes/H41");
    std::fs::create_dir_all(&node_dir).unwrap();
    std::fs::write(
        node_dir.join("node.toml"),
        "node_id = \"H41\"\n[tls]\nca = \"ca.pem\"\ncert = \"node.pem\"\nkey = \"node.key\"\n",
    )
    .unwrap();
    let stderr = pki_init(&dir.path().join("offline-ca"));
    assert!(!stderr.contains("warning"), "{stderr}");
}
