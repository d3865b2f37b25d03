//! `lienthong dev`: a fresh PKI, configuration files and a running node serving several
//! agencies, in one command; `--smoke` also runs a scripted exchange and checks it.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use bytes::Bytes;
use clap::Args;
use lienthong_client::{Accepted, ClientProfile, DmsClient, Incoming, OutgoingAttachment, Tracked};
use lienthong_core::{AgencyCode, Priority, StatusCode, StatusNotice, TransportEventKind};
use lienthong_devnet::{DEV_AGENCIES, DEV_NODE, DevNetwork, RunningNode, generate};
use lienthong_proto::pb;
use tokio_stream::StreamExt;

#[derive(Args, Debug)]
pub struct DevArgs {
    /// Directory for the PKI, configs and data; a temporary directory (removed on exit)
    /// by default.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Port to listen on (0: any free port).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Run a scripted exchange, print each check, and exit 0 only if all passed.
    #[arg(long)]
    pub smoke: bool,
    /// Shape of the network: 1 — one node serving several agencies; 2 — national
    /// gateway, provinces, communes (local government since 2025); 3 — national gateway,
    /// provinces, districts, communes. With 2 or 3, `--port` is the first of consecutive
    /// ports.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u8).range(1..=3))]
    pub tiers: u8,
    /// Make the national gateway a bridge to this VXP platform (the national
    /// document-exchange platform, or a stand-in): its base URL, `https://…`.
    #[arg(long, value_name = "URL", requires_all = ["vxp_system_id", "vxp_secret_file", "vxp_upstream_ca"])]
    pub vxp_upstream: Option<String>,
    /// With `--vxp-upstream`: the system id the platform knows this network by.
    #[arg(long, value_name = "ID", requires = "vxp_upstream")]
    pub vxp_system_id: Option<String>,
    /// With `--vxp-upstream`: a file holding the platform secret as plain text (copied
    /// into the dev directory, readable by you only).
    #[arg(long, value_name = "FILE", requires = "vxp_upstream")]
    pub vxp_secret_file: Option<PathBuf>,
    /// With `--vxp-upstream`: PEM certificates to trust for the platform's HTTPS.
    #[arg(long, value_name = "FILE", requires = "vxp_upstream")]
    pub vxp_upstream_ca: Option<PathBuf>,
}

impl DevArgs {
    /// The bridge the flags ask for, its secret copied to `dir` with mode 0600.
    fn upstream(
        &self,
        dir: &Path,
    ) -> anyhow::Result<Option<lienthong_node::config::UpstreamConfig>> {
        let (Some(endpoint), Some(system_id), Some(secret), Some(ca)) = (
            &self.vxp_upstream,
            &self.vxp_system_id,
            &self.vxp_secret_file,
            &self.vxp_upstream_ca,
        ) else {
            return Ok(None);
        };
        if self.tiers < 2 {
            return Err(crate::UsageError(
                "--vxp-upstream needs a network (--tiers 2 or 3): its national gateway is the bridge"
                    .into(),
            )
            .into());
        }
        let text = std::fs::read_to_string(secret)
            .with_context(|| format!("reading --vxp-secret-file {}", secret.display()))?;
        std::fs::create_dir_all(dir)?;
        let copy = dir.join("vxp-upstream.secret");
        {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&copy)?;
            f.write_all(text.as_bytes())?;
        }
        let ca = std::path::absolute(ca)?;
        anyhow::ensure!(
            ca.exists(),
            "--vxp-upstream-ca {} does not exist",
            ca.display()
        );
        Ok(Some(lienthong_node::config::UpstreamConfig {
            endpoint: endpoint.clone(),
            system_id: system_id.clone(),
            secret_file: copy,
            ca,
            poll_ms: lienthong_node::config::DEFAULT_UPSTREAM_POLL_MS,
            agencies_refresh_ms: 600_000,
            state_dir: None,
        }))
    }
}

