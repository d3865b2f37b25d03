//! DMS-side and operator commands: thin wrappers over `lienthong_node::client`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use lienthong_core::{AgencyCode, DocumentId, Priority, StatusCode, StatusNotice, TransportEvent};
use lienthong_node::client::{AttachmentSource, ClientProfile, DmsClient, Incoming};
use lienthong_proto::pb;
use tokio_stream::StreamExt;

use crate::UsageError;

/// Options every DMS command takes.
#[derive(Args, Debug, Clone)]
pub struct ProfileArg {
    /// Client profile (TOML) of the agency: endpoint, node id, CA, certificate and key.
    /// `lienthong dev` writes one per agency.
    #[arg(long, short = 'p', env = "LIENTHONG_PROFILE")]
    pub profile: PathBuf,
}

impl ProfileArg {
    pub fn client(&self) -> anyhow::Result<DmsClient> {
        let profile = ClientProfile::load(&self.profile)?;
        Ok(DmsClient::from_profile(&profile)?)
    }
}

#[derive(Args, Debug)]
pub struct SendArgs {
    #[command(flatten)]
    pub profile: ProfileArg,
    /// Recipient agency code; repeat for several (e.g. --to 000.00.14.H41 --to 000.00.20.H41).
    #[arg(long, required = true)]
    pub to: Vec<String>,
    /// Trích yếu — the document's abstract.
    #[arg(long, default_value = "")]
    pub subject: String,
    /// A file to attach; repeat for several. Files of 8 MiB and more are streamed to the
    /// node in chunks first (resuming after errors), so any size works.
    #[arg(long = "file", short = 'f')]
    pub files: Vec<PathBuf>,
    /// 0 thường, 1 khẩn, 2 thượng khẩn, 3 hỏa tốc.
    #[arg(long, default_value_t = 0)]
    pub priority: u8,
    /// Số (code number).
    #[arg(long, default_value = "")]
    pub number: String,
    /// Ký hiệu (code notation), e.g. UBND-VP.
    #[arg(long, default_value = "")]
    pub notation: String,
    /// Document id; a fresh UUID by default. Re-sending with the same id is safe.
    #[arg(long)]
    pub id: Option<String>,
}

pub async fn send(args: SendArgs) -> anyhow::Result<ExitCode> {
    let client = args.profile.client()?;
    let to = args
        .to
        .iter()
        .map(|t| AgencyCode::parse(t))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| UsageError(e.to_string()))?;
    let mut document = client.new_document(to, &args.subject);
    if let Some(id) = &args.id {
        document.id = DocumentId::parse(id).map_err(|e| UsageError(e.to_string()))?;
    }
    document.header.other.priority =
        Priority::from_u8(args.priority).map_err(|e| UsageError(e.to_string()))?;
    document.header.code.number = args.number.clone();
    document.header.code.notation = args.notation.clone();
    // Files of 8 MiB and more are streamed in chunks (resuming after errors) before the
    // document is sent; smaller ones travel inline.
    let attachments = args
        .files
        .iter()
        .map(|f| AttachmentSource::from_path(f))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| UsageError(e.to_string()))?;
    let (receipt, duplicate, uploads) = client.send_sources(&mut document, &attachments).await?;
    for (file, report) in attachments
        .iter()
        .filter_map(|a| match a {
            AttachmentSource::File(f) => Some(f),
            AttachmentSource::Inline(_) => None,
        })
        .zip(&uploads)
    {
        println!(
            "streamed {} ({} bytes): {} sent, resumed from byte {}",
            file.path.display(),
            file.size,
            report.bytes_sent,
            report.resumed_from
        );
    }
    println!(
        "{} {} accepted by node {} at {} (receipt verified{})",
        if duplicate { "re-sent" } else { "sent" },
        document.id,
        receipt.node,
        format_time(receipt.accepted_at),
        if duplicate { ", original receipt" } else { "" }
    );
    println!("{}", document.id);
    Ok(ExitCode::SUCCESS)
}

