//! The client against the gateway over real TCP and TLS (a self-signed certificate made
//! with rcgen), and against a bare TLS server that records what the client sends.

mod common;

use std::io::Write;

use common::*;
use lienthong_vxp::{ClientConfig, DeliveryStatus, MessageType, Secret, VxpClient, VxpError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

fn write_temp(bytes: &[u8]) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(bytes).unwrap();
    f.flush().unwrap();
    f
}

#[tokio::test]
async fn client_round_trip_with_the_gateway_over_tls() {
    let gw = Running::start().await;
    let sender = gw.client(SENDER, SENDER_SECRET);
    let receiver = gw.client(RECEIVER, RECEIVER_SECRET);
    let file = write_temp(EDOC);

    let doc_id = sender
        .send_edoc(SENDER_AGENCY, MessageType::Edoc, None, file.path())
        .await
        .unwrap();
    assert!(doc_id.starts_with("vxp-"));
    assert_eq!(gw.backend().held()[0].content.bytes(), EDOC);

    assert_eq!(receiver.count_received(MessageType::Edoc).await.unwrap(), 1);
    assert_eq!(
        receiver.count_received(MessageType::Status).await.unwrap(),
        0
    );
    let list = receiver.received_edocs(MessageType::Edoc).await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].doc_id.as_deref(), Some(doc_id.as_str()));
    assert_eq!(list[0].status_desc.as_deref(), Some("Chưa nhận"));

    let mut fetched = Vec::new();
    let n = receiver.get_edoc(&doc_id, &mut fetched).await.unwrap();
    assert_eq!(n, EDOC.len() as u64);
    assert_eq!(fetched, EDOC);
    let mut downloaded = Vec::new();
    receiver
        .download_edoc(&doc_id, &mut downloaded)
        .await
        .unwrap();
    assert_eq!(downloaded, EDOC);

    receiver
        .update_status(&doc_id, DeliveryStatus::Done)
        .await
        .unwrap();
    assert_eq!(receiver.count_received(MessageType::Edoc).await.unwrap(), 0);

    let sent = sender
        .sent_edocs(MessageType::Edoc, Some(&doc_id))
        .await
        .unwrap();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].to_code.as_deref(), Some(RECEIVER_AGENCY));
    assert_eq!(sent[0].receive_status.as_deref(), Some("done"));

    let agencies = sender.agencies().await.unwrap();
    assert_eq!(agencies[0].name.as_deref(), Some("Văn phòng Chính phủ"));
    let qd20 = sender.agencies_qd20("1").await.unwrap();
    assert_eq!(qd20[0].name.as_deref(), Some("UBND Tỉnh Nghệ An (level 1)"));
    let units = sender.synchronize_units().await.unwrap();
    assert_eq!(units[0].version, Some(2));
    assert_eq!(units[0].is_agency, Some(true));
}

#[tokio::test]
async fn client_reports_the_gateways_refusal() {
    let gw = Running::start().await;
    let wrong = gw.client(SENDER, "not-the-secret");
    let file = write_temp(EDOC);
    let err = wrong
        .send_edoc(SENDER_AGENCY, MessageType::Edoc, None, file.path())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, VxpError::Remote { op: "sendEdoc", error_code, .. } if error_code == "104"),
        "{err:?}"
    );

    let receiver = gw.client(RECEIVER, RECEIVER_SECRET);
    let mut out = Vec::new();
    let err = receiver.get_edoc("vxp-none", &mut out).await.unwrap_err();
    assert!(
        matches!(&err, VxpError::Remote { op: "getEdoc", error_code, .. } if error_code == "201"),
        "{err:?}"
    );
    assert!(out.is_empty());
    let err = receiver
        .download_edoc("vxp-none", &mut out)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, VxpError::Remote { op: "downloadEdoc", error_code, error_desc }
            if error_code == "100" && error_desc.contains("vxp-none")),
        "{err:?}"
    );
}

