//! The gateway over real TLS sockets, driven by a bare HTTP client with headers signed
//! by the tests' own signer (written from the reference's rules, not the crate's code):
//! what an unmodified SDK would send, and what a broken or hostile one would.

mod common;

use base64::Engine;
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[test]
fn test_signer_reproduces_the_reference_example() {
    let headers = sdk_sign(
        "test-secret",
        &[
            ("systemid", "000.00.00.H41"),
            ("timestamp", "05122026T075928+0200"),
            ("Content-Type", "application/json"),
        ],
    );
    let get = |name: &str| headers.iter().find(|(k, _)| k == name).unwrap().1.clone();
    assert_eq!(
        get("XroadVnpt-sign-header"),
        r#"{"XroadVnpt-systemid":"000.00.00.H41","XroadVnpt-timestamp":"05122026T075928+0200","XroadVnpt-Content-Type":"application/json"}"#
    );
    assert_eq!(
        get("XroadVnpt-hash-header"),
        "17bf2a0735f9a10d057d93daa3128dee4d94c00be374e182731eb60dc3bfa1fd"
    );
}

fn receiver_headers(op_entries: &[(&str, &str)], content_type: &str) -> Vec<(String, String)> {
    let mut entries = vec![("systemid", RECEIVER)];
    entries.extend_from_slice(op_entries);
    entries.push(("timestamp", TS));
    entries.push(("Content-Type", content_type));
    sdk_sign(RECEIVER_SECRET, &entries)
}

async fn send_sample(gw: &Running) -> common::RawResponse {
    gw.request(
        "POST",
        "/sendEdoc",
        &send_edoc_headers(SENDER, SENDER_SECRET, SENDER_AGENCY, "edoc", EDOC_HASH_FILE),
        &sdk_body(EDOC),
    )
    .await
}

#[tokio::test]
async fn accepts_a_real_sample_edoc_and_delivers_it() {
    let gw = Running::start().await;
    let sent = send_sample(&gw).await;
    assert!(sent.body.is_ascii());
    let v = sent.json();
    assert_eq!(v["status"], "OK", "{v}");
    assert_eq!(v["ErrorCode"], "0");
    let doc_id = v["DocId"].as_str().unwrap().to_string();
    assert!(doc_id.starts_with("vxp-"), "{doc_id}");
    let held = gw.backend().held();
    assert_eq!(held.len(), 1);
    assert_eq!(
        held[0].content.bytes(),
        EDOC,
        "the CRLF the SDK appends was removed, nothing else"
    );
    assert_eq!(held[0].recipients, vec![RECEIVER_AGENCY.to_string()]);

    // The receiving system pulls it: list, fetch, acknowledge.
    let list = gw
        .request(
            "POST",
            "/getReceivedEdocList",
            &receiver_headers(
                &[("servicetype", "eDoc"), ("messagetype", "edoc")],
                "application/json",
            ),
            b"",
        )
        .await;
    assert!(
        list.body.is_ascii(),
        "Vietnamese text is escaped: {:?}",
        list.body
    );
    let v = list.json();
    assert_eq!(v["status"], "OK");
    assert_eq!(v["data"][0]["docId"], doc_id.as_str());
    assert_eq!(v["data"][0]["from"], SENDER_AGENCY);
    assert_eq!(v["data"][0]["status_desc"], "Chưa nhận");

    let fetched = gw
        .request(
            "POST",
            "/getEdoc",
            &receiver_headers(
                &[("docId", &doc_id), ("filePath", "/tmp/in")],
                "application/json",
            ),
            b"{}",
        )
        .await;
    let v = fetched.json();
    assert_eq!(v["status"], "OK");
    assert_eq!(v["ErrorCode"], "0");
    let data = base64::engine::general_purpose::STANDARD
        .decode(v["data"].as_str().unwrap())
        .unwrap();
    assert_eq!(data, EDOC);

    let downloaded = gw
        .request(
            "GET",
            "/downloadEdoc",
            &receiver_headers(
                &[("docId", &doc_id), ("filePath", "/tmp/in")],
                "application/json",
            ),
            b"",
        )
        .await;
    assert_eq!(downloaded.body.as_ref(), EDOC);

    let done = receiver_headers(
        &[("docId", &doc_id), ("status", "done")],
        "application/json",
    );
    let acked = gw.request("POST", "/updateStatus", &done, b"{}").await;
    assert_eq!(acked.json()["status"], "OK", "{}", acked.json());

    let count = gw
        .request(
            "POST",
            "/countReceiveEdoc",
            &receiver_headers(&[], "application/json"),
            b"{}",
        )
        .await;
    assert_eq!(
        count.json()["count"],
        0,
        "an acknowledged message is no longer waiting"
    );
}

