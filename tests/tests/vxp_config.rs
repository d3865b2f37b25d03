//! The VXP gateway's configuration on a node: what `lienthong_node::vxp::build` refuses
//! before any port is used. (Tokio tests: the clients' lazy channels need a runtime.)

use std::os::unix::fs::PermissionsExt;

use lienthong_client::ClientProfile;
use lienthong_testkit::{DEV_AGENCIES, generate};

fn init() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

#[tokio::test]
async fn the_dev_gateway_builds_and_names_every_agency() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let net = generate(dir.path(), "127.0.0.1:0".parse().unwrap(), &DEV_AGENCIES).unwrap();
    let vxp = net.config.vxp.as_ref().expect("dev configures a gateway");
    assert_eq!(vxp.agency_profiles.len(), DEV_AGENCIES.len());
    assert!(lienthong_node::vxp::build(&net.config).unwrap().is_some());
}

#[tokio::test]
async fn a_custodial_key_others_can_read_is_refused() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let net = generate(dir.path(), "127.0.0.1:0".parse().unwrap(), &DEV_AGENCIES).unwrap();
    let profile = ClientProfile::load(&net.profiles[0].1).unwrap();
    std::fs::set_permissions(&profile.key, std::fs::Permissions::from_mode(0o640)).unwrap();
    let error = lienthong_node::vxp::build(&net.config)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("[vxp]") && error.contains("readable by group or others"),
        "{error}"
    );
}

#[tokio::test]
async fn a_secrets_file_others_can_read_is_refused() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let net = generate(dir.path(), "127.0.0.1:0".parse().unwrap(), &DEV_AGENCIES).unwrap();
    let secrets = &net.config.vxp.as_ref().unwrap().secrets_file;
    std::fs::set_permissions(secrets, std::fs::Permissions::from_mode(0o644)).unwrap();
    let error = lienthong_node::vxp::build(&net.config)
        .unwrap_err()
        .to_string();
    assert!(error.contains("chmod 600"), "{error}");
}

#[tokio::test]
async fn a_system_acting_for_an_agency_without_a_profile_is_refused() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let mut net = generate(dir.path(), "127.0.0.1:0".parse().unwrap(), &DEV_AGENCIES).unwrap();
    let vxp = net.config.vxp.as_mut().unwrap();
    let first = vxp.systems[0].agencies[0].clone();
    vxp.agency_profiles.remove(&first);
    let error = lienthong_node::vxp::build(&net.config)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains(&format!(
            "acts for {first}, which has no entry in agency_profiles"
        )),
        "{error}"
    );
}