pub async fn run(args: DevArgs) -> anyhow::Result<ExitCode> {
    let temp;
    let dir = match &args.dir {
        Some(d) => {
            if d.join("ca").exists() {
                return Err(crate::UsageError(format!(
                    "{} already holds a dev network; remove it or choose another --dir",
                    d.display()
                ))
                .into());
            }
            d.clone()
        }
        None => {
            temp = tempfile::Builder::new()
                .prefix("lienthong-dev-")
                .tempdir()?;
            temp.path().to_path_buf()
        }
    };
    let upstream = args.upstream(&dir)?;
    if args.tiers > 1 {
        return crate::dev_network::run(&dir, args.tiers, args.port, args.smoke, upstream).await;
    }
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, args.port))
        .await
        .with_context(|| format!("cannot listen on 127.0.0.1:{}", args.port))?;
    let net = generate(&dir, listener.local_addr()?, &DEV_AGENCIES)?;
    let node = RunningNode::start(&net.config, listener).await?;
    print_banner(&net, node.addr);
    print_vxp_lines(
        &net.dir,
        net.profiles.iter().map(|(a, _)| (a, node.vxp_addr)),
    );

    if args.smoke {
        let result = smoke(&net).await;
        node.stop().await?;
        return match result {
            Ok(()) => {
                println!("smoke: all checks passed");
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => {
                println!("smoke: FAILED: {e:#}");
                Ok(ExitCode::FAILURE)
            }
        };
    }
    println!("\nrunning; Ctrl-C to stop");
    crate::shutdown_signal().await;
    node.stop().await?;
    Ok(ExitCode::SUCCESS)
}

fn print_banner(net: &DevNetwork, addr: SocketAddr) {
    let p = |i: usize| net.profiles[i].1.display().to_string();
    let code = |i: usize| net.profiles[i].0.to_string();
    println!("lienthong dev network");
    println!("  directory : {}", net.dir.display());
    println!(
        "  node {DEV_NODE:<5}: https://{addr}  (config {})",
        net.config_path.display()
    );
    for (i, (c, name)) in DEV_AGENCIES.iter().enumerate() {
        println!("  agency    : {c}  {name}  profile {}", p(i));
    }
    let endpoint = format!("https://{addr}");
    print_grpc_lines(
        net.profiles
            .iter()
            .map(|(code, profile)| (code, endpoint.as_str(), DEV_NODE, profile.as_path())),
    );
    println!(
        "\nTry it (lienthong is target/release/lienthong, or prefix `cargo run --release --`):"
    );
    println!("  # watch the inbox of {} and save what arrives", code(1));
    println!(
        "  lienthong inbox -p {} --watch --save {}/received --ack",
        p(1),
        net.dir.display()
    );
    println!(
        "  # send a signed document with an attachment from {} to {}",
        code(0),
        code(1)
    );
    println!(
        "  lienthong send -p {} --to {} --subject \"Về việc thử nghiệm\" --file README.md",
        p(0),
        code(1)
    );
    println!("  # answer with status 03 (accepted and registered), then track it");
    println!("  lienthong status -p {} --document <ID> --code 03", p(1));
    println!("  lienthong track -p {} <ID>", p(0));
    println!("  # operator view");
    println!(
        "  lienthong admin queues -p {}",
        net.operator_profile.display()
    );
}

/// Prints, for each agency, one line a script can read: `grpc <agency code> <endpoint
/// URL> <home node id> <client profile file>` (the profile names the CA, certificate and
/// key files a DMS connects with).
pub(crate) fn print_grpc_lines<'a>(
    agencies: impl IntoIterator<Item = (&'a AgencyCode, &'a str, &'a str, &'a Path)>,
) {
    println!();
    for (code, endpoint, node, profile) in agencies {
        println!("grpc {code} {endpoint} {node} {}", profile.display());
    }
}

/// One line per agency a DMS built against the national platform's SDK can use, for
/// scripts: `vxp <agency code> <endpoint URL> <system id> <secret file>`.
pub(crate) fn print_vxp_lines<'a>(
    dir: &Path,
    agencies: impl Iterator<Item = (&'a AgencyCode, Option<std::net::SocketAddr>)>,
) {
    let mut header = false;
    for (agency, addr) in agencies {
        let Some(addr) = addr else { continue };
        if !header {
            println!(
                "\nVXP gateway (the national platform's SDK protocol), one system per agency:"
            );
            header = true;
        }
        println!(
            "vxp {agency} https://{addr} {agency} {}",
            lienthong_devnet::vxp_secret_file(dir, agency).display()
        );
    }
}

/// Prints one smoke-test check and fails the smoke test if it did not hold.
pub(crate) fn check(what: &str, ok: bool) -> anyhow::Result<()> {
    if ok {
        println!("  ok   {what}");
        Ok(())
    } else {
        println!("  FAIL {what}");
        bail!("{what}")
    }
}

