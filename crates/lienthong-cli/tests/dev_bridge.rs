//! `lienthong dev --vxp-upstream …` (#19): the dev network's national gateway bridges to
//! a VXP platform (the stand-in), and dev says so with a `bridge` line.

use std::process::Stdio;
use std::time::Duration;

use lienthong_testkit::vxp_platform::{AgencySpec, Platform, PlatformConfig, SystemSpec};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_bridges_its_national_gateway_to_the_platform() {
    let dir = tempfile::TempDir::new().unwrap();
    let mut config = PlatformConfig::new(dir.path().join("platform"));
    config.systems = vec![
        SystemSpec::new("LT", "dev-secret", [AgencySpec::new("001.00.20.H41", "xã")]),
        SystemSpec::new("EXT", "ext", [AgencySpec::new("000.00.00.H29", "Hà Nội")]),
    ];
    let platform = Platform::start(config).await.unwrap();
    // A secret file as a person writes it: plain text, a newline, the default mode (dev
    // copies it into its own directory, readable by the user only).
    let secret = dir.path().join("secret.txt");
    std::fs::write(&secret, "dev-secret\n").unwrap();
    let mut dev = Command::new(env!("CARGO_BIN_EXE_lienthong"))
        .arg("dev")
        .arg("--dir")
        .arg(dir.path().join("net"))
        .arg("--vxp-upstream")
        .arg(platform.url())
        .arg("--vxp-system-id")
        .arg("LT")
        .arg("--vxp-secret-file")
        .arg(&secret)
        .arg("--vxp-upstream-ca")
        .arg(platform.ca_pem_path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(dev.stdout.take().unwrap()).lines();
    let mut printed = Vec::new();
    let bridge = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            printed.push(line.clone());
            if line.starts_with("bridge ") {
                return line;
            }
        }
        panic!("dev ended without a bridge line: {printed:?}");
    })
    .await
    .expect("a bridge line within 60 s");
    assert_eq!(bridge, format!("bridge VN {}", platform.url()));
    // Everything else about dev stays: its vxp lines follow.
    let vxp = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.starts_with("vxp ") {
                return line;
            }
        }
        String::new()
    })
    .await
    .unwrap();
    assert!(vxp.starts_with("vxp 000.00.00.G22 https://"), "{vxp}");
    // The bridge works: it reads the platform's agency lists and mailbox, signed right.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let calls = platform.requests();
        let listed = calls
            .iter()
            .any(|r| r.op == "getAgenciesList" && r.system_id == "LT");
        let polled = calls
            .iter()
            .any(|r| r.op == "getReceivedEdocList" && r.system_id == "LT");
        if listed && polled {
            assert!(calls.iter().all(|r| r.hmac_ok && r.headers_ok), "{calls:?}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no bridge calls: {calls:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    dev.start_kill().unwrap();
    let _ = dev.wait().await;
}
