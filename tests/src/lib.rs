//! # lienthong-testkit
//!
//! What only tests need, on top of [`lienthong_devnet`] (re-exported here, so a test
//! writes `lienthong_testkit::RunningNetwork`): a one-node network in a temporary
//! directory ([`TestNetwork`]), the fault-injecting TCP proxy ([`proxy`]), the chaos
//! suite ([`chaos`]) that runs nodes as processes it kills, pauses and partitions, and a
//! stand-in for the national VXP platform ([`vxp_platform`]) with networks bridged to it
//! ([`bridged`]).
#![forbid(unsafe_code)]

pub mod bridged;
pub mod chaos;
pub mod proxy;
pub mod vxp_platform;

pub use lienthong_devnet::*;

use std::net::Ipv4Addr;

use lienthong_client::ClientProfile;
use lienthong_node::config::NodeConfig;

/// A generated network with its node running, in a temporary directory removed on drop.
#[derive(Debug)]
pub struct TestNetwork {
    pub net: DevNetwork,
    pub node: Option<RunningNode>,
    _dir: tempfile::TempDir,
}

impl TestNetwork {
    /// A network of [`DEV_AGENCIES`] on one node on 127.0.0.1:0; `adjust` may change the
    /// node's configuration before it starts.
    pub async fn start(adjust: impl FnOnce(&mut NodeConfig)) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("lienthong-test-")
            .tempdir()?;
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let mut net = generate(dir.path(), listener.local_addr()?, &DEV_AGENCIES)?;
        adjust(&mut net.config);
        let node = RunningNode::start(&net.config, listener).await?;
        Ok(TestNetwork {
            net,
            node: Some(node),
            _dir: dir,
        })
    }

    /// The DMS client of the `i`-th agency of [`DEV_AGENCIES`].
    pub fn client(&self, i: usize) -> anyhow::Result<lienthong_client::DmsClient> {
        let profile = ClientProfile::load(&self.net.profiles[i].1)?;
        Ok(lienthong_client::DmsClient::from_profile(&profile)?)
    }

    /// Stops the node and starts it again on the same address and data directory.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        if let Some(node) = self.node.take() {
            node.stop().await?;
        }
        let listener = tokio::net::TcpListener::bind(self.net.config.listen).await?;
        self.node = Some(RunningNode::start(&self.net.config, listener).await?);
        Ok(())
    }

    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(node) = self.node.take() {
            node.stop().await?;
        }
        Ok(())
    }
}

/// The generated gRPC client of the agency API over a [`lienthong_client::DmsClient`]'s
/// channel, for tests that send what no well-behaved client would (tampered signatures,
/// raw requests) or call what the client does not wrap.
pub trait RawRpc {
    fn rpc(
        &self,
    ) -> lienthong_proto::pb::agency_service_client::AgencyServiceClient<tonic::transport::Channel>;
}

impl RawRpc for lienthong_client::DmsClient {
    fn rpc(
        &self,
    ) -> lienthong_proto::pb::agency_service_client::AgencyServiceClient<tonic::transport::Channel>
    {
        lienthong_proto::pb::agency_service_client::AgencyServiceClient::new(self.channel())
            .max_decoding_message_size(lienthong_proto::DEFAULT_MAX_MESSAGE_BYTES)
            .max_encoding_message_size(lienthong_proto::DEFAULT_MAX_MESSAGE_BYTES)
    }
}

/// A sealed document as the wire carries it, for tests that tamper with it before
/// sending it with [`RawRpc`].
pub fn wire(sealed: &lienthong_client::Sealed) -> lienthong_proto::pb::Document {
    lienthong_proto::document_to_pb(&sealed.document, Some(&sealed.contents))
}

/// Asserts that `result` is a refusal with `code` whose message contains `needle`.
#[track_caller]
pub fn assert_refused<T: std::fmt::Debug, E: Into<lienthong_client::Error>>(
    result: Result<T, E>,
    code: tonic::Code,
    needle: &str,
) {
    let error: lienthong_client::Error = result
        .map_err(Into::into)
        .expect_err("the node should have refused");
    assert_eq!(error.code(), Some(code), "unexpected code: {error:?}");
    assert!(
        error.message().contains(needle),
        "message {:?} should contain {needle:?}",
        error.message()
    );
}

/// Asserts that `result` is a refusal with `code` and the stable name of the failure
/// `reason` (`lienthong-reason`).
#[track_caller]
pub fn assert_reason<T: std::fmt::Debug, E: Into<lienthong_client::Error>>(
    result: Result<T, E>,
    code: tonic::Code,
    reason: &str,
) {
    let error: lienthong_client::Error = result
        .map_err(Into::into)
        .expect_err("the node should have refused");
    assert_eq!(error.code(), Some(code), "unexpected code: {error:?}");
    assert_eq!(error.reason(), Some(reason), "unexpected reason: {error:?}");
}
