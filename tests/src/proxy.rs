//! A fault-injecting TCP proxy for chaos tests: a forwarder on loopback that sits in front
//! of a node and can, at run time, **partition** it (refuse new connections and cut the
//! ones that are open) and **delay** the bytes it forwards.
//!
//! The proxy knows nothing about TLS or gRPC: it moves bytes. That is enough because
//! lienthong pins a peer by the node id in its certificate, not by its address, so a node
//! whose directory entry names the proxy is still reached and verified end to end.
//!
//! # Delays
//! Each direction of a connection is a reader and a writer joined by a bounded queue of
//! chunks. The reader stamps each chunk it reads with a due time, `now + base ± jitter`,
//! drawn when the chunk is read; the writer writes the chunks in the order they were read,
//! each no earlier than its due time. Bytes therefore never overtake one another (a chunk
//! whose own draw is shorter than its predecessor's waits for it), and a stream sees the
//! latency of its slowest recent chunk, as on a congested link. Delay changes apply to the
//! chunks read after the change.
//!
//! # Partitions
//! While partitioned, the proxy accepts connections and closes them at once (the client
//! sees its connection refused or reset during the TLS handshake), and every forwarded
//! connection that was open is cut, both sockets closed. Healing lets new connections
//! through again; cut connections stay cut, as after a real outage.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// Bytes read from a socket at a time.
const CHUNK: usize = 16 * 1024;
/// Chunks a direction holds between reader and writer: what a delayed link has "on the
/// wire". The reader stops reading (and TCP pushes back on the sender) when it is full.
const QUEUED_CHUNKS: usize = 256;
/// How long the proxy waits for the target to accept before giving up on a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Added latency per forwarded chunk: `base` plus a uniform draw in `[-jitter, +jitter]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delay {
    pub base: Duration,
    pub jitter: Duration,
}

impl Delay {
    /// 100 ms ± 50 ms, the WAN-like delay of the chaos suite.
    pub const WAN: Delay = Delay {
        base: Duration::from_millis(100),
        jitter: Duration::from_millis(50),
    };

    fn draw(&self, rng: &mut fastrand::Rng) -> Duration {
        let jitter = self.jitter.as_micros() as u64;
        if jitter == 0 {
            return self.base;
        }
        let offset = rng.u64(0..=2 * jitter);
        (self.base + Duration::from_micros(offset)).saturating_sub(self.jitter)
    }
}

impl std::fmt::Display for Delay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ms ± {} ms",
            self.base.as_millis(),
            self.jitter.as_millis()
        )
    }
}

/// What the proxy does to traffic right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProxyState {
    /// Refuse new connections and cut open ones.
    pub partitioned: bool,
    /// Latency added to every chunk; `None` forwards at once.
    pub delay: Option<Delay>,
}

/// Counters, for tests and for the chaos report.
#[derive(Debug, Default)]
pub struct ProxyStats {
    /// Connections forwarded to the target.
    pub forwarded: AtomicU64,
    /// Connections closed at once because the proxy was partitioned.
    pub refused: AtomicU64,
    /// Open connections cut by a partition.
    pub cut: AtomicU64,
    /// Connections closed because the target did not accept (a node that is down).
    pub target_down: AtomicU64,
    /// Bytes forwarded, both directions.
    pub bytes: AtomicU64,
}

/// The handle that changes a running proxy's behaviour; cheap to clone.
#[derive(Debug, Clone)]
pub struct ProxyControl {
    state: Arc<watch::Sender<ProxyState>>,
    stats: Arc<ProxyStats>,
}

impl ProxyControl {
    pub fn state(&self) -> ProxyState {
        *self.state.borrow()
    }

    /// Partitions (refuse and cut) or heals.
    pub fn set_partitioned(&self, partitioned: bool) {
        self.state.send_modify(|s| s.partitioned = partitioned);
    }

    /// Sets the delay of chunks read from now on.
    pub fn set_delay(&self, delay: Option<Delay>) {
        self.state.send_modify(|s| s.delay = delay);
    }

    /// Back to a transparent forwarder.
    pub fn heal(&self) {
        self.state.send_replace(ProxyState::default());
    }

