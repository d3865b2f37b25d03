//! DMS-side and operator commands: thin wrappers over `lienthong_client`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use lienthong_client::edxml::{EdxmlError, SentEdxml};
use lienthong_client::{
    Accepted, AttachmentSource, ClientProfile, DmsClient, InboxItem, Incoming, Tracked,
};
use lienthong_core::directory::place;
use lienthong_core::{AgencyCode, DocumentId, Priority, StatusCode, StatusNotice, TransportEvent};
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
    /// Recipient agency code, or an alias the directory lists (a legacy code, a
    /// platform account id); repeat for several (e.g. --to 000.00.14.H41 --to 28.22.H17).
    #[arg(long, required_unless_present = "edxml")]
    pub to: Vec<String>,
    /// Send an edXML (QCVN 102:2016) message instead: a document (with its attachments,
    /// header and business block as written) or a status message. It is signed with this
    /// profile's key; its From must be the profile's agency.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["to", "subject", "files", "priority", "number", "notation", "id"])]
    pub edxml: Option<PathBuf>,
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
    if let Some(file) = &args.edxml {
        return send_edxml(&client, file).await;
    }
    // Aliases are placed with the node's directory, asked only when one is given.
    let directory = if args.to.iter().all(|t| AgencyCode::parse(t).is_ok()) {
        None
    } else {
        client.current_directory().await?
    };
    let to = args
        .to
        .iter()
        .map(|t| place(directory.as_deref(), t).map_err(|e| UsageError(format!("--to {t:?}: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
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
    let (Accepted { receipt, duplicate }, uploads) =
        client.send_sources(&mut document, &attachments).await?;
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
    print_receipt(&document.id, &receipt, duplicate);
    Ok(ExitCode::SUCCESS)
}

/// What `send` prints once the node has the message: the receipt, then the id alone on
/// the last line (for scripts).
fn print_receipt(id: &DocumentId, receipt: &lienthong_core::Receipt, duplicate: bool) {
    println!(
        "{} {} accepted by node {} at {} (receipt verified{})",
        if duplicate { "re-sent" } else { "sent" },
        id,
        receipt.node,
        format_time(receipt.accepted_at),
        if duplicate { ", original receipt" } else { "" }
    );
    println!("{id}");
}

/// `send --edxml FILE`: the message imported strictly and sent by
/// [`DmsClient::send_edxml_file`] (attachments decoded into temporary files as the file
/// is read, large ones uploaded in chunks); a status message becomes its notices.
/// An unusable file is a usage error in the shape `lienthong edxml check` uses,
/// `FILE:LINE: reason`.
async fn send_edxml(client: &DmsClient, file: &Path) -> anyhow::Result<ExitCode> {
    let sent = client
        .send_edxml_file(file)
        .await
        .map_err(|e| -> anyhow::Error {
            match e {
                EdxmlError::Unusable { line, reason } => {
                    UsageError(format!("{}:{line}: {reason}", file.display())).into()
                }
                e @ EdxmlError::NotOurs { .. } => {
                    UsageError(format!("{}: {e}", file.display())).into()
                }
                EdxmlError::Client(e) => e.into(),
            }
        })?;
    match sent {
        SentEdxml::Document { document, accepted } => {
            print_receipt(&document.id, &accepted.receipt, accepted.duplicate)
        }
        SentEdxml::Statuses(sent) => {
            for (notice, Accepted { receipt, duplicate }) in sent {
                println!(
                    "status {} for {} {} to {}; accepted by node {} at {}",
                    notice.code,
                    notice.response_for.document_id,
                    if duplicate { "re-sent" } else { "sent" },
                    notice.to,
                    receipt.node,
                    format_time(receipt.accepted_at)
                );
                println!("{}", notice.id);
            }
        }
    }
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
    /// Fetch each entry, verify it end to end, and write it as an edXML message
    /// (QCVN 102:2016) to <dir>/<id>.edxml: documents with their attachments, status
    /// notices as status messages; an imported message comes back as it was sent.
    #[arg(long, value_name = "DIR")]
    pub export_edxml: Option<PathBuf>,
    /// Acknowledge each entry after it was saved or exported (requires --save or
    /// --export-edxml); without it the entries stay in the inbox. An entry that cannot be
    /// saved or exported is reported and stays; the others go on, and the exit code is 1.
    #[arg(long)]
    pub ack: bool,
}

pub async fn inbox(args: InboxArgs) -> anyhow::Result<ExitCode> {
    if args.ack && args.save.is_none() && args.export_edxml.is_none() {
        return Err(UsageError(
            "--ack needs --save DIR or --export-edxml DIR: an entry is acknowledged only \
             once it is written somewhere"
                .into(),
        )
        .into());
    }
    let client = args.profile.client()?;
    let handle = |entry: InboxItem| {
        let client = client.clone();
        let save = args.save.clone();
        let export = args.export_edxml.clone();
        let ack = args.ack;
        async move {
            print_entry(&entry);
            if save.is_none() && export.is_none() {
                return anyhow::Ok(());
            }
            let incoming = match &save {
                // Large attachments stream straight to their files (resuming after errors).
                Some(dir) => {
                    let out = dir.join(folder_name(&entry.id));
                    std::fs::create_dir_all(&out)
                        .with_context(|| format!("creating {}", out.display()))?;
                    let dest = |i: usize, a: &lienthong_core::Attachment| {
                        out.join(attachment_file_name(i, &a.name))
                    };
                    client.fetch_to_files(&entry.id, &dest).await?
                }
                None => client.fetch(&entry.id).await?,
            };
            if let Some(dir) = &save {
                let path = save_incoming(dir, &incoming)?;
                println!("    saved and verified: {}", path.display());
            }
            if let Some(dir) = export {
                // edXML carries every attachment inside the message: those streamed to
                // their files are encoded from there.
                let saved = save
                    .as_ref()
                    .map(|saved| saved.join(folder_name(&entry.id)))
                    .unwrap_or_default();
                let streamed = |i: usize, a: &lienthong_core::Attachment| {
                    saved.join(attachment_file_name(i, &a.name))
                };
                // Each agency written with the identifier its system expects.
                let directory = client.current_directory().await?;
                let path = export_edxml(&dir, &incoming, &streamed, directory.as_deref())?;
                println!("    exported as edXML: {}", path.display());
            }
            if ack {
                client.ack(&entry.id).await?;
                println!("    acknowledged");
            }
            anyhow::Ok(())
        }
    };
    // An entry that cannot be fetched, saved, exported or acknowledged is reported and
    // left in the inbox, and the others go on: one bad entry must not block the rest for
    // good. The exit code says whether any failed.
    let mut failed: Vec<String> = Vec::new();
    let mut settle = |id: String, result: anyhow::Result<()>| {
        if let Err(e) = result {
            eprintln!("error: entry {id}: {e:#}; it stays in the inbox, not acknowledged");
            failed.push(id);
        }
    };
    if args.watch {
        let mut stream = client.subscribe(args.after).await?;
        eprintln!(
            "watching the inbox of {} (Ctrl-C to stop)…",
            client.agency()
        );
        loop {
            tokio::select! {
                next = stream.next() => match next {
                    Some(entry) => {
                        let entry = entry?;
                        let id = entry.id.clone();
                        settle(id, handle(entry).await);
                    }
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
            let id = entry.id.clone();
            settle(id, handle(entry).await);
        }
    }
    if failed.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!(
        "{} entr{} could not be handled and stay in the inbox: {}",
        failed.len(),
        if failed.len() == 1 { "y" } else { "ies" },
        failed.join(", ")
    );
    Ok(ExitCode::FAILURE)
}

fn print_entry(e: &InboxItem) {
    let kind = if e.kind == lienthong_client::InboxKind::Status {
        "status  "
    } else {
        "document"
    };
    let verb = match e.business_type {
        1 => "revokes",
        2 => "updates",
        3 => "replaces",
        _ => "",
    };
    let mut business = String::new();
    if !verb.is_empty() {
        business.push_str(&format!("  ({verb} {})", e.references.join(", ")));
    }
    if !e.business_state.is_empty() {
        business.push_str(&format!(
            "  [{} by {}]",
            e.business_state.to_uppercase(),
            e.superseded_by
        ));
    }
    println!(
        "[{:>6}] {kind} {}  from {}  priority {}  {}{business}",
        e.cursor, e.id, e.from, e.priority, e.subject
    );
}

/// Writes a verified message under `dir/<id>/`; returns that directory.
pub fn save_incoming(dir: &Path, incoming: &Incoming) -> anyhow::Result<PathBuf> {
    match incoming {
        Incoming::Document(v) => {
            let out = dir.join(folder_name(v.document.id.as_str()));
            std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
            for (i, (a, bytes)) in v.document.attachments.iter().zip(&v.contents).enumerate() {
                if bytes.is_empty() && a.size > 0 {
                    continue; // streamed to its file by `fetch_to_files`
                }
                std::fs::write(out.join(attachment_file_name(i, &a.name)), bytes)?;
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
            let out = dir.join(folder_name(notice.id.as_str()));
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

/// Writes a verified message as edXML to `dir/<id>.edxml` (see
/// [`lienthong_client::edxml::write_edxml_with`]), each agency written with the
/// identifier `directory` sets for it; returns the file. Attachments whose content was
/// streamed to files are encoded from the file `streamed` names.
pub fn export_edxml(
    dir: &Path,
    incoming: &Incoming,
    streamed: &dyn Fn(usize, &lienthong_core::Attachment) -> PathBuf,
    directory: Option<&lienthong_core::directory::DirectoryIndex>,
) -> anyhow::Result<PathBuf> {
    let id = match incoming {
        Incoming::Document(v) => &v.document.id,
        Incoming::Status { notice, .. } => &notice.id,
    };
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(format!("{}.edxml", folder_name(id.as_str())));
    // The error names the file already ("writing PATH: …").
    lienthong_client::edxml::export_edxml(&path, incoming, streamed, directory)?;
    Ok(path)
}

/// A file-system-safe name: ids may contain `/` and `,`.
/// `name` with every character but letters, digits, `-`, `_` and `.` replaced by `_`,
/// and no leading dot: it cannot leave its folder or hide in it.
fn sanitize(name: &str) -> String {
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    match safe.strip_prefix('.') {
        Some(_) => format!("_{}", safe.trim_start_matches('.')),
        None => safe,
    }
}

/// The folder (or file stem) of a message id under a save or export directory: the id
/// made safe by [`sanitize`] (edXML ids such as `000.00.00.H41,2026/11/24,15/UBND-VP`
/// stay readable).
fn folder_name(id: &str) -> String {
    match sanitize(id) {
        s if s.is_empty() => "_".into(),
        s => s,
    }
}

/// The file of the `index`-th attachment (from 0) in its message's folder: numbered, so
/// that two attachments of one name, or one named like the summary file, never collide.
fn attachment_file_name(index: usize, name: &str) -> String {
    format!("{:02}-{}", index + 1, sanitize(name))
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
    /// The agency the notice is for; by default the document's sender, or for 13 (sent
    /// by the document's sender) every recipient of the document.
    #[arg(long)]
    pub to: Option<String>,
}

pub async fn status(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let client = args.profile.client()?;
    let code = StatusCode::parse(&args.code).map_err(|e| UsageError(e.to_string()))?;
    let document = DocumentId::parse(&args.document).map_err(|e| UsageError(e.to_string()))?;
    let to = match &args.to {
        Some(to) => AgencyCode::parse(to).map_err(|e| UsageError(e.to_string()))?,
        None => match client.fetch_described(document.as_str()).await? {
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
    // A 13 without --to names the caller's own document: one per recipient.
    for notice in client.addressed(notice).await? {
        let Accepted {
            receipt,
            duplicate: _,
        } = client.send_status(notice.clone()).await?;
        println!(
            "status {code} for {document} sent to {}; accepted by node {} at {}",
            notice.to,
            receipt.node,
            format_time(receipt.accepted_at)
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Args, Debug)]
pub struct TrackArgs {
    #[command(flatten)]
    pub profile: ProfileArg,
    /// The document id.
    pub id: String,
    /// The document's sender, when documents of two senders with this id concern you.
    #[arg(long)]
    pub from: Option<String>,
}

pub async fn track(args: TrackArgs) -> anyhow::Result<ExitCode> {
    let client = args.profile.client()?;
    let from = args
        .from
        .as_deref()
        .map(AgencyCode::parse)
        .transpose()
        .map_err(|e| UsageError(format!("--from: {e}")))?;
    let tracked = client.track_from(&args.id, from.as_ref()).await?;
    print!(
        "{}",
        format_track(&args.id, &tracked.events, &tracked.statuses)
    );
    print!("{}", format_business(&tracked));
    Ok(ExitCode::SUCCESS)
}

/// The business state `track` prints after the transport events: the document's own
/// (revoked, replaced, updated) and, per recipient, the latest transport event next to
/// the latest business status.
pub fn format_business(r: &Tracked) -> String {
    let mut out = String::new();
    if !r.business_state.is_empty() {
        out.push_str(&format!(
            "business: {} by {}\n",
            r.business_state.to_uppercase(),
            r.superseded_by
        ));
    }
    for rs in &r.recipients {
        let transport = if rs.transport.is_empty() {
            "-"
        } else {
            &rs.transport
        };
        let status = match StatusCode::parse(&rs.status_code) {
            Ok(code) => format!("status {code}"),
            Err(_) => "no status yet".to_string(),
        };
        out.push_str(&format!(
            "  recipient {:<16} transport {:<13} business {status}\n",
            rs.agency, transport
        ));
    }
    out
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
    /// The national platform as the node sees it: the platform's agencies it can address
    /// (search with --search) and, at a bridge, the platform messages it could not import.
    Platform(PlatformArgs),
}

#[derive(Args, Debug)]
pub struct PlatformArgs {
    #[command(flatten)]
    pub profile: ProfileArg,
    /// Part of a code, alias or name, in any case (e.g. `H29`, `hà nội`).
    #[arg(long, default_value = "")]
    pub search: String,
    /// At most this many agencies.
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
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
            for damaged in &h.damaged {
                println!("damaged message (quarantined): {damaged}");
            }
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
        AdminCommand::Platform(a) => {
            let mut admin = ClientProfile::load(&a.profile.profile)?.admin()?;
            let r = admin
                .platform(pb::PlatformRequest {
                    search: a.search,
                    limit: a.limit,
                })
                .await?
                .into_inner();
            if r.lists.is_empty() {
                println!("no platform agency list: no bridge has published one to this node");
            }
            for list in &r.lists {
                println!("list from bridge {list}");
            }
            for e in &r.agencies {
                println!(
                    "  {:<16} {}{} (through {})",
                    e.code,
                    e.name,
                    if e.aliases.is_empty() {
                        String::new()
                    } else {
                        format!(" [{}]", e.aliases.join(", "))
                    },
                    e.bridges.join(", ")
                );
            }
            println!("{} agencies matched, {} shown", r.matched, r.agencies.len());
            if !r.quarantined.is_empty() {
                println!("quarantined platform messages (answered fail on the platform):");
                for q in &r.quarantined {
                    println!("  {} {} ({})", q.platform_id, q.reason, q.file);
                }
            }
            Ok(ExitCode::SUCCESS)
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

#[cfg(test)]
mod saved_names {
    use super::{attachment_file_name, folder_name, sanitize};

    #[test]
    fn saved_names_stay_in_their_folder_and_never_collide() {
        for hostile in ["..", ".", "../etc", "a/../../b", "/abs", ".hidden", ""] {
            let folder = folder_name(hostile);
            assert!(
                !folder.contains('/') && !folder.starts_with('.') && !folder.is_empty(),
                "{hostile:?} → {folder:?}"
            );
        }
        assert_eq!(folder_name("0d1f3c2a-ok-id"), "0d1f3c2a-ok-id");
        assert!(!sanitize("../../x.pdf").contains('/'));
        assert!(!sanitize("..").starts_with('.'));
        // Attachments are numbered: same names, or the summary's name, do not collide.
        assert_eq!(attachment_file_name(0, "qd.pdf"), "01-qd.pdf");
        assert_ne!(
            attachment_file_name(0, "qd.pdf"),
            attachment_file_name(1, "qd.pdf")
        );
        assert_ne!(attachment_file_name(0, "document.toml"), "document.toml");
        assert!(!attachment_file_name(2, "../../.ssh/id").contains('/'));
    }
}