#[tokio::test]
async fn client_refuses_a_plain_http_endpoint() {
    install_ring();
    let pki = TestPki::new();
    let err = VxpClient::new(ClientConfig::new(
        "http://127.0.0.1:8080",
        "s",
        Secret::new("k"),
        pki.client_config(),
    ))
    .unwrap_err();
    assert!(
        matches!(&err, VxpError::BadEndpoint { reason, .. } if reason.contains("https://")),
        "{err:?}"
    );
}

/// A large message (not edXML: a `TEST <from> <to>` line and pseudo-random printable
/// text) sent and fetched through the client and the gateway. Its size is
/// `VXP_LARGE_MIB` MiB (default 24), so that peak memory can be measured by running this
/// test alone with a larger size.
#[tokio::test]
async fn client_streams_a_large_message_both_ways() {
    let mib: usize = std::env::var("VXP_LARGE_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(24);
    let gw = Running::start_with(|mut s| {
        s.max_edoc_bytes = (mib as u64 + 1) << 20;
        s
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("large.edxml");
    let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        let head = format!("TEST {SENDER_AGENCY} {RECEIVER_AGENCY}\n");
        f.write_all(head.as_bytes()).unwrap();
        digest.update(head.as_bytes());
        let mut x: u32 = 12345;
        let mut line = [0u8; 1024];
        for _ in 0..mib * 1024 {
            for b in line.iter_mut() {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                *b = b' ' + ((x >> 16) % 94) as u8;
            }
            f.write_all(&line).unwrap();
            digest.update(&line);
        }
    }
    let expected = digest.finish();
    let sender = gw.client(SENDER, SENDER_SECRET);
    let doc_id = sender
        .send_edoc(SENDER_AGENCY, MessageType::Edoc, None, &path)
        .await
        .unwrap();

    let receiver = gw.client(RECEIVER, RECEIVER_SECRET);
    let out_path = dir.path().join("fetched.edxml");
    let mut out = tokio::fs::File::create(&out_path).await.unwrap();
    let n = receiver.get_edoc(&doc_id, &mut out).await.unwrap();
    drop(out);
    assert_eq!(n, std::fs::metadata(&path).unwrap().len());
    // Hashed as a stream: reading it whole would make the process hold the message.
    let mut fetched = ring::digest::Context::new(&ring::digest::SHA256);
    let mut file = std::fs::File::open(&out_path).unwrap();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = std::io::Read::read(&mut file, &mut buf).unwrap();
        if n == 0 {
            break;
        }
        fetched.update(&buf[..n]);
    }
    assert_eq!(fetched.finish().as_ref(), expected.as_ref());
    if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
        let hwm = status
            .lines()
            .find(|l| l.starts_with("VmHWM"))
            .unwrap_or("");
        eprintln!("{mib} MiB message sent and fetched; process {hwm}");
    }
}

/// A one-shot TLS server that records the request head and body and answers `answer`.
async fn record_one_request(
    answer: &'static str,
) -> (String, tokio::task::JoinHandle<(String, Vec<u8>)>, TestPki) {
    install_ring();
    let pki = TestPki::new();
    let acceptor = tokio_rustls::TlsAcceptor::from(pki.server_config());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!(
        "https://localhost:{}/vxp",
        listener.local_addr().unwrap().port()
    );
    let task = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut tls = acceptor.accept(tcp).await.unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            tls.read_exact(&mut byte).await.unwrap();
            head.push(byte[0]);
        }
        let head = String::from_utf8(head).unwrap();
        let len: usize = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length: ")
                    .map(|v| v.trim().parse().unwrap())
            })
            .unwrap_or(0);
        let mut body = vec![0u8; len];
        tls.read_exact(&mut body).await.unwrap();
        let response = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
            answer.len()
        );
        tls.write_all(response.as_bytes()).await.unwrap();
        tls.shutdown().await.unwrap();
        (head, body)
    });
    (endpoint, task, pki)
}

