//! What one authenticated client can hold on a node: a bounded number of streams per
//! connection (advertised in HTTP/2 SETTINGS and enforced), a bounded number of
//! connections per certificate identity, and no connection that never starts HTTP/2.
//! Each test speaks raw TLS (and, where it matters, raw HTTP/2 frames) to a real node, so
//! that it sees what the server does rather than what a well-behaved client library
//! would hide.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use lienthong_client::ClientProfile;
use lienthong_testkit::TestNetwork;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// Bound on every wait; no test expects to get near it.
const LIMIT: Duration = Duration::from_secs(10);

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const GOAWAY: u8 = 0x7;
const FLAG_ACK: u8 = 0x1;
const FLAG_END_HEADERS: u8 = 0x4;
const SETTINGS_MAX_CONCURRENT_STREAMS: u16 = 0x3;
const REFUSED_STREAM: u32 = 0x7;

fn init() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A TLS connection to the node at `addr` with the certificate of `profile`, the
/// handshake done (on the client's side: with TLS 1.3 the server may still refuse).
async fn connect(profile: &Path, addr: SocketAddr) -> TlsStream<TcpStream> {
    let profile = ClientProfile::load(profile).unwrap();
    let node = lienthong_pki::Identity::Node(profile.node_id().unwrap());
    let config = lienthong_pki::client_config(&profile.tls_files(), Some(node)).unwrap();
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    tokio::time::timeout(
        LIMIT,
        tokio_rustls::TlsConnector::from(config).connect(name, tcp),
    )
    .await
    .expect("TLS handshake within the limit")
    .unwrap()
}

/// One HTTP/2 frame.
#[derive(Debug)]
struct Frame {
    kind: u8,
    flags: u8,
    stream: u32,
    payload: Vec<u8>,
}

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut out = len.to_be_bytes()[1..].to_vec();
    out.extend([kind, flags]);
    out.extend(stream.to_be_bytes());
    out.extend(payload);
    out
}

/// The next frame, or `None` once the server has closed the connection (cleanly or
/// not).
async fn read_frame(tls: &mut TlsStream<TcpStream>) -> Option<Frame> {
    let mut head = [0u8; 9];
    let read = tokio::time::timeout(LIMIT, tls.read_exact(&mut head))
        .await
        .expect("the server answers or closes within the limit");
    if let Err(e) = read {
        assert!(
            matches!(
                e.kind(),
                std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset
            ),
            "{e:?}"
        );
        return None;
    }
    let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
    let mut payload = vec![0u8; len];
    tls.read_exact(&mut payload).await.ok()?;
    Some(Frame {
        kind: head[3],
        flags: head[4],
        stream: u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff,
        payload,
    })
}

/// Whether the server speaks HTTP/2 on this connection: its first frame is SETTINGS
/// (which an HTTP/2 server sends without waiting for the client), or it closes.
async fn served(tls: &mut TlsStream<TcpStream>) -> Option<Frame> {
    let first = read_frame(tls).await?;
    assert_eq!(first.kind, SETTINGS, "{first:?}");
    assert_eq!(
        first.flags & FLAG_ACK,
        0,
        "the server's own SETTINGS: {first:?}"
    );
    Some(first)
}

/// The parameters of a SETTINGS frame.
fn settings(frame: &Frame) -> Vec<(u16, u32)> {
    frame
        .payload
        .chunks_exact(6)
        .map(|c| {
            (
                u16::from_be_bytes([c[0], c[1]]),
                u32::from_be_bytes([c[2], c[3], c[4], c[5]]),
            )
        })
        .collect()
}

/// A header block in HPACK, every field a literal without indexing and without Huffman
/// coding (RFC 7541 §6.2.2): enough for a request.
fn header_block(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in fields {
        out.push(0x00);
        out.push(name.len() as u8);
        out.extend(name.as_bytes());
        out.push(value.len() as u8);
        out.extend(value.as_bytes());
    }
    out
}

