//! `lienthong send` with a large file streams it in chunks, and `lienthong inbox --save`
//! streams it back to a file, across a running two-tier network (real mTLS, real sled).

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

fn lienthong(args: Vec<String>) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lienthong"))
        .args(args)
        .output()
        .expect("the lienthong binary runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `len` pseudo-random bytes.
fn write_file(path: &Path, len: usize) -> Vec<u8> {
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let data: Vec<u8> = (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(path, &data).unwrap();
    data
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_streams_a_large_file_and_inbox_save_writes_it_back() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let net = lienthong_testkit::RunningNetwork::start(
        dir.path(),
        lienthong_testkit::Shape::new(2),
        0,
        100,
    )
    .await
    .unwrap();
    let big = dir.path().join("ban-ve.pdf");
    let data = write_file(&big, 9 * 1024 * 1024 + 3);
    let send = vec![
        "send".into(),
        "-p".into(),
        net.net.profile("001.00.20.H41").display().to_string(),
        "--to".into(),
        "001.00.20.H42".into(),
        "--subject".into(),
        "Bản vẽ thiết kế".into(),
        "--file".into(),
        big.display().to_string(),
    ];
    let out = tokio::task::spawn_blocking(move || lienthong(send))
        .await
        .unwrap();
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains(&format!("streamed {}", big.display())),
        "{stdout}"
    );
    let id = stdout.lines().last().unwrap().trim().to_string();

    let save = dir.path().join("inbox");
    let inbox = vec![
        "inbox".into(),
        "-p".into(),
        net.net.profile("001.00.20.H42").display().to_string(),
        "--save".into(),
        save.display().to_string(),
        "--ack".into(),
    ];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let saved = loop {
        let args = inbox.clone();
        let out = tokio::task::spawn_blocking(move || lienthong(args))
            .await
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        let saved = save.join(&id).join("01-ban-ve.pdf");
        if saved.exists() {
            break saved;
        }
        assert!(tokio::time::Instant::now() < deadline, "{id} never arrived");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        std::fs::read(&saved).unwrap() == data,
        "the saved file differs"
    );
    assert!(!save.join(&id).join("01-ban-ve.pdf.part").exists());
    net.stop().await.unwrap();
}
