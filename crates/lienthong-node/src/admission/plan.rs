//! Where the recipients of one message go from this node: local inboxes, next hops, and
//! dead letters for those that cannot be routed. An agency outside the directory that a
//! bridge reaches on the national platform goes towards that bridge, and at the bridge
//! into the platform's outbox ([`lienthong_core::external::platform_hop`]).

use lienthong_core::directory::{DirectoryIndex, RoutePlan};
use lienthong_core::external::platform_hop;
use lienthong_core::{AgencyCode, NodeId};

use super::Origin;
use crate::context::Context;

/// The recipients of one message, split by where they go from here.
#[derive(Debug, Default)]
pub struct Plan {
    pub local: Vec<AgencyCode>,
    pub via: Vec<(NodeId, Vec<AgencyCode>)>,
    /// Recipients that cannot be routed, with the reason.
    pub dead: Vec<(AgencyCode, String)>,
}

impl Plan {
    /// Splits `recipients` into local inboxes, next hops, and dead letters (unknown here,
    /// or routed back to the neighbour they came from).
    pub fn new(
        ctx: &Context,
        d: &DirectoryIndex,
        sender: &AgencyCode,
        recipients: &[AgencyCode],
        origin: &Origin,
    ) -> Plan {
        let mut plan = Plan::default();
        let Ok(routed) = route(ctx, d, Some(sender), recipients) else {
            // This node is not in its own directory yet: nothing can be routed.
            for r in recipients {
                plan.dead.push((
                    r.clone(),
                    format!("node {} is not in its directory", ctx.id),
                ));
            }
            return plan;
        };
        plan.local = routed.local;
        for (hop, rs) in routed.via {
            if matches!(origin, Origin::Relay { from, .. } if *from == hop) {
                for r in rs {
                    plan.dead.push((
                        r,
                        format!("routing loop: {hop} sent it here and is its next hop too"),
                    ));
                }
            } else {
                plan.via.push((hop, rs));
            }
        }
        for r in routed.unknown {
            let reason = format!(
                "recipient {r} is not in the directory (version {}) of node {}",
                d.version, ctx.id
            );
            plan.dead.push((r, reason));
        }
        plan
    }
}

/// The tree routing of `recipients` from this node, where each recipient the directory
/// does not know but a bridge reaches goes towards that bridge (the platform's outbox at
/// the bridge itself). What stays in `unknown` is known to nobody.
pub fn route(
    ctx: &Context,
    d: &DirectoryIndex,
    sender: Option<&AgencyCode>,
    recipients: &[AgencyCode],
) -> Result<RoutePlan, lienthong_core::Error> {
    let mut routed = d.plan(&ctx.id, recipients)?;
    if routed.unknown.is_empty() {
        return Ok(routed);
    }
    let external = ctx.external.index();
    let mut unknown = Vec::new();
    for r in std::mem::take(&mut routed.unknown) {
        let hop = match external.bridge_towards(d, sender, &r) {
            Some(bridge) if *bridge == ctx.id => Some(platform_hop()),
            Some(bridge) => d.next_hop_towards(&ctx.id, bridge),
            None => None,
        };
        match hop {
            Some(hop) => match routed.via.iter_mut().find(|(h, _)| *h == hop) {
                Some((_, rs)) => rs.push(r),
                None => routed.via.push((hop, vec![r])),
            },
            None => unknown.push(r),
        }
    }
    routed.unknown = unknown;
    Ok(routed)
}