/// A client that opens more Subscribe streams on one connection than the node allows
/// sees the limit in the server's SETTINGS, and the stream past it is refused while those
/// within it stay open.
#[tokio::test]
async fn refuses_streams_past_the_advertised_limit() {
    init();
    let t = TestNetwork::start(|c| c.limits.max_concurrent_streams = 4)
        .await
        .unwrap();
    let mut tls = connect(&t.net.profiles[1].1, t.net.config.listen).await;
    tls.write_all(PREFACE).await.unwrap();
    tls.write_all(&frame(SETTINGS, 0, 0, &[])).await.unwrap();
    let server_settings = served(&mut tls).await.expect("the node serves HTTP/2");
    assert!(
        settings(&server_settings).contains(&(SETTINGS_MAX_CONCURRENT_STREAMS, 4)),
        "SETTINGS must advertise MAX_CONCURRENT_STREAMS 4: {:?}",
        settings(&server_settings)
    );
    // The limit applies once the client has acknowledged it.
    tls.write_all(&frame(SETTINGS, FLAG_ACK, 0, &[]))
        .await
        .unwrap();
    let request = header_block(&[
        (":method", "POST"),
        (":scheme", "http"),
        (":path", "/lienthong.v1.AgencyService/Subscribe"),
        (":authority", "localhost"),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
    ]);
    // Five streams, none ending: the request bodies never come, so all stay open.
    let streams: Vec<u32> = (0..5).map(|i| 1 + 2 * i).collect();
    for id in &streams {
        tls.write_all(&frame(HEADERS, FLAG_END_HEADERS, *id, &request))
            .await
            .unwrap();
    }
    tls.flush().await.unwrap();
    let refused = loop {
        let f = read_frame(&mut tls)
            .await
            .expect("the node keeps the connection and refuses the stream");
        assert_ne!(
            f.kind, GOAWAY,
            "the connection itself must not be torn down"
        );
        if f.kind == RST_STREAM {
            break f;
        }
    };
    assert_eq!(
        refused.stream, streams[4],
        "only the fifth stream: {refused:?}"
    );
    assert_eq!(
        u32::from_be_bytes(refused.payload[..4].try_into().unwrap()),
        REFUSED_STREAM
    );
    drop(tls);
    t.stop().await.unwrap();
}

/// The third connection of one agency is closed when it holds two already, while another
/// agency still connects; once one of the two closes, the agency connects again.
#[tokio::test]
async fn refuses_connections_past_the_cap_per_identity() {
    init();
    let t = TestNetwork::start(|c| c.limits.max_connections_per_identity = 2)
        .await
        .unwrap();
    let addr = t.net.config.listen;
    let (a, b) = (&t.net.profiles[0].1, &t.net.profiles[1].1);
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut tls = connect(a, addr).await;
        served(&mut tls)
            .await
            .expect("a connection within the cap is served");
        // Speak HTTP/2, so that the node keeps the connection.
        tls.write_all(PREFACE).await.unwrap();
        tls.write_all(&frame(SETTINGS, 0, 0, &[])).await.unwrap();
        held.push(tls);
    }
    let mut third = connect(a, addr).await;
    let answer = served(&mut third).await;
    assert!(
        answer.is_none(),
        "the third connection of the same agency must be closed, got {answer:?}"
    );

    let mut other = connect(b, addr).await;
    assert!(
        served(&mut other).await.is_some(),
        "another agency still connects"
    );
    t.client(1).unwrap().list_inbox(0, 1).await.unwrap();

    // The cap counts open connections: once one closes, there is room again.
    drop(held.pop());
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        let mut again = connect(a, addr).await;
        if served(&mut again).await.is_some() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the closed connection's place was never given back"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    drop((held, third, other));
    t.stop().await.unwrap();
}

/// A client that completes the TLS handshake and then sends nothing is closed once the
/// handshake timeout has passed again.
#[tokio::test]
async fn closes_authenticated_connections_that_never_start_http2() {
    init();
    let t = TestNetwork::start(|c| c.limits.handshake_timeout_ms = 300)
        .await
        .unwrap();
    let mut idle = connect(&t.net.profiles[0].1, t.net.config.listen).await;
    // Whatever the node sends first (its SETTINGS), it must then hang up on its own.
    let mut frames = 0;
    while read_frame(&mut idle).await.is_some() {
        frames += 1;
        assert!(frames < 100, "the node keeps talking to a silent client");
    }
    // And it still serves clients that do speak.
    t.client(0).unwrap().list_inbox(0, 1).await.unwrap();
    t.stop().await.unwrap();
}
