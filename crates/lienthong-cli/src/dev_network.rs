//! `lienthong dev --tiers 2|3`: a whole network in one process — the national gateway, two
//! provinces, their districts (3 tiers) and communes, each with agencies — and its smoke
//! test.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use lienthong_client::{DmsClient, Incoming, OutgoingAttachment, Tracked};
use lienthong_core::directory::DirectoryIndex;
use lienthong_core::{AgencyCode, NodeId, StatusCode, StatusNotice, TransportEventKind};
use lienthong_devnet::{Network, RunningNetwork, Shape};
use lienthong_node::config::UpstreamConfig;

/// The national gateway of a generated network: the bridge when there is one.
const NATIONAL: &str = "VN";

use crate::dev::check;
use crate::dms::format_track;

pub async fn run(
    dir: &Path,
    tiers: u8,
    port: u16,
    smoke_only: bool,
    upstream: Option<UpstreamConfig>,
) -> anyhow::Result<ExitCode> {
    let bridge = upstream.as_ref().map(|u| u.endpoint.clone());
    let net = RunningNetwork::start_with_directory(
        dir,
        Shape::new(tiers),
        port,
        1000,
        |config| {
            if config.network.as_ref().is_some_and(|n| n.parent.is_none()) {
                config.vxp_upstream = upstream.clone();
            }
        },
        |source| match &bridge {
            Some(_) => lienthong_devnet::with_bridge(&source, NATIONAL, &[]),
            None => source,
        },
    )
    .await?;
    print_banner(&net.net);
    if let Some(url) = &bridge {
        println!("bridge {NATIONAL} {url}");
    }
    crate::dev::print_vxp_lines(
        &net.net.dir,
        net.net.nodes.iter().enumerate().flat_map(|(i, node)| {
            let addr = net.vxp_addr(i);
            node.agencies.iter().map(move |(a, _, _)| (a, addr))
        }),
    );
    if smoke_only {
        let result = smoke(&net).await;
        net.stop().await?;
        return Ok(match result {
            Ok(()) => {
                println!("smoke: all checks passed");
                ExitCode::SUCCESS
            }
            Err(e) => {
                println!("smoke: FAILED: {e:#}");
                ExitCode::FAILURE
            }
        });
    }
    println!("\nrunning; Ctrl-C to stop");
    crate::shutdown_signal().await;
    net.stop().await?;
    Ok(ExitCode::SUCCESS)
}

fn print_banner(net: &Network) {
    println!(
        "lienthong dev network, {} tiers, {} nodes",
        net.tiers,
        net.nodes.len()
    );
    println!("  directory : {}", net.dir.display());
    for node in &net.nodes {
        let depth = match node.level {
            "national" => 0,
            "province" => 1,
            "district" => 2,
            _ => net.tiers as usize - 1,
        };
        println!(
            "  {:indent$}{:<10} {:<9} https://{}",
            "",
            node.id.as_str(),
            node.level,
            node.config.listen,
            indent = depth * 2
        );
        for (code, name, _) in &node.agencies {
            println!(
                "  {:indent$}  agency {code}  {name}",
                "",
                indent = depth * 2
            );
        }
    }
    let endpoints_of: Vec<String> = net
        .nodes
        .iter()
        .map(|n| format!("https://{}", n.config.listen))
        .collect();
    crate::dev::print_grpc_lines(net.nodes.iter().zip(&endpoints_of).flat_map(
        |(node, endpoint)| {
            node.agencies.iter().map(move |(code, _, profile)| {
                (code, endpoint.as_str(), node.id.as_str(), profile.as_path())
            })
        },
    ));
    let (from, to) = endpoints(net);
    println!(
        "\nProfiles are in {}/profiles/<agency code>.toml. Try:",
        net.dir.display()
    );
    println!(
        "  lienthong inbox -p {} --watch",
        net.profile(to.as_str()).display()
    );
    println!(
        "  lienthong send -p {} --to {to} --subject \"Liên thông liên tỉnh\" --file README.md",
        net.profile(from.as_str()).display()
    );
    println!(
        "  lienthong track -p {} <ID>",
        net.profile(from.as_str()).display()
    );
    println!(
        "  lienthong admin queues -p {}/profiles/operator-VN.toml",
        net.dir.display()
    );
}

/// A commune of the first province and a commune of the second.
fn endpoints(net: &Network) -> (AgencyCode, AgencyCode) {
    let commune = |province: &str| {
        net.nodes
            .iter()
            .filter(|n| n.level == "commune" && n.id.as_str().starts_with(province))
            .flat_map(|n| n.agencies.iter().map(|(c, _, _)| c.clone()))
            .next()
            .expect("every province has communes")
    };
    (commune("H41"), commune("H42-"))
}

/// The expected hop path from `from`'s home node to `to`'s, from the directory.
fn expected_path(net: &Network, from: &AgencyCode, to: &AgencyCode) -> anyhow::Result<Vec<NodeId>> {
    let national = &net.nodes[0];
    let source = national
        .config
        .network
        .as_ref()
        .and_then(|n| n.directory_file.as_ref())
        .context("the national gateway has no directory file")?;
    let index = DirectoryIndex::new(lienthong_node::directory::load_source(source)?)?;
    let home = |a: &AgencyCode| index.home_of(a).cloned().context("agency not in directory");
    Ok(index.path(&home(from)?, &home(to)?))
}