    pub fn stats(&self) -> &ProxyStats {
        &self.stats
    }
}

/// A running proxy from `addr` to a target; stops when dropped.
#[derive(Debug)]
pub struct FaultProxy {
    addr: SocketAddr,
    target: SocketAddr,
    control: ProxyControl,
    task: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    /// Forwards connections accepted on `listener` to `target`. `seed` drives the jitter.
    pub fn start(listener: TcpListener, target: SocketAddr, seed: u64) -> std::io::Result<Self> {
        let addr = listener.local_addr()?;
        let (state, _) = watch::channel(ProxyState::default());
        let control = ProxyControl {
            state: Arc::new(state),
            stats: Arc::new(ProxyStats::default()),
        };
        let task = tokio::spawn(accept_loop(listener, target, control.clone(), seed));
        Ok(FaultProxy {
            addr,
            target,
            control,
            task,
        })
    }

    /// Binds `127.0.0.1:0` and forwards to `target`.
    pub async fn bind(target: SocketAddr, seed: u64) -> std::io::Result<Self> {
        let listener = TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0)).await?;
        Self::start(listener, target, seed)
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn target(&self) -> SocketAddr {
        self.target
    }

    pub fn control(&self) -> &ProxyControl {
        &self.control
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
        // Open connections watch the state; a partition cuts them.
        self.control.set_partitioned(true);
    }
}

async fn accept_loop(listener: TcpListener, target: SocketAddr, control: ProxyControl, seed: u64) {
    let mut conn_seed = fastrand::Rng::with_seed(seed);
    loop {
        let (client, _) = match listener.accept().await {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "proxy accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if control.state().partitioned {
            control.stats.refused.fetch_add(1, Ordering::Relaxed);
            drop(client);
            continue;
        }
        let control = control.clone();
        let seed = conn_seed.u64(..);
        tokio::spawn(async move {
            let server =
                match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(target)).await {
                    Ok(Ok(s)) => s,
                    _ => {
                        control.stats.target_down.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                };
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            control.stats.forwarded.fetch_add(1, Ordering::Relaxed);
            forward(client, server, control, seed).await;
        });
    }
}

/// Pumps both directions until both have ended, or until a partition cuts them.
async fn forward(client: TcpStream, server: TcpStream, control: ProxyControl, seed: u64) {
    let mut partition = control.state.subscribe();
    if partition.borrow_and_update().partitioned {
        control.stats.cut.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let up = pump(
        client_read,
        server_write,
        control.clone(),
        fastrand::Rng::with_seed(seed),
    );
    let down = pump(
        server_read,
        client_write,
        control.clone(),
        fastrand::Rng::with_seed(seed ^ 0x9e37_79b9_7f4a_7c15),
    );
    tokio::select! {
        _ = async { tokio::join!(up, down) } => {}
        _ = partition.wait_for(|s| s.partitioned) => {
            control.stats.cut.fetch_add(1, Ordering::Relaxed);
        }
    }
    // Dropping the halves closes both sockets.
}

/// One direction: read chunks, stamp them with their due time, write them in order.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    control: ProxyControl,
    mut rng: fastrand::Rng,
) {
    // `None` marks end of stream: pass the half-close on.
    let (tx, mut rx) = mpsc::channel::<Option<(Instant, Vec<u8>)>>(QUEUED_CHUNKS);
    let state = control.state.clone();
    let reader = async move {
        loop {
            let mut buf = vec![0u8; CHUNK];
            let n = match from.read(&mut buf).await {
                Ok(0) | Err(_) => {
                    let _ = tx.send(None).await;
                    return;
                }
                Ok(n) => n,
            };
            buf.truncate(n);
            let delay = state.borrow().delay;
            let due = Instant::now() + delay.map(|d| d.draw(&mut rng)).unwrap_or_default();
            if tx.send(Some((due, buf))).await.is_err() {
                return;
            }
        }
    };
    let writer = async move {
        while let Some(Some((due, chunk))) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            if to.write_all(&chunk).await.is_err() {
                return;
            }
            control
                .stats
                .bytes
                .fetch_add(chunk.len() as u64, Ordering::Relaxed);
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(reader, writer);
}