/// Sends a request that must be refused and checks the SDK's failure shape, the code and
/// that the backend never heard of it.
async fn assert_refused(gw: &Running, response: common::RawResponse, code: &str, desc_part: &str) {
    assert_eq!(
        response.status,
        http::StatusCode::OK,
        "refusals are HTTP 200 with status FAIL"
    );
    assert_eq!(response.assert_fail(), code, "{}", response.json());
    let v = response.json();
    assert!(
        v["ErrorDesc"].as_str().unwrap().contains(desc_part),
        "ErrorDesc {:?} should mention {desc_part:?}",
        v["ErrorDesc"]
    );
    assert_eq!(
        gw.backend().calls(),
        Vec::<&str>::new(),
        "the backend was called"
    );
    assert!(gw.backend().held().is_empty());
}

#[tokio::test]
async fn rejects_unknown_system_id() {
    let gw = Running::start().await;
    let headers = send_edoc_headers(
        "dms-unknown",
        SENDER_SECRET,
        SENDER_AGENCY,
        "edoc",
        EDOC_HASH_FILE,
    );
    let r = gw
        .request("POST", "/sendEdoc", &headers, &sdk_body(EDOC))
        .await;
    assert_eq!(r.json()["DocId"], "", "DocId is present on sendEdoc errors");
    assert_refused(&gw, r, "103", "dms-unknown").await;
}

#[tokio::test]
async fn rejects_wrong_secret() {
    let gw = Running::start().await;
    let headers = send_edoc_headers(
        SENDER,
        "not-the-secret",
        SENDER_AGENCY,
        "edoc",
        EDOC_HASH_FILE,
    );
    let r = gw
        .request("POST", "/sendEdoc", &headers, &sdk_body(EDOC))
        .await;
    assert_eq!(r.json()["DocId"], "");
    assert_refused(&gw, r, "104", "secret").await;
}

#[tokio::test]
async fn rejects_tampered_signed_header() {
    let gw = Running::start().await;
    let mut headers =
        send_edoc_headers(SENDER, SENDER_SECRET, SENDER_AGENCY, "edoc", EDOC_HASH_FILE);
    // A proxy (or attacker) rewrites the signed messagetype header; the sign-header and
    // its MAC are left as they were.
    for (k, v) in headers.iter_mut() {
        if k == "XroadVnpt-messagetype" {
            *v = "status".into();
        }
    }
    let r = gw
        .request("POST", "/sendEdoc", &headers, &sdk_body(EDOC))
        .await;
    assert_refused(&gw, r, "105", "messagetype").await;
}

#[tokio::test]
async fn rejects_body_not_matching_hash_file() {
    let gw = Running::start().await;
    let headers = send_edoc_headers(SENDER, SENDER_SECRET, SENDER_AGENCY, "edoc", EDOC_HASH_FILE);
    let mut body = sdk_body(EDOC);
    body[500] ^= 0x20;
    let r = gw.request("POST", "/sendEdoc", &headers, &body).await;
    assert_refused(&gw, r, "109", EDOC_HASH_FILE).await;
    let leftovers = std::fs::read_dir(gw.spool.path()).unwrap().count();
    assert_eq!(
        leftovers, 0,
        "the spooled body of a refused message is removed"
    );
}