async fn wait_inbox(client: &DmsClient, id: &str) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if client.list_inbox(0, 1000).await?.iter().any(|e| e.id == id) {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            bail!("{id} did not reach {} within 20 s", client.agency());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn smoke(net: &RunningNetwork) -> anyhow::Result<()> {
    println!("\nsmoke test");
    let (from, to) = endpoints(&net.net);
    let a = net.client(from.as_str())?;
    let b = net.client(to.as_str())?;
    let path = expected_path(&net.net, &from, &to)?;
    let path_text = path
        .iter()
        .map(|n| n.as_str())
        .collect::<Vec<_>>()
        .join(" → ");

    // 1. Commune to commune of the other province, with an attachment.
    let content: bytes::Bytes = (0..64 * 1024u32)
        .map(|i| (i % 253) as u8)
        .collect::<Vec<_>>()
        .into();
    let mut d = a.new_document(vec![to.clone()], "Văn bản liên thông giữa hai tỉnh");
    a.send(
        &mut d,
        &[OutgoingAttachment {
            name: "van-ban.pdf".into(),
            content_type: "application/pdf".into(),
            bytes: content.clone(),
        }],
    )
    .await
    .context("send")?;
    check(&format!("{from} sent {} to {to}", d.id), true)?;
    wait_inbox(&b, d.id.as_str()).await?;
    let Incoming::Document(got) = b.fetch(d.id.as_str()).await? else {
        bail!("expected a document");
    };
    check(
        "arrived and verified: sender signature, attachment SHA-256, origin receipt",
        got.contents == vec![content],
    )?;
    let trace: Vec<NodeId> = got.document.trace.iter().map(|t| t.node.clone()).collect();
    check(&format!("hop trace is {path_text}"), trace == path)?;
    b.ack(d.id.as_str()).await?;

    // 2. A status back to the sender.
    let notice = StatusNotice::new(to.clone(), from.clone(), &d.id, StatusCode::Accepted);
    b.send_status(notice.clone()).await.context("send status")?;
    wait_inbox(&a, notice.id.as_str()).await?;
    let Incoming::Status { notice: back, .. } = a.fetch(notice.id.as_str()).await? else {
        bail!("expected a status notice");
    };
    check(
        "status 03 came back to the sender, verified",
        back.code == StatusCode::Accepted,
    )?;
    a.ack(notice.id.as_str()).await?;

    // 3. Every hop reported back to the sender.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let events = loop {
        let Tracked {
            events, statuses, ..
        } = a.track(d.id.as_str()).await?;
        let forwarded = events
            .iter()
            .filter(|e| e.kind == TransportEventKind::Forwarded)
            .count();
        let has = |k| events.iter().any(|e| e.kind == k);
        if forwarded == path.len()
            && has(TransportEventKind::Delivered)
            && has(TransportEventKind::Fetched)
            && has(TransportEventKind::StatusReceived)
        {
            print!("{}", format_track(d.id.as_str(), &events, &statuses));
            break events;
        }
        if tokio::time::Instant::now() > deadline {
            print!("{}", format_track(d.id.as_str(), &events, &statuses));
            bail!("the sender's track is incomplete after 20 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let forwarders: Vec<&str> = events
        .iter()
        .filter(|e| e.kind == TransportEventKind::Forwarded)
        .map(|e| e.node.as_str())
        .collect();
    check(
        "track shows a forwarded event from every hop, delivery, fetch and status 03",
        path[..path.len() - 1]
            .iter()
            .all(|n| forwarders.contains(&n.as_str())),
    )?;

    // 4. The province office fans out to all its communes.
    let province = AgencyCode::parse("000.00.00.H41")?;
    let communes: Vec<AgencyCode> = net
        .net
        .nodes
        .iter()
        .filter(|n| n.level == "commune" && n.id.as_str().starts_with("H41"))
        .flat_map(|n| n.agencies.iter().map(|(c, _, _)| c.clone()))
        .collect();
    let p = net.client(province.as_str())?;
    let mut notice_all = p.new_document(communes.clone(), "Thông báo gửi tất cả các xã");
    p.send(&mut notice_all, &[]).await.context("fan-out send")?;
    for c in &communes {
        let client = net.client(c.as_str())?;
        wait_inbox(&client, notice_all.id.as_str()).await?;
        let Incoming::Document(got) = client.fetch(notice_all.id.as_str()).await? else {
            bail!("expected a document");
        };
        let trace: Vec<NodeId> = got.document.trace.iter().map(|t| t.node.clone()).collect();
        let expected = expected_path(&net.net, &province, c)?;
        check(
            &format!(
                "fan-out reached {c} once, verified, along {}",
                expected
                    .iter()
                    .map(|n| n.as_str())
                    .collect::<Vec<_>>()
                    .join(" → ")
            ),
            trace == expected && client.list_inbox(0, 100).await?.len() == 1,
        )?;
    }
    Ok(())
}