#[tokio::test]
async fn client_sends_what_the_sdk_sends() {
    // A raw UTF-8 answer with a number ErrorCode, as a server other than ours may send.
    let (endpoint, task, pki) = record_one_request(
        r#"{"status":"OK","ErrorCode":0,"ErrorDesc":"Thành công","DocId":"X-1"}"#,
    )
    .await;
    let client = VxpClient::new(ClientConfig::new(
        endpoint,
        "000.00.00.H41",
        Secret::new("bí-mật/Zm9vYmFy+=="),
        pki.client_config(),
    ))
    .unwrap();
    let file = write_temp(EDOC_AS_PUBLISHED);
    let doc_id = client
        .send_edoc("000.00.00.H41", MessageType::Edoc, None, file.path())
        .await
        .unwrap();
    assert_eq!(doc_id, "X-1");
    let (head, body) = task.await.unwrap();

    let mut lines = head.lines();
    assert_eq!(lines.next().unwrap(), "POST /vxp/sendEdoc HTTP/1.1");
    let headers: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (k, v) = l.split_once(": ").unwrap();
            (k.to_ascii_lowercase(), v.to_string())
        })
        .collect();
    let get = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .unwrap_or_else(|| panic!("no {name} in {head}"))
            .1
            .clone()
    };
    // The body: the file and one CRLF, with its length.
    let mut expected_body = EDOC_AS_PUBLISHED.to_vec();
    expected_body.extend_from_slice(b"\r\n");
    assert_eq!(body, expected_body);
    assert_eq!(get("content-length"), expected_body.len().to_string());
    assert_eq!(get("content-type"), "application/octet-stream");
    // hash-file as Python computes it (tests/common), signed.
    assert_eq!(get("xroadvnpt-hash-file"), EDOC_AS_PUBLISHED_HASH_FILE);
    // The signed keys in the recorded SDK order, on the wire in that order too.
    assert_eq!(
        get("xroadvnpt-sign-header-key"),
        "systemid;servicetype;messagetype;hash-file;from;timestamp;Content-Type"
    );
    let order: Vec<&str> = headers
        .iter()
        .map(|(k, _)| k.as_str())
        .filter(|k| k.starts_with("xroadvnpt-"))
        .collect();
    assert_eq!(
        order,
        [
            "xroadvnpt-systemid",
            "xroadvnpt-servicetype",
            "xroadvnpt-messagetype",
            "xroadvnpt-hash-file",
            "xroadvnpt-from",
            "xroadvnpt-timestamp",
            "xroadvnpt-content-type",
            "xroadvnpt-sign-header-key",
            "xroadvnpt-sign-header",
            "xroadvnpt-hash-header",
            "xroadvnpt-version",
        ]
    );
    // The MAC, recomputed here with ring over the received sign-header.
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, "bí-mật/Zm9vYmFy+==".as_bytes());
    let tag = ring::hmac::sign(&key, get("xroadvnpt-sign-header").as_bytes());
    assert_eq!(get("xroadvnpt-hash-header"), hex::encode(tag.as_ref()));
    let ts = get("xroadvnpt-timestamp");
    assert_eq!(
        get("xroadvnpt-sign-header"),
        format!(
            r#"{{"XroadVnpt-systemid":"000.00.00.H41","XroadVnpt-servicetype":"eDoc","XroadVnpt-messagetype":"edoc","XroadVnpt-hash-file":"{EDOC_AS_PUBLISHED_HASH_FILE}","XroadVnpt-from":"000.00.00.H41","XroadVnpt-timestamp":"{ts}","XroadVnpt-Content-Type":"application/octet-stream"}}"#
        )
    );
    lienthong_vxp::timestamp::parse_timestamp(&ts).unwrap();
    assert_eq!(get("user-agent"), "JAVASDKAgent/1.0.0 XRoad/VPCP");
    assert_eq!(get("xroadvnpt-version"), "3.0.201608");
}

#[tokio::test]
async fn client_refuses_a_value_a_header_cannot_carry() {
    let gw = Running::start().await;
    let receiver = gw.client(RECEIVER, RECEIVER_SECRET);
    let err = receiver
        .update_status("vxp-1\r\nX-Injected: 1", DeliveryStatus::Done)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, VxpError::BadHeader { name, .. } if name == "XroadVnpt-docId"),
        "{err:?}"
    );
    assert!(gw.backend().calls().is_empty());
}