#[tokio::test]
async fn refuses_agency_the_system_may_not_act_for() {
    let gw = Running::start().await;
    // The sender system signs correctly but claims an agency it does not serve.
    let headers = send_edoc_headers(
        SENDER,
        SENDER_SECRET,
        "000.00.00.G22",
        "edoc",
        EDOC_HASH_FILE,
    );
    let r = gw
        .request("POST", "/sendEdoc", &headers, &sdk_body(EDOC))
        .await;
    assert_eq!(r.json()["DocId"], "");
    assert_refused(&gw, r, "108", "000.00.00.G22").await;
}

#[tokio::test]
async fn rejects_oversized_body_before_reading_it() {
    let gw = Running::start_with(|mut s| {
        s.max_edoc_bytes = 1000;
        s
    })
    .await;
    let headers = send_edoc_headers(SENDER, SENDER_SECRET, SENDER_AGENCY, "edoc", EDOC_HASH_FILE);
    let r = gw
        .request("POST", "/sendEdoc", &headers, &sdk_body(EDOC))
        .await;
    assert_refused(&gw, r, "110", "1000 bytes").await;
}

#[tokio::test]
async fn rejects_oversized_chunked_body_while_reading_it() {
    // No Content-Length to judge by: the limit is enforced as the body arrives.
    let gw = Running::start_with(|mut s| {
        s.max_edoc_bytes = 1000;
        s
    })
    .await;
    let mut tls = gw.tls_connect().await;
    let headers = send_edoc_headers(SENDER, SENDER_SECRET, SENDER_AGENCY, "edoc", EDOC_HASH_FILE);
    let mut request = b"POST /sendEdoc HTTP/1.1\r\nHost: 127.0.0.1\r\n".to_vec();
    for (k, v) in &headers {
        request.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
    }
    request.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
    let body = sdk_body(EDOC);
    for chunk in body.chunks(700) {
        request.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        request.extend_from_slice(chunk);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    tls.write_all(&request).await.unwrap();
    let head = read_head(&mut tls).await;
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head:?}");
    let len: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length: ")
                .map(|v| v.trim().parse().unwrap())
        })
        .expect("a Content-Length");
    let mut answer = vec![0u8; len];
    tls.read_exact(&mut answer).await.unwrap();
    let v: serde_json::Value = serde_json::from_slice(&answer).unwrap();
    assert_eq!(v["ErrorCode"], "110", "{v}");
    assert!(gw.backend().calls().is_empty());
    assert_eq!(std::fs::read_dir(gw.spool.path()).unwrap().count(), 0);
}

#[tokio::test]
async fn rejects_missing_hash_file() {
    let gw = Running::start().await;
    let headers = sdk_sign(
        SENDER_SECRET,
        &[
            ("systemid", SENDER),
            ("servicetype", "eDoc"),
            ("messagetype", "edoc"),
            ("from", SENDER_AGENCY),
            ("timestamp", TS),
            ("Content-Type", "application/octet-stream"),
        ],
    );
    let r = gw
        .request("POST", "/sendEdoc", &headers, &sdk_body(EDOC))
        .await;
    assert_refused(&gw, r, "107", "hash-file").await;
}

#[tokio::test]
async fn refuses_unsupported_operation() {
    let gw = Running::start().await;
    let headers = receiver_headers(&[], "application/json");
    let r = gw.request("POST", "/registerAgency", &headers, b"{}").await;
    assert_refused(&gw, r, "112", "registerAgency").await;
    let r = gw.request("POST", "/getEdoc/extra", &headers, b"{}").await;
    assert_refused(&gw, r, "112", "/getEdoc/extra").await;
}

#[tokio::test]
async fn resent_sendedoc_gets_the_original_docid() {
    let gw = Running::start().await;
    let first = send_sample(&gw).await.json();
    // The JDK re-sends the POST with byte-identical headers and body after a dropped
    // connection.
    let again = send_sample(&gw).await.json();
    assert_eq!(first["status"], "OK");
    assert_eq!(again["status"], "OK");
    assert_eq!(first["DocId"], again["DocId"]);
    assert_eq!(gw.backend().held().len(), 1, "one message, not two");

    // Two copies racing each other are serialized on their key and get one DocId too.
    let (a, b) = tokio::join!(send_sample(&gw), send_sample(&gw));
    assert_eq!(a.json()["DocId"], first["DocId"]);
    assert_eq!(b.json()["DocId"], first["DocId"]);
    assert_eq!(gw.backend().held().len(), 1);
}

