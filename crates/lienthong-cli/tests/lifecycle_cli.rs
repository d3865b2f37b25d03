//! `lienthong inbox` and `lienthong track` show the business state, running the built
//! binary against an in-process node over real mutual TLS.

use std::process::Output;

use lienthong_core::{BusinessType, StatusCode, StatusNotice};
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbox_flags_a_revoked_document_and_track_shows_business_next_to_transport() {
    init();
    let t = TestNetwork::start(|_| {}).await.unwrap();
    let (a, b) = (t.client(0).unwrap(), t.client(1).unwrap());
    let mut d = a.new_document(vec![b.agency().clone()], "Quyết định số 7");
    a.send(&mut d, &[]).await.unwrap();
    b.send_status(StatusNotice::new(
        b.agency().clone(),
        a.agency().clone(),
        &d.id,
        StatusCode::Accepted,
    ))
    .await
    .unwrap();
    let mut r = a.new_document(vec![b.agency().clone()], "Thu hồi quyết định số 7");
    r.business.business_type = BusinessType::Revoke;
    r.business.reason = "Ban hành sai thẩm quyền".into();
    r.business.referenced_document_id = d.id.to_string();
    a.send(&mut r, &[]).await.unwrap();

    let profile = |i: usize| t.net.profiles[i].1.display().to_string();
    let out = lienthong(vec!["inbox".into(), "-p".into(), profile(1)]).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    let line = stdout
        .lines()
        .find(|l| l.contains(d.id.as_str()))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(
        line.ends_with(&format!("[REVOKED by {}]", r.id)),
        "{stdout}"
    );
    // The revoke's own line says what it revokes.
    let line = stdout
        .lines()
        .find(|l| l.contains(&format!("] document {} ", r.id)))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(line.ends_with(&format!("(revokes {})", d.id)), "{stdout}");

    let out = lienthong(vec![
        "track".into(),
        "-p".into(),
        profile(0),
        d.id.to_string(),
    ])
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains(&format!("business: REVOKED by {}", r.id)),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "recipient 000.00.14.H41    transport delivered     business status 03 (accepted and registered)"
        ),
        "{stdout}"
    );
    assert!(
        !stdout.contains("lifecycle"),
        "index entries stay hidden: {stdout}"
    );
    t.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_command_reports_the_rule_a_notice_breaks() {
    init();
    let t = TestNetwork::start(|_| {}).await.unwrap();
    let (a, b, c) = (
        t.client(0).unwrap(),
        t.client(1).unwrap(),
        t.client(2).unwrap(),
    );
    let mut d = a.new_document(vec![b.agency().clone(), c.agency().clone()], "Công văn");
    a.send(&mut d, &[]).await.unwrap();
    let profile = |i: usize| t.net.profiles[i].1.display().to_string();
    let status = |i: usize, code: &str| {
        vec![
            "status".to_string(),
            "-p".into(),
            profile(i),
            "--document".into(),
            d.id.to_string(),
            "--code".into(),
            code.into(),
        ]
    };

    // 15 with nothing to answer: the node's rule, and a failure exit.
    let out = lienthong(status(1, "15")).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(
            "error: FailedPrecondition: lifecycle: answer-needs-request: status 15 answers"
        ),
        "{stderr}"
    );

    // The sender's 13 without --to goes to every recipient; then 15 is an answer.
    let out = lienthong(status(0, "13")).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("sent to 000.00.14.H41"), "{stdout}");
    assert!(stdout.contains("sent to 000.00.20.H41"), "{stdout}");
    let out = lienthong(status(1, "15")).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    t.stop().await.unwrap();
}
