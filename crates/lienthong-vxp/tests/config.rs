//! The gateway's configuration: TOML with named defaults, the secrets file and its
//! permissions, the systems' agencies; a gateway built from it serves over TLS.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::*;
use lienthong_vxp::gateway::config::{DEFAULT_MAX_EDOC_BYTES, DEFAULT_UTC_OFFSET_MINUTES};
use lienthong_vxp::gateway::{Gateway, GatewayConfig, SystemConfig};
use lienthong_vxp::{MessageType, VxpError};

fn write_secrets(dir: &Path, mode: u32) -> std::path::PathBuf {
    let path = dir.join("vxp-secrets.toml");
    std::fs::write(
        &path,
        format!("\"{SENDER}\" = \"{SENDER_SECRET}\"\n\"{RECEIVER}\" = \"{RECEIVER_SECRET}\"\n"),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path
}

#[test]
fn reads_toml_with_named_defaults() {
    let mut config: GatewayConfig = toml::from_str(
        r#"
        listen = "0.0.0.0:8443"
        secrets_file = "vxp-secrets.toml"
        [agency_profiles]
        "002.00.20.H13" = "profiles/002.00.20.H13.toml"
        [[systems]]
        id = "dms-commune"
        agencies = ["002.00.20.H13"]
        "#,
    )
    .unwrap();
    assert_eq!(config.max_edoc_bytes, DEFAULT_MAX_EDOC_BYTES);
    assert_eq!(
        config.timestamp_window_secs, None,
        "freshness is off by default"
    );
    assert_eq!(
        config.timestamp_utc_offset_minutes,
        DEFAULT_UTC_OFFSET_MINUTES
    );
    assert_eq!(config.spool_dir, None);
    config.resolve_paths(Path::new("/etc/lienthong"));
    assert_eq!(
        config.secrets_file,
        Path::new("/etc/lienthong/vxp-secrets.toml")
    );
    assert_eq!(
        config.agency_profiles["002.00.20.H13"],
        Path::new("/etc/lienthong/profiles/002.00.20.H13.toml")
    );
    assert_eq!(
        (config.cert.as_ref(), config.state_dir.as_ref()),
        (None, None)
    );

    let err =
        toml::from_str::<GatewayConfig>(
            "listen = \"127.0.0.1:0\"\nagency_profiles = {}\nsecrets_file = \"s\"\nsystems = []\nsecret = \"x\"\n",
        )
            .unwrap_err();
    assert!(err.to_string().contains("unknown field `secret`"), "{err}");
}

#[test]
fn refuses_secret_file_readable_by_group_or_others() {
    let dir = tempfile::tempdir().unwrap();
    for mode in [0o640, 0o604, 0o644] {
        let path = write_secrets(dir.path(), mode);
        let err = gateway_config(&path).load_systems().unwrap_err();
        assert!(
            matches!(&err, VxpError::SecretFileTooOpen { mode: m, .. } if *m == mode),
            "{mode:o}: {err:?}"
        );
        assert!(err.to_string().contains("chmod 600"), "{err}");
    }
    let path = write_secrets(dir.path(), 0o600);
    let systems = gateway_config(&path).load_systems().unwrap();
    assert_eq!(
        systems.scope(RECEIVER).unwrap().agencies[0].as_str(),
        RECEIVER_AGENCY
    );
}

#[test]
fn refuses_a_system_without_a_secret() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_secrets(dir.path(), 0o600);
    let mut config = gateway_config(&path);
    config.systems.push(SystemConfig {
        id: "dms-other".into(),
        agencies: vec!["000.00.00.H41".into()],
    });
    let err = config.load_systems().unwrap_err();
    assert!(
        matches!(&err, VxpError::Config(msg) if msg.contains("dms-other") && msg.contains("no secret")),
        "{err:?}"
    );
}

#[test]
fn refuses_an_agency_code_not_written_canonically() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_secrets(dir.path(), 0o600);
    let mut config = gateway_config(&path);
    config.systems[0].agencies = vec!["002.00.20.h13".into()];
    let err = config.load_systems().unwrap_err();
    assert!(
        matches!(&err, VxpError::Config(msg) if msg.contains("002.00.20.H13")),
        "the error names the canonical form: {err:?}"
    );
    config.systems[0].agencies = vec![];
    let err = config.load_systems().unwrap_err();
    assert!(
        matches!(&err, VxpError::Config(msg) if msg.contains("no agency")),
        "{err:?}"
    );
}

#[test]
fn refuses_a_secrets_file_that_is_not_a_table_of_strings() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.toml");
    std::fs::write(&path, "dms-commune = 42\n").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let err = gateway_config(&path).load_systems().unwrap_err();
    assert!(matches!(err, VxpError::SecretFileParse { .. }), "{err:?}");
}

#[tokio::test]
async fn gateway_from_config_serves_over_tls() {
    install_ring();
    let dir = tempfile::tempdir().unwrap();
    let path = write_secrets(dir.path(), 0o600);
    let mut config = gateway_config(&path);
    config.spool_dir = Some(dir.path().to_path_buf());
    let gateway = Gateway::from_config(&config, MemBackend::default()).unwrap();
    let pki = TestPki::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(lienthong_vxp::gateway::serve(
        listener,
        pki.server_config(),
        gateway.router(),
        async move {
            let _ = stopped.await;
        },
    ));
    let client = lienthong_vxp::VxpClient::new(lienthong_vxp::ClientConfig::new(
        format!("https://localhost:{port}"),
        RECEIVER,
        lienthong_vxp::Secret::new(RECEIVER_SECRET),
        pki.client_config(),
    ))
    .unwrap();
    assert_eq!(client.count_received(MessageType::Edoc).await.unwrap(), 0);
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}