#[tokio::test]
async fn resent_update_status_gets_ok() {
    let gw = Running::start().await;
    let doc_id = send_sample(&gw).await.json()["DocId"]
        .as_str()
        .unwrap()
        .to_string();
    let headers = receiver_headers(
        &[("docId", &doc_id), ("status", "done")],
        "application/json",
    );
    for _ in 0..2 {
        let r = gw.request("POST", "/updateStatus", &headers, b"{}").await;
        let v = r.json();
        assert_eq!(v["status"], "OK", "{v}");
        assert_eq!(v["ErrorCode"], "0");
    }
    let held = gw.backend().held();
    assert_eq!(held[0].statuses.len(), 1);
}

#[tokio::test]
async fn ignores_stale_signed_keys_and_case_of_docid() {
    let gw = Running::start().await;
    let doc_id = send_sample(&gw).await.json()["DocId"]
        .as_str()
        .unwrap()
        .to_string();
    // A long-lived SDK object re-sends hash-file, from and filePath of earlier calls, and
    // ServiceTest writes `docid`.
    let headers = receiver_headers(
        &[
            ("hash-file", EDOC_HASH_FILE),
            ("docid", &doc_id),
            ("filePath", "/tmp/in"),
            ("from", SENDER_AGENCY),
            ("status", "processing"),
        ],
        "application/json",
    );
    let r = gw.request("POST", "/updateStatus", &headers, b"{}").await;
    assert_eq!(r.json()["status"], "OK", "{}", r.json());
    assert_eq!(
        gw.backend().held()[0].statuses.get(RECEIVER_AGENCY),
        Some(&lienthong_vxp::DeliveryStatus::Processing)
    );
}

#[tokio::test]
async fn status_message_is_routed_by_response_for() {
    let gw = Running::start().await;
    let headers = send_edoc_headers(H41, H41_SECRET, H41, "status", STATUS_01_HASH_FILE);
    let r = gw
        .request("POST", "/sendEdoc", &headers, &sdk_body(STATUS_01))
        .await;
    assert_eq!(r.json()["status"], "OK", "{}", r.json());
    let list = gw
        .request(
            "POST",
            "/getReceivedEdocList",
            &receiver_headers(
                &[("servicetype", "eDoc"), ("messagetype", "status")],
                "application/json",
            ),
            b"",
        )
        .await
        .json();
    assert_eq!(list["data"][0]["to"], "000.00.00.G22");
    assert_eq!(list["data"][0]["messageType"], "status");
}

#[tokio::test]
async fn backend_refusal_is_reported_in_the_sdk_shape() {
    let gw = Running::start().await;
    // Correctly signed and hashed, but the edXML says From 000.00.00.H41 while sent for
    // the commune: the bus refuses it.
    let headers = send_edoc_headers(
        SENDER,
        SENDER_SECRET,
        SENDER_AGENCY,
        "status",
        STATUS_01_HASH_FILE,
    );
    let r = gw
        .request("POST", "/sendEdoc", &headers, &sdk_body(STATUS_01))
        .await;
    assert_eq!(r.assert_fail(), "202");
    assert_eq!(r.json()["DocId"], "");
    assert!(
        r.json()["ErrorDesc"]
            .as_str()
            .unwrap()
            .contains("000.00.00.H41")
    );
}

#[tokio::test]
async fn published_sample_with_placeholder_attachment_is_refused_by_the_bus() {
    let gw = Running::start().await;
    // The gateway checks the bytes, not the edXML: the bus behind it (lienthong-edxml)
    // finds the placeholder where base64 should be, and its refusal reaches the DMS.
    let headers = send_edoc_headers(
        SENDER,
        SENDER_SECRET,
        SENDER_AGENCY,
        "edoc",
        EDOC_AS_PUBLISHED_HASH_FILE,
    );
    let r = gw
        .request("POST", "/sendEdoc", &headers, &sdk_body(EDOC_AS_PUBLISHED))
        .await;
    assert_eq!(r.assert_fail(), "202");
    assert_eq!(r.json()["DocId"], "");
    let desc = r.json()["ErrorDesc"].as_str().unwrap().to_string();
    assert!(
        desc.contains("ContentTransferEncoded is not base64"),
        "{desc}"
    );
    assert_eq!(gw.backend().calls(), vec!["send_edoc"]);
    assert!(gw.backend().held().is_empty());
}

