//! Where the recipients of one message go from this node: local inboxes, next hops, and
//! dead letters for those that cannot be routed.

use lienthong_core::directory::DirectoryIndex;
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
        recipients: &[AgencyCode],
        origin: &Origin,
    ) -> Plan {
        let mut plan = Plan::default();
        let Ok(routed) = d.plan(&ctx.id, recipients) else {
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
