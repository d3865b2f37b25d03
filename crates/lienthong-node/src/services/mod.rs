//! The gRPC services of a node, and the calls it makes to its neighbours: the only part
//! of the node that knows the generated protobuf types. Each service ties a request to
//! the identity of the connection's certificate ([`caller`]), translates it to the
//! domain, calls the flow that owns it, and translates the answer back.
//!
//! - [`agency`]: `AgencyService`, what a DMS calls;
//! - [`admin`]: `AdminService`, for operators with the node's own certificate;
//! - [`relay`]: `RelayService` between neighbours, and [`relay::LinkClient`], the same
//!   protocol from the sending side;
//! - [`directory`]: `DirectoryService`, and the pull of the directory from the parent.

pub mod admin;
pub mod agency;
pub mod directory;
pub mod relay;

use std::sync::Arc;

use lienthong_core::{AgencyCode, NodeId};
use lienthong_pki::Identity;
use lienthong_proto::pb::admin_service_server::AdminServiceServer;
use lienthong_proto::pb::agency_service_server::AgencyServiceServer;
use lienthong_proto::pb::directory_service_server::DirectoryServiceServer;
use lienthong_proto::pb::relay_service_server::RelayServiceServer;

use crate::Error;
use crate::context::Context;

/// Every service of a node on `builder`'s server: the standard gRPC health and server
/// reflection (`grpc.reflection.v1` and the `v1alpha` many clients still speak), and the
/// agency, admin, relay and directory services with the node's message size limits.
pub async fn router(
    ctx: &Arc<Context>,
    mut builder: tonic::transport::Server,
) -> Result<tonic::transport::server::Router, Error> {
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<AgencyServiceServer<agency::AgencyApi>>()
        .await;
    health
        .set_serving::<AdminServiceServer<admin::AdminApi>>()
        .await;
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(lienthong_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = reflection()
        .build_v1()
        .map_err(|e| Error::Transport(format!("reflection service: {e}")))?;
    let reflection_v1alpha = reflection()
        .build_v1alpha()
        .map_err(|e| Error::Transport(format!("reflection service: {e}")))?;
    let max = ctx.limits.max_message_bytes;
    Ok(builder
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(
            AgencyServiceServer::new(agency::AgencyApi::new(ctx.clone()))
                .max_decoding_message_size(max)
                .max_encoding_message_size(max),
        )
        .add_service(AdminServiceServer::new(admin::AdminApi::new(ctx.clone())))
        .add_service(
            RelayServiceServer::new(relay::RelayApi::new(ctx.clone()))
                .max_decoding_message_size(max)
                .max_encoding_message_size(max),
        )
        .add_service(DirectoryServiceServer::new(directory::DirectoryApi::new(
            ctx.clone(),
        ))))
}

/// The agency a DMS connection speaks for; it must be homed at this node.
pub fn authorize_agency(ctx: &Context, identity: &Identity) -> Result<AgencyCode, Error> {
    match identity {
        Identity::Agency(code) if ctx.is_homed_here(&ctx.directory.current(), code) => {
            Ok(code.clone())
        }
        Identity::Agency(code) => Err(Error::NotAllowed(format!(
            "agency {code} is not served by node {}; connect to its home node",
            ctx.id
        ))),
        other => Err(Error::NotAllowed(format!(
            "the agency API needs an agency certificate; {other} is not an agency"
        ))),
    }
}

/// Operators use this node's own identity.
pub fn authorize_operator(ctx: &Context, identity: &Identity) -> Result<(), Error> {
    match identity {
        Identity::Node(id) if *id == ctx.id => Ok(()),
        other => Err(Error::NotAllowed(format!(
            "the admin API needs node {}'s certificate; {other} may not use it",
            ctx.id
        ))),
    }
}

/// The neighbour a relay connection comes from.
pub fn authorize_neighbour(ctx: &Context, identity: &Identity) -> Result<NodeId, Error> {
    match identity {
        Identity::Node(n) if ctx.directory.current().is_neighbour(&ctx.id, n) => Ok(n.clone()),
        other => Err(Error::NotNeighbour(format!(
            "{other} is not a neighbour of node {} in the directory; only a parent or \
             child may hand messages over",
            ctx.id
        ))),
    }
}