#[tokio::test]
async fn download_refusal_is_an_empty_body() {
    let gw = Running::start().await;
    let headers = receiver_headers(
        &[("docId", "vxp-nothing"), ("filePath", "/tmp")],
        "application/json",
    );
    let r = gw.request("GET", "/downloadEdoc", &headers, b"").await;
    // The SDK reports success for any non-empty body, so a refusal sends none.
    assert!(r.body.is_empty());
    assert_eq!(r.headers["x-vxp-errorcode"], "201");
}

#[tokio::test]
async fn old_frozen_timestamp_is_accepted_by_default() {
    let gw = Running::start().await;
    let headers = sdk_sign(
        RECEIVER_SECRET,
        &[
            ("systemid", RECEIVER),
            ("timestamp", "17012019T080000+0001"),
            ("Content-Type", "application/json"),
        ],
    );
    let r = gw.request("POST", "/getAgenciesList", &headers, b"").await;
    let v = r.json();
    assert_eq!(v["status"], "OK", "{v}");
    assert_eq!(v["data"][0]["code"], "000.00.00.G22");
}

#[tokio::test]
async fn rejects_stale_timestamp_when_a_window_is_configured() {
    let gw = Running::start_with(|mut s| {
        s.timestamp_window = Some(std::time::Duration::from_secs(3600));
        s
    })
    .await;
    let headers = sdk_sign(
        RECEIVER_SECRET,
        &[
            ("systemid", RECEIVER),
            ("timestamp", "17012019T080000+0001"),
            ("Content-Type", "application/json"),
        ],
    );
    let r = gw.request("POST", "/getAgenciesList", &headers, b"").await;
    assert_refused(&gw, r, "106", "17012019T080000+0001").await;
}

/// Reads from a TLS stream until `\r\n\r\n`, returning the head.
async fn read_head(stream: &mut (impl tokio::io::AsyncRead + Unpin)) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = stream.read(&mut byte).await.unwrap();
        assert_eq!(
            n,
            1,
            "connection closed after {:?}",
            String::from_utf8_lossy(&head)
        );
        head.push(byte[0]);
    }
    String::from_utf8(head).unwrap()
}

fn raw_head(path: &str, headers: &[(String, String)], len: usize) -> Vec<u8> {
    let mut out = format!("POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n").into_bytes();
    for (k, v) in headers {
        out.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
    }
    out.extend_from_slice(
        format!("Content-Length: {len}\r\nExpect: 100-continue\r\n\r\n").as_bytes(),
    );
    out
}

#[tokio::test]
async fn answers_expect_100_continue_before_the_body() {
    let gw = Running::start().await;
    let mut tls = gw.tls_connect().await;
    let headers = send_edoc_headers(SENDER, SENDER_SECRET, SENDER_AGENCY, "edoc", EDOC_HASH_FILE);
    let body = sdk_body(EDOC);
    tls.write_all(&raw_head("/sendEdoc", &headers, body.len()))
        .await
        .unwrap();
    tls.flush().await.unwrap();
    // As Apache HttpClient does: wait for 100 Continue before sending the body.
    let interim = read_head(&mut tls).await;
    assert!(
        interim.starts_with("HTTP/1.1 100 Continue\r\n"),
        "{interim:?}"
    );
    tls.write_all(&body).await.unwrap();
    tls.flush().await.unwrap();
    let head = read_head(&mut tls).await;
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head:?}");
    assert_eq!(
        gw.backend().held().len(),
        1,
        "the body sent after 100 Continue was accepted"
    );

    // The connection stays usable: an updateStatus with its `{}` body, also with Expect.
    let doc_id = gw.backend().held()[0].doc_id.clone();
    let headers = receiver_headers(
        &[("docId", &doc_id), ("status", "done")],
        "application/json",
    );
    let mut tls = gw.tls_connect().await;
    tls.write_all(&raw_head("/updateStatus", &headers, 2))
        .await
        .unwrap();
    let interim = read_head(&mut tls).await;
    assert!(
        interim.starts_with("HTTP/1.1 100 Continue\r\n"),
        "{interim:?}"
    );
    tls.write_all(b"{}").await.unwrap();
    let head = read_head(&mut tls).await;
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head:?}");
}