/// The scripted exchange: a signed document with an attachment goes from the province
/// office to a department, arrives on its subscription, verifies end to end, is
/// acknowledged; status 03 goes back; `track` shows every step.
pub async fn smoke(net: &DevNetwork) -> anyhow::Result<()> {
    println!("\nsmoke test");
    let sender = DmsClient::from_profile(&ClientProfile::load(&net.profiles[0].1)?)?;
    let receiver = DmsClient::from_profile(&ClientProfile::load(&net.profiles[1].1)?)?;

    // The receiver subscribes first, as a DMS would.
    let mut inbox = receiver.subscribe(0).await.context("subscribe")?;

    let content: Bytes = (0..256 * 1024u32)
        .map(|i| (i % 251) as u8)
        .collect::<Vec<_>>()
        .into();
    let attachment = OutgoingAttachment {
        name: "quyet-dinh.pdf".into(),
        content_type: "application/pdf".into(),
        bytes: content.clone(),
    };
    let mut document = sender.new_document(
        vec![receiver.agency().clone()],
        "Về việc triển khai trục liên thông",
    );
    document.header.code.number = "123".into();
    document.header.code.notation = "UBND-VP".into();
    document.header.other.priority = Priority::Urgent;
    let Accepted { receipt, duplicate } = sender
        .send(&mut document, std::slice::from_ref(&attachment))
        .await
        .context("send")?;
    check(
        &format!(
            "document {} accepted, receipt signed by node {}",
            document.id, receipt.node
        ),
        !duplicate && receipt.document_id == document.id,
    )?;

    let entry = tokio::time::timeout(Duration::from_secs(10), inbox.next())
        .await
        .context("no inbox entry within 10 s")?
        .context("subscription ended")??;
    check(
        "document arrived on the recipient's subscription",
        entry.id == document.id.as_str(),
    )?;

    let Incoming::Document(got) = receiver.fetch(&entry.id).await.context("fetch")? else {
        bail!("fetched a status notice instead of the document");
    };
    check(
        "fetched document verified: sender signature, attachment SHA-256, node receipt",
        got.document.id == document.id,
    )?;
    check(
        "attachment bytes identical to what was sent",
        got.contents.len() == 1 && got.contents[0] == content,
    )?;
    receiver.ack(&entry.id).await.context("ack")?;
    check(
        "recipient acknowledged",
        receiver.list_inbox(0, 100).await?.is_empty(),
    )?;

    let Accepted {
        receipt: again,
        duplicate: dup,
    } = sender
        .send(&mut document.clone(), &[attachment])
        .await
        .context("re-send")?;
    check(
        "re-sending the same id returns the original receipt",
        dup && again.accepted_at == receipt.accepted_at,
    )?;

    let mut notice = StatusNotice::new(
        receiver.agency().clone(),
        sender.agency().clone(),
        &document.id,
        StatusCode::Accepted,
    );
    notice.description = "Văn thư: đã vào sổ văn bản đến".into();
    receiver
        .send_status(notice.clone())
        .await
        .context("send status")?;
    let entries = sender.list_inbox(0, 100).await?;
    let status_entry = entries
        .iter()
        .find(|e| e.id == notice.id.as_str())
        .context("status 03 not in the sender's inbox")?;
    let Incoming::Status {
        notice: got_notice, ..
    } = sender.fetch(&status_entry.id).await?
    else {
        bail!("the status entry is not a status notice");
    };
    check(
        "status 03 routed back to the sender and verified",
        got_notice.code == StatusCode::Accepted
            && got_notice.response_for.document_id == document.id.as_str(),
    )?;
    sender.ack(&status_entry.id).await?;

    let Tracked {
        events, statuses, ..
    } = sender.track(document.id.as_str()).await.context("track")?;
    print!(
        "{}",
        crate::dms::format_track(document.id.as_str(), &events, &statuses)
    );
    let kinds: Vec<TransportEventKind> = events.iter().map(|e| e.kind).collect();
    ensure!(!events.is_empty(), "track returned no events");
    check(
        "track shows accepted, delivered, fetched, acknowledged and status 03",
        [
            TransportEventKind::Accepted,
            TransportEventKind::Delivered,
            TransportEventKind::Fetched,
            TransportEventKind::Acknowledged,
            TransportEventKind::StatusReceived,
        ]
        .iter()
        .all(|k| kinds.contains(k))
            && statuses.iter().any(|s| s.code == StatusCode::Accepted),
    )?;

    let mut admin = ClientProfile::load(&net.operator_profile)?.admin()?;
    let health = admin.health(pb::HealthRequest {}).await?.into_inner();
    check(
        "operator health: store ok",
        health.store_ok && health.node == DEV_NODE,
    )?;
    let queues = admin.queues(pb::QueuesRequest {}).await?.into_inner();
    check(
        "operator queues: every inbox drained",
        queues.inboxes.len() == DEV_AGENCIES.len() && queues.inboxes.iter().all(|q| q.depth == 0),
    )?;
    Ok(())
}
