//! A dev network whose national gateway bridges to a platform stand-in
//! ([`crate::vxp_platform`]), for the bridge's tests in this crate and in the CLI's.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use lienthong_devnet::{RunningNetwork, Shape, with_bridge};
use lienthong_node::config::{NodeConfig, UpstreamConfig};

use crate::vxp_platform::Platform;

/// The `[vxp_upstream]` of a bridge to `platform` as `system`, its secret written to
/// `secret_file` with mode 0600; the mailbox polled every 100 ms.
pub fn upstream(
    platform: &Platform,
    system: &str,
    secret: &str,
    secret_file: &Path,
) -> std::io::Result<UpstreamConfig> {
    std::fs::write(secret_file, format!("{secret}\n"))?;
    std::fs::set_permissions(secret_file, std::fs::Permissions::from_mode(0o600))?;
    Ok(UpstreamConfig {
        endpoint: platform.url().to_string(),
        system_id: system.into(),
        secret_file: secret_file.to_path_buf(),
        ca: platform.ca_pem_path().to_path_buf(),
        poll_ms: 100,
        agencies_refresh_ms: 60_000,
        state_dir: None,
    })
}

/// A dev network (with a PKI of its own) under `dir` whose national gateway `VN` bridges
/// to `platform` as `system` (secret in `dir/platform.secret`), retrying the platform
/// quickly; `adjust` may change each node's configuration after that.
pub async fn bridged_network(
    dir: &Path,
    platform: &Platform,
    system: &str,
    secret: &str,
    shape: Shape,
    adjust: impl Fn(&mut NodeConfig),
) -> anyhow::Result<RunningNetwork> {
    std::fs::create_dir_all(dir)?;
    let upstream = upstream(platform, system, secret, &dir.join("platform.secret"))?;
    RunningNetwork::start_with_directory(
        dir,
        shape,
        0,
        100,
        move |c| {
            if c.node_id == "VN" {
                c.vxp_upstream = Some(upstream.clone());
                c.delivery.retry_min_ms = 100;
                c.delivery.retry_max_ms = 1_000;
                c.delivery.circuit_open_ms = 1_000;
            }
            adjust(c);
        },
        |source| with_bridge(&source, "VN", &[]),
    )
    .await
}

/// Polls `check` every 50 ms until it gives a value; panics after `secs` seconds, naming
/// `what`.
pub async fn eventually<T>(secs: u64, what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within {secs} s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