#[derive(Args, Debug)]
pub struct InboxArgs {
    #[command(flatten)]
    pub profile: ProfileArg,
    /// Keep the subscription open and print entries as they arrive.
    #[arg(long)]
    pub watch: bool,
    /// The last cursor seen: listing shows only newer entries; a subscription (--watch)
    /// still resends every unacknowledged entry, flagging those at or before it.
    #[arg(long, default_value_t = 0)]
    pub after: u64,
    /// Fetch each entry, verify it end to end, and save it under this directory
    /// (<dir>/<id>/ with the attachments and a summary).
    #[arg(long)]
    pub save: Option<PathBuf>,
    /// Acknowledge each entry after it was saved (requires --save).
    #[arg(long, requires = "save")]
    pub ack: bool,
}

pub async fn inbox(args: InboxArgs) -> anyhow::Result<ExitCode> {
    let client = args.profile.client()?;
    let handle = |entry: pb::InboxEntry| {
        let client = client.clone();
        let save = args.save.clone();
        let ack = args.ack;
        async move {
            print_entry(&entry);
            if let Some(dir) = save {
                // Large attachments stream straight to their files (resuming after errors).
                let out = dir.join(sanitize(&entry.id));
                std::fs::create_dir_all(&out)
                    .with_context(|| format!("creating {}", out.display()))?;
                let dest = |a: &lienthong_core::Attachment| out.join(sanitize(&a.name));
                let incoming = client.fetch_to_files(&entry.id, &dest).await?;
                let path = save_incoming(&dir, &incoming)?;
                println!("    saved and verified: {}", path.display());
                if ack {
                    client.ack(&entry.id).await?;
                    println!("    acknowledged");
                }
            }
            anyhow::Ok(())
        }
    };
    if args.watch {
        let mut stream = client
            .rpc()
            .subscribe(pb::SubscribeRequest {
                after_cursor: args.after,
            })
            .await?
            .into_inner();
        eprintln!(
            "watching the inbox of {} (Ctrl-C to stop)…",
            client.agency()
        );
        loop {
            tokio::select! {
                next = stream.next() => match next {
                    Some(entry) => handle(entry?).await?,
                    None => break,
                },
                _ = crate::shutdown_signal() => break,
            }
        }
    } else {
        let entries = client.list_inbox(args.after, 1000).await?;
        if entries.is_empty() {
            println!("inbox of {} is empty", client.agency());
        }
        for entry in entries {
            handle(entry).await?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_entry(e: &pb::InboxEntry) {
    let kind = if e.kind == pb::MessageKind::Status as i32 {
        "status  "
    } else {
        "document"
    };
    println!(
        "[{:>6}] {kind} {}  from {}  priority {}  {}",
        e.cursor, e.id, e.from, e.priority, e.subject
    );
}

/// Writes a verified message under `dir/<id>/`; returns that directory.
pub fn save_incoming(dir: &Path, incoming: &Incoming) -> anyhow::Result<PathBuf> {
    match incoming {
        Incoming::Document(v) => {
            let out = dir.join(sanitize(v.document.id.as_str()));
            std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
            for (a, bytes) in v.document.attachments.iter().zip(&v.contents) {
                if bytes.is_empty() && a.size > 0 {
                    continue; // streamed to its file by `fetch_to_files`
                }
                std::fs::write(out.join(sanitize(&a.name)), bytes)?;
            }
            let summary = format!(
                "id = {:?}\nfrom = {:?}\nsubject = {:?}\nattachments = {}\nsignature = \"verified\"\nreceipt_node = {:?}\n",
                v.document.id.as_str(),
                v.document
                    .sender()
                    .map(|s| s.to_string())
                    .unwrap_or_default(),
                v.document.header.subject,
                v.document.attachments.len(),
                v.receipt.node.as_str(),
            );
            std::fs::write(out.join("document.toml"), summary)?;
            Ok(out)
        }
        Incoming::Status { notice, .. } => {
            let out = dir.join(sanitize(notice.id.as_str()));
            std::fs::create_dir_all(&out)?;
            let summary = format!(
                "id = {:?}\nfrom = {:?}\ndocument = {:?}\nstatus = {:?}\ndescription = {:?}\nsignature = \"verified\"\n",
                notice.id.as_str(),
                notice.sender().map(|s| s.to_string()).unwrap_or_default(),
                notice.response_for.document_id,
                notice.code.code(),
                notice.description,
            );
            std::fs::write(out.join("status.toml"), summary)?;
            Ok(out)
        }
    }
}

/// A file-system-safe name: ids may contain `/` and `,`.
fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[derive(Args, Debug)]
pub struct StatusArgs {
    #[command(flatten)]
    pub profile: ProfileArg,
    /// The document the status is about.
    #[arg(long)]
    pub document: String,
    /// 01 arrived, 02 rejected, 03 accepted, 04 assigned, 05 processing, 06 done,
    /// 13 withdraw request, 15 change agreed, 16 change refused.
    #[arg(long)]
    pub code: String,
    /// Description; the reason for 02, 13 and 16.
    #[arg(long, default_value = "")]
    pub description: String,
    /// The agency the notice is for; by default the document's sender.
    #[arg(long)]
    pub to: Option<String>,
}

pub async fn status(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let client = args.profile.client()?;
    let code = StatusCode::parse(&args.code).map_err(|e| UsageError(e.to_string()))?;
    let document = DocumentId::parse(&args.document).map_err(|e| UsageError(e.to_string()))?;
    let to = match &args.to {
        Some(to) => AgencyCode::parse(to).map_err(|e| UsageError(e.to_string()))?,
        None => match client.fetch(document.as_str()).await? {
            Incoming::Document(v) => v.document.sender()?.clone(),
            Incoming::Status { .. } => {
                return Err(
                    UsageError(format!("{document} is a status notice, not a document")).into(),
                );
            }
        },
    };
    let mut notice = StatusNotice::new(client.agency().clone(), to.clone(), &document, code);
    notice.description = args.description.clone();
    let (receipt, _) = client.send_status(notice.clone()).await?;
    println!(
        "status {code} for {document} sent to {to}; accepted by node {} at {}",
        receipt.node,
        format_time(receipt.accepted_at)
    );
    Ok(ExitCode::SUCCESS)
}

#[derive(Args, Debug)]
pub struct TrackArgs {
    #[command(flatten)]
    pub profile: ProfileArg,
    /// The document id.
    pub id: String,
}

pub async fn track(args: TrackArgs) -> anyhow::Result<ExitCode> {
    let client = args.profile.client()?;
    let (events, statuses) = client.track(&args.id).await?;
    print!("{}", format_track(&args.id, &events, &statuses));
    Ok(ExitCode::SUCCESS)
}

/// The text `track` prints.
pub fn format_track(id: &str, events: &[TransportEvent], statuses: &[StatusNotice]) -> String {
    let mut out = format!("document {id}\n");
    for e in events {
        let who = e
            .agency
            .as_ref()
            .map(|a| format!(" {a}"))
            .unwrap_or_default();
        let detail = if e.kind == lienthong_core::TransportEventKind::StatusReceived {
            statuses
                .iter()
                .find(|s| s.id.as_str() == e.detail)
                .map(|s| {
                    format!(
                        "status {}{}",
                        s.code,
                        if s.description.is_empty() {
                            String::new()
                        } else {
                            format!(": {}", s.description)
                        }
                    )
                })
                .unwrap_or_else(|| e.detail.clone())
        } else {
            e.detail.clone()
        };
        out.push_str(&format!(
            "  {}  {:<15} node {}{}  {}\n",
            format_time(e.at),
            e.kind.as_str(),
            e.node,
            who,
            detail
        ));
    }
    out
}

/// RFC 3339 UTC with milliseconds.
pub fn format_time(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    t.format(&time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    ))
    .unwrap_or_else(|_| ms.to_string())
}

#[derive(Subcommand, Debug)]
pub enum AdminCommand {
    /// Node health (an RPC, so it proves TLS and identity work).
    Health(ProfileArg),
    /// Depth of every inbox and outbox, dead letters, and the state of each link.
    Queues(ProfileArg),
    /// List dead letters: messages that cannot go further, with the reason.
    DeadLetters(DeadLetterArgs),
    /// Put dead letters back on their way, re-routed over the current directory.
    Retry(ActionArgs),
    /// Remove dead letters for good (the senders are told, with the reason).
    Drop(ActionArgs),
    /// Every operator action taken on the node, oldest first.
    Log(LogArgs),
}

/// Which dead letters; no option means all of them.
#[derive(Args, Debug, Clone)]
pub struct FilterArgs {
    /// Only the dead letter of this document or status id.
    #[arg(long)]
    pub document: Option<String>,
    /// Only those that were leaving through this neighbour.
    #[arg(long)]
    pub peer: Option<String>,
    /// Only those dead for at least this long: 90s, 30m, 12h, 7d.
    #[arg(long, value_parser = parse_age)]
    pub older_than: Option<std::time::Duration>,
    /// Only those whose reason contains this text.
    #[arg(long)]
    pub reason_contains: Option<String>,
}

impl FilterArgs {
    fn to_pb(&self, limit: u32) -> pb::DeadLetterFilter {
        pb::DeadLetterFilter {
            document_id: self.document.clone().unwrap_or_default(),
            peer: self.peer.clone().unwrap_or_default(),
            older_than_ms: self.older_than.map_or(0, |d| d.as_millis() as u64),
            reason_contains: self.reason_contains.clone().unwrap_or_default(),
            limit,
        }
    }

    fn is_empty(&self) -> bool {
        self.document.is_none()
            && self.peer.is_none()
            && self.older_than.is_none()
            && self.reason_contains.is_none()
    }
}

#[derive(Args, Debug)]
pub struct DeadLetterArgs {
    #[command(flatten)]
    pub profile: ProfileArg,
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Show at most this many.
    #[arg(long, default_value_t = 100)]
    pub limit: u32,
}

#[derive(Args, Debug)]
pub struct ActionArgs {
    #[command(flatten)]
    pub profile: ProfileArg,
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Act on every dead letter (needed when no filter is given).
    #[arg(long)]
    pub all: bool,
    /// Why; recorded in the operator log and sent to the senders. Required to drop.
    #[arg(long, default_value = "")]
    pub reason: String,
}

#[derive(Args, Debug)]
pub struct LogArgs {
    #[command(flatten)]
    pub profile: ProfileArg,
    /// Show actions after this sequence number.
    #[arg(long, default_value_t = 0)]
    pub after: u64,
}

/// `90s`, `30m`, `12h`, `7d`, or a number of seconds.
pub fn parse_age(s: &str) -> Result<std::time::Duration, String> {
    let s = s.trim();
    let (number, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{s:?} is not an age; write e.g. 90s, 30m, 12h or 7d"))?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        other => return Err(format!("unknown unit {other:?} in {s:?}; use s, m, h or d")),
    };
    Ok(std::time::Duration::from_secs(n * seconds))
}

fn print_action(verb: &str, result: pb::DeadLetterActionResult) -> ExitCode {
    for id in &result.document_ids {
        println!("{verb} {id}");
    }
    for why in &result.skipped {
        println!("skipped {why}");
    }
    println!(
        "{} {verb}, {} skipped",
        result.document_ids.len(),
        result.skipped.len()
    );
    if result.skipped.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

pub async fn admin(cmd: AdminCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        AdminCommand::Health(p) => {
            let mut admin = ClientProfile::load(&p.profile)?.admin()?;
            let h = admin.health(pb::HealthRequest {}).await?.into_inner();
            println!(
                "node {} version {} up {}s store {} agencies {}",
                h.node,
                h.version,
                h.uptime_seconds,
                if h.store_ok { "ok" } else { "FAILING" },
                h.agencies
            );
            Ok(if h.store_ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        AdminCommand::Queues(p) => {
            let mut admin = ClientProfile::load(&p.profile)?.admin()?;
            let q = admin.queues(pb::QueuesRequest {}).await?.into_inner();
            println!("inboxes:");
            for d in q.inboxes {
                println!("  {:<20} {}", d.name, d.depth);
            }
            println!("outboxes:");
            for d in &q.outboxes {
                println!("  {:<20} {}", d.name, d.depth);
            }
            if q.outboxes.is_empty() {
                println!("  (none)");
            }
            println!("dead letters: {}", q.dead_letters);
            println!("links:");
            for l in &q.links {
                let mut line = format!(
                    "  {:<20} {:<10} failures {}",
                    l.peer, l.state, l.consecutive_failures
                );
                if l.retry_at_unix_ms > 0 && l.state != "up" {
                    line.push_str(&format!(" next try {}", format_time(l.retry_at_unix_ms)));
                }
                if !l.last_error.is_empty() {
                    line.push_str(&format!(" last error: {}", l.last_error));
                }
                println!("{line}");
            }
            if q.links.is_empty() {
                println!("  (none used yet)");
            }
            Ok(ExitCode::SUCCESS)
        }
        AdminCommand::DeadLetters(a) => {
            let mut admin = ClientProfile::load(&a.profile.profile)?.admin()?;
            let list = admin
                .list_dead_letters(a.filter.to_pb(a.limit))
                .await?
                .into_inner()
                .dead_letters;
            for l in &list {
                let peer = if l.peer.is_empty() { "-" } else { &l.peer };
                println!(
                    "{}  {} {} from {} to {} via {} priority {}\n    {}",
                    format_time(l.at_unix_ms),
                    l.kind,
                    l.document_id,
                    l.sender,
                    l.recipients.join(","),
                    peer,
                    l.priority,
                    l.reason
                );
            }
            println!("{} dead letter(s)", list.len());
            Ok(ExitCode::SUCCESS)
        }
        AdminCommand::Retry(a) | AdminCommand::Drop(a) if a.filter.is_empty() && !a.all => {
            Err(UsageError(
                "name the dead letters (--document, --peer, --older-than, --reason-contains) \
                 or pass --all"
                    .into(),
            )
            .into())
        }
        AdminCommand::Retry(a) => {
            let mut admin = ClientProfile::load(&a.profile.profile)?.admin()?;
            let action = pb::DeadLetterAction {
                filter: Some(a.filter.to_pb(0)),
                reason: a.reason,
            };
            let result = admin.retry_dead_letters(action).await?.into_inner();
            Ok(print_action("retried", result))
        }
        AdminCommand::Drop(a) => {
            if a.reason.trim().is_empty() {
                return Err(UsageError(
                    "drop needs --reason: it is recorded and sent to the senders".into(),
                )
                .into());
            }
            let mut admin = ClientProfile::load(&a.profile.profile)?.admin()?;
            let action = pb::DeadLetterAction {
                filter: Some(a.filter.to_pb(0)),
                reason: a.reason,
            };
            let result = admin.drop_dead_letters(action).await?.into_inner();
            Ok(print_action("dropped", result))
        }
        AdminCommand::Log(a) => {
            let mut admin = ClientProfile::load(&a.profile.profile)?.admin()?;
            let entries = admin
                .operator_log(pb::OperatorLogRequest {
                    after: a.after,
                    limit: 0,
                })
                .await?
                .into_inner()
                .entries;
            for e in &entries {
                let Some(action) = &e.action else { continue };
                println!(
                    "#{} {} {} {} {} {}",
                    e.seq,
                    format_time(action.at_unix_ms),
                    action.operator,
                    action.action,
                    action.document_ids.join(","),
                    if action.reason.is_empty() {
                        String::new()
                    } else {
                        format!("reason: {}", action.reason)
                    }
                );
            }
            println!("{} action(s)", entries.len());
            Ok(ExitCode::SUCCESS)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_age;
    use std::time::Duration;

    #[test]
    fn ages_take_a_unit() {
        assert_eq!(parse_age("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_age("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_age("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_age("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse_age("45"), Ok(Duration::from_secs(45)));
        assert!(parse_age("3w").unwrap_err().contains("unknown unit"));
        assert!(parse_age("soon").unwrap_err().contains("not an age"));
    }
}
