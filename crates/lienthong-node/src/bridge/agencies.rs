//! The platform's agency lists (`getAgenciesList`, `getAgenciesListQD20`), fetched at
//! start and every `agencies_refresh_ms`, merged, signed by this bridge and offered to
//! the node's own lists, from where they climb to the root and come down to every node.
//! An entry whose code is not a QĐ 20/2020 code cannot be addressed and is left out.

use std::collections::BTreeMap;
use std::sync::Arc;

use lienthong_core::AgencyCode;
use lienthong_core::external::{ExternalAgency, ExternalDirectory};
use tokio::sync::watch;

use super::{Bridge, pause};
use crate::Error;

/// Retry sooner while no list was ever fetched.
const FIRST_FETCH_RETRY_MS: u64 = 2_000;

pub async fn run(bridge: Arc<Bridge>, mut stop: watch::Receiver<bool>) {
    let mut fetched = false;
    loop {
        match refresh(&bridge).await {
            Ok(n) => {
                fetched = true;
                tracing::info!(node = %bridge.ctx.id, agencies = n, "platform agency list fetched");
            }
            Err(e) => {
                tracing::warn!(node = %bridge.ctx.id, error = %e, "platform agency list not fetched")
            }
        }
        let wait = if fetched {
            bridge.config.agencies_refresh_ms
        } else {
            FIRST_FETCH_RETRY_MS.min(bridge.config.agencies_refresh_ms)
        };
        if !pause(&mut stop, wait).await {
            return;
        }
    }
}

/// Fetches both lists and publishes them when they changed; returns how many agencies
/// the published list holds.
pub async fn refresh(bridge: &Bridge) -> Result<usize, Error> {
    let platform_error = |e: lienthong_vxp::VxpError| Error::Transport(e.to_string());
    let mut merged: BTreeMap<AgencyCode, ExternalAgency> = BTreeMap::new();
    let mut skipped = 0usize;
    let mut add = |code: &str, name: &str, aliases: Vec<&str>| {
        let Ok(code) = AgencyCode::parse(code.trim()) else {
            skipped += 1;
            return;
        };
        let entry = merged
            .entry(code.clone())
            .or_insert_with(|| ExternalAgency {
                code: code.clone(),
                name: name.to_string(),
                aliases: Vec::new(),
            });
        if entry.name.is_empty() {
            entry.name = name.to_string();
        }
        for alias in aliases {
            let alias = alias.trim();
            if !alias.is_empty()
                && alias != code.as_str()
                && !entry.aliases.iter().any(|a| a == alias)
            {
                entry.aliases.push(alias.to_string());
            }
        }
    };
    for a in bridge.platform.agencies().await.map_err(platform_error)? {
        // The legacy code names it too (the platform's row `id` is an internal number,
        // not an identifier a DMS writes).
        let aliases = a.old_code.as_deref().into_iter().collect();
        add(
            a.code.as_deref().unwrap_or_default(),
            a.name.as_deref().unwrap_or_default(),
            aliases,
        );
    }
    // The QĐ 20 list adds what the first misses and the 102 codes as aliases; a platform
    // without it (SDK 2.0.0) still has the first.
    match bridge.platform.agencies_qd20("1").await {
        Ok(list) => {
            for a in list {
                add(
                    a.code.as_deref().unwrap_or_default(),
                    a.name.as_deref().unwrap_or_default(),
                    a.code102.as_deref().into_iter().collect(),
                );
            }
        }
        Err(e) => tracing::debug!(error = %e, "getAgenciesListQD20 not answered"),
    }
    if skipped > 0 {
        tracing::info!(
            skipped,
            "platform agencies without a QĐ 20/2020 code left out"
        );
    }
    let agencies: Vec<ExternalAgency> = merged.into_values().collect();
    let ctx = &bridge.ctx;
    let held = ctx
        .external
        .index()
        .lists()
        .find(|l| l.bridge == ctx.id)
        .map(|l| l.agencies.clone());
    if held.as_ref() == Some(&agencies) {
        return Ok(agencies.len());
    }
    let mut list = ExternalDirectory {
        bridge: ctx.id.clone(),
        version: lienthong_core::now_millis(),
        agencies,
        signature: None,
    };
    crate::external::sign(&mut list, &ctx.signer)?;
    let n = list.agencies.len();
    ctx.external
        .offer(list, &ctx.trust, &ctx.directory.current())?;
    Ok(n)
}