#[tokio::test]
async fn refused_request_with_expect_is_answered_without_reading_the_body() {
    let gw = Running::start().await;
    let mut tls = gw.tls_connect().await;
    let headers = send_edoc_headers(
        SENDER,
        "not-the-secret",
        SENDER_AGENCY,
        "edoc",
        EDOC_HASH_FILE,
    );
    tls.write_all(&raw_head("/sendEdoc", &headers, EDOC.len() + 2))
        .await
        .unwrap();
    // No 100 Continue: the final answer comes at once, so the client never sends the body.
    let head = read_head(&mut tls).await;
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head:?}");
    let len: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length: ")
                .map(|v| v.trim().parse().unwrap())
        })
        .expect("a Content-Length");
    let mut body = vec![0u8; len];
    tls.read_exact(&mut body).await.unwrap();
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["ErrorCode"], "104");
    assert!(gw.backend().calls().is_empty());
}

#[tokio::test]
async fn shutdown_future_stops_the_server() {
    let gw = Running::start().await;
    let addr = gw.addr;
    gw.stop().await;
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "the listener is closed"
    );
}

#[tokio::test]
async fn refused_sendedoc_without_expect_is_answered_after_its_body() {
    // HttpURLConnection (the SDK's sendEdoc) sends no Expect and writes the whole body
    // before reading: a refusal must wait for the body, or the DMS gets a broken pipe
    // instead of the error.
    let gw = Running::start().await;
    let mut tls = gw.tls_connect().await;
    let headers = send_edoc_headers(
        SENDER,
        "not-the-secret",
        SENDER_AGENCY,
        "edoc",
        EDOC_HASH_FILE,
    );
    let body = vec![b'x'; 8 << 20];
    let mut head = b"POST /sendEdoc HTTP/1.1\r\nHost: 127.0.0.1\r\n".to_vec();
    for (k, v) in &headers {
        head.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
    }
    head.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
    tls.write_all(&head).await.unwrap();
    tls.write_all(&body)
        .await
        .expect("the whole body can be written");
    tls.flush().await.unwrap();
    let head = read_head(&mut tls).await;
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head:?}");
    let len: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length: ")
                .map(|v| v.trim().parse().unwrap())
        })
        .expect("a Content-Length");
    let mut answer = vec![0u8; len];
    tls.read_exact(&mut answer).await.unwrap();
    let v: serde_json::Value = serde_json::from_slice(&answer).unwrap();
    assert_eq!(v["ErrorCode"], "104");
    assert_eq!(v["DocId"], "");
    assert!(gw.backend().calls().is_empty());
}

#[tokio::test]
async fn shutdown_closes_idle_keep_alive_connections() {
    let gw = Running::start().await;
    // A DMS keeps its connection open between calls (HttpClient keep-alive).
    let mut tls = gw.tls_connect().await;
    let headers = receiver_headers(&[], "application/json");
    let mut request = b"POST /countReceiveEdoc HTTP/1.1\r\nHost: 127.0.0.1\r\n".to_vec();
    for (k, v) in &headers {
        request.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
    }
    request.extend_from_slice(b"Content-Length: 2\r\n\r\n{}");
    tls.write_all(&request).await.unwrap();
    let head = read_head(&mut tls).await;
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head:?}");
    // The server returns although the connection is still open, and closes it.
    tokio::time::timeout(std::time::Duration::from_secs(30), gw.stop())
        .await
        .expect("serve returned after the shutdown future completed");
    let mut rest = Vec::new();
    let _ = tls.read_to_end(&mut rest).await;
    let text = String::from_utf8_lossy(&rest);
    assert!(
        text.contains("\"count\":0"),
        "the answer's body came before the close: {text:?}"
    );
}
