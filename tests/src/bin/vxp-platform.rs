//! `vxp-platform`: the stand-in for the national VXP platform
//! ([`lienthong_testkit::vxp_platform`]) as a process, for manual use and for tests that
//! need it apart from themselves.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;
use lienthong_testkit::vxp_platform::{AgencySpec, Platform, PlatformConfig, SystemSpec};
use tokio::io::AsyncReadExt as _;

/// A stand-in for the national VXP platform (the server of the VNPT SDKVXP 2.0.1 Java
/// client), for tests.
///
/// It serves HTTPS with a CA it generates at start (written to DIR/ca.pem) and checks
/// every request as the SDK signs it (HMAC-SHA256 of XroadVnpt-sign-header with the
/// system's secret, signed headers equal to the actual ones, hash-file of sendEdoc).
/// It routes an edoc by its edXML To/OrganId, a status by its ResponseFor/OrganId, keeps
/// one mailbox per system and deduplicates re-sent requests.
///
/// When ready it prints one line on stdout:
///
///   platform <URL> <CA PEM path>
///
/// where URL is the base URL (operations are URL/<op>, e.g.
/// https://127.0.0.1:40123/vxp/sendEdoc). Then it prints a line per request on stderr
/// and runs until it is killed or its standard input closes.
///
/// Example:
///
///   printf 'a-secret' > /tmp/a.secret; printf 'b-secret' > /tmp/b.secret
///   vxp-platform --dir /tmp/vxp \
///     --system SYS.A:/tmp/a.secret:000.00.00.G22 \
///     --system SYS.B:/tmp/b.secret:000.00.00.H41,000.00.00.H14 \
///     --agency '000.00.00.G17=Sở TTTT Hải Phòng'
#[derive(Debug, Parser)]
#[command(name = "vxp-platform", verbatim_doc_comment)]
struct Args {
    /// Address to listen on; port 0 picks a free one.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,

    /// Directory for ca.pem and the accepted files (sent/<DocId>.edxml); created if
    /// missing.
    #[arg(long)]
    dir: PathBuf,

    /// A connected system: its id (XroadVnpt-systemid), a file holding its secret as
    /// plain text (one trailing newline is ignored) and the agency codes it serves,
    /// comma-separated, each CODE or CODE=NAME. Repeat for several systems.
    #[arg(long = "system", value_name = "ID:SECRET_FILE:AGENCY[,AGENCY...]")]
    systems: Vec<String>,

    /// An agency known to the directory that no system serves: listed by
    /// getAgenciesList, accepted as an addressee, delivered nowhere. Repeatable.
    #[arg(long = "agency", value_name = "CODE[=NAME]")]
    agencies: Vec<String>,

    /// Keep running when standard input closes (e.g. when started with </dev/null).
    #[arg(long)]
    ignore_stdin: bool,
}

/// `CODE` or `CODE=NAME` (the name defaults to the code).
fn agency(spec: &str) -> anyhow::Result<AgencySpec> {
    let (code, name) = spec.split_once('=').unwrap_or((spec, spec));
    let code = code.trim();
    anyhow::ensure!(!code.is_empty(), "empty agency code in {spec:?}");
    Ok(AgencySpec::new(code, name.trim()))
}

/// `ID:SECRET_FILE:AGENCY[,AGENCY...]`; the secret file's path may itself hold a colon.
fn system(spec: &str) -> anyhow::Result<SystemSpec> {
    let (id, rest) = spec
        .split_once(':')
        .context("--system takes ID:SECRET_FILE:AGENCY[,AGENCY...]")?;
    let (secret_file, agencies) = rest
        .rsplit_once(':')
        .context("--system takes ID:SECRET_FILE:AGENCY[,AGENCY...]")?;
    let secret = std::fs::read_to_string(secret_file)
        .with_context(|| format!("reading the secret of {id} from {secret_file}"))?;
    let secret = secret
        .strip_suffix('\n')
        .map(|s| s.strip_suffix('\r').unwrap_or(s))
        .unwrap_or(&secret);
    let agencies = agencies
        .split(',')
        .filter(|a| !a.trim().is_empty())
        .map(agency)
        .collect::<anyhow::Result<Vec<_>>>()?;
    anyhow::ensure!(!agencies.is_empty(), "system {id} serves no agency");
    Ok(SystemSpec::new(id, secret, agencies))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut config = PlatformConfig::new(&args.dir);
    config.listen = args.listen;
    config.trace = true;
    config.systems = args
        .systems
        .iter()
        .map(|s| system(s))
        .collect::<anyhow::Result<_>>()?;
    config.extra_agencies = args
        .agencies
        .iter()
        .map(|a| agency(a))
        .collect::<anyhow::Result<_>>()?;
    let platform = Platform::start(config).await?;
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(
            stdout,
            "platform {} {}",
            platform.url(),
            platform.ca_pem_path().display()
        )?;
        stdout.flush()?;
    }

    let stdin_closed = async {
        if args.ignore_stdin {
            return std::future::pending().await;
        }
        let mut stdin = tokio::io::stdin();
        let mut buf = [0u8; 256];
        while matches!(stdin.read(&mut buf).await, Ok(n) if n > 0) {}
    };
    tokio::select! {
        _ = stdin_closed => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    platform.shutdown().await;
    Ok(())
}
