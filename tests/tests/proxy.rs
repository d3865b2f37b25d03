//! The fault-injecting proxy on its own, against an echo server on loopback: it forwards
//! bytes in order, delays them by what it is told, cuts and refuses while partitioned, and
//! forwards again once healed.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use lienthong_testkit::proxy::{Delay, FaultProxy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

/// An echo server on 127.0.0.1:0 that writes back everything it reads.
async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}

async fn round_trip(stream: &mut TcpStream, message: &[u8]) -> Vec<u8> {
    stream.write_all(message).await.unwrap();
    let mut back = vec![0u8; message.len()];
    tokio::time::timeout(Duration::from_secs(10), stream.read_exact(&mut back))
        .await
        .expect("echo within 10 s")
        .unwrap();
    back
}

/// Whether the connection is closed by the other end within `within` (EOF or reset).
async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 16];
    match tokio::time::timeout(within, stream.read(&mut buf)).await {
        Ok(Ok(0)) | Ok(Err(_)) => true,
        Ok(Ok(_)) | Err(_) => false,
    }
}

#[tokio::test]
async fn forwards_a_large_stream_in_order() {
    let proxy = FaultProxy::bind(echo_server().await, 1).await.unwrap();
    let mut s = TcpStream::connect(proxy.addr()).await.unwrap();
    // 1 MiB of a pattern that shows any reordering or loss of chunks.
    let data: Vec<u8> = (0..1024 * 1024u32)
        .map(|i| (i % 251) as u8 ^ (i / 251) as u8)
        .collect();
    let (mut r, mut w) = s.split();
    let send = async {
        w.write_all(&data).await.unwrap();
    };
    let mut back = vec![0u8; data.len()];
    let recv = async {
        r.read_exact(&mut back).await.unwrap();
    };
    tokio::join!(send, recv);
    assert!(back == data, "the echo differs from what was sent");
    assert_eq!(proxy.control().stats().forwarded.load(Ordering::Relaxed), 1);
    // The byte counter moves just after each write; the echo may be read before that.
    let deadline = Instant::now() + Duration::from_secs(2);
    while proxy.control().stats().bytes.load(Ordering::Relaxed) < 2 * data.len() as u64 {
        assert!(Instant::now() < deadline, "byte counter short");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn delays_each_direction_by_the_configured_latency() {
    // Wall-clock latency over real loopback sockets is what is measured: paused time would
    // measure only the proxy's timers and could fire `round_trip`'s timeout while the
    // echo's bytes are in the kernel.
    let proxy = FaultProxy::bind(echo_server().await, 2).await.unwrap();
    let mut s = TcpStream::connect(proxy.addr()).await.unwrap();
    // Warm up, undelayed: a round trip on loopback is far below 50 ms.
    let t = Instant::now();
    round_trip(&mut s, b"ping").await;
    assert!(t.elapsed() < Duration::from_millis(50), "{:?}", t.elapsed());

    // A fixed delay applies once per direction: a round trip takes at least twice it.
    proxy.control().set_delay(Some(Delay {
        base: Duration::from_millis(100),
        jitter: Duration::ZERO,
    }));
    let t = Instant::now();
    assert_eq!(round_trip(&mut s, b"hello").await, b"hello");
    let rtt = t.elapsed();
    assert!(
        rtt >= Duration::from_millis(200) && rtt < Duration::from_millis(600),
        "round trip {rtt:?} with 100 ms each way"
    );

    // 100 ms ± 50 ms: every round trip within [100, 300] ms (plus scheduling slack), and
    // the jitter shows (not all equal).
    proxy.control().set_delay(Some(Delay::WAN));
    let mut rtts = Vec::new();
    for i in 0..8u8 {
        let t = Instant::now();
        assert_eq!(round_trip(&mut s, &[i; 32]).await, [i; 32]);
        rtts.push(t.elapsed());
    }
    for rtt in &rtts {
        assert!(
            *rtt >= Duration::from_millis(100) && *rtt < Duration::from_millis(500),
            "{rtts:?}"
        );
    }
    let spread = *rtts.iter().max().unwrap() - *rtts.iter().min().unwrap();
    assert!(spread >= Duration::from_millis(10), "no jitter: {rtts:?}");

    // Delay off: fast again.
    proxy.control().set_delay(None);
    let t = Instant::now();
    round_trip(&mut s, b"pong").await;
    assert!(t.elapsed() < Duration::from_millis(50), "{:?}", t.elapsed());
}

#[tokio::test]
async fn delayed_chunks_keep_their_order() {
    let proxy = FaultProxy::bind(echo_server().await, 3).await.unwrap();
    proxy.control().set_delay(Some(Delay {
        base: Duration::from_millis(20),
        jitter: Duration::from_millis(19),
    }));
    let mut s = TcpStream::connect(proxy.addr()).await.unwrap();
    let (mut r, mut w) = s.split();
    // Many small writes, each a chunk with its own jittered due time.
    let send = async {
        for i in 0..200u32 {
            w.write_all(&i.to_be_bytes()).await.unwrap();
            if i % 10 == 0 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    };
    let mut back = vec![0u8; 800];
    let recv = async {
        tokio::time::timeout(Duration::from_secs(20), r.read_exact(&mut back))
            .await
            .unwrap()
            .unwrap();
    };
    tokio::join!(send, recv);
    let got: Vec<u32> = back
        .chunks(4)
        .map(|c| u32::from_be_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(got, (0..200).collect::<Vec<_>>());
}

#[tokio::test]
async fn partition_cuts_open_connections_and_refuses_new_ones_until_healed() {
    let proxy = FaultProxy::bind(echo_server().await, 4).await.unwrap();
    let mut open = TcpStream::connect(proxy.addr()).await.unwrap();
    round_trip(&mut open, b"before").await;

    proxy.control().set_partitioned(true);
    assert!(
        closed_within(&mut open, Duration::from_secs(2)).await,
        "the open connection was not cut"
    );
    // A new connection is accepted by the kernel, then closed by the proxy without a
    // byte forwarded.
    let mut refused = TcpStream::connect(proxy.addr()).await.unwrap();
    let _ = refused.write_all(b"anyone?").await;
    assert!(
        closed_within(&mut refused, Duration::from_secs(2)).await,
        "a new connection got through the partition"
    );
    let stats = proxy.control().stats();
    assert_eq!(stats.cut.load(Ordering::Relaxed), 1);
    assert!(stats.refused.load(Ordering::Relaxed) >= 1);
    assert_eq!(stats.forwarded.load(Ordering::Relaxed), 1);

    proxy.control().heal();
    let mut healed = TcpStream::connect(proxy.addr()).await.unwrap();
    assert_eq!(round_trip(&mut healed, b"after").await, b"after");
    assert_eq!(stats.forwarded.load(Ordering::Relaxed), 2);
}

#[tokio::test]
async fn closes_the_client_when_the_target_is_down() {
    // A port with nothing listening: bind, note, release.
    let target = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let proxy = FaultProxy::bind(target, 5).await.unwrap();
    let mut s = TcpStream::connect(proxy.addr()).await.unwrap();
    assert!(closed_within(&mut s, Duration::from_secs(6)).await);
    assert_eq!(
        proxy.control().stats().target_down.load(Ordering::Relaxed),
        1
    );
}
