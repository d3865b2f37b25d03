//! `DirectoryService`, which hands the signed directory down the tree to any
//! authenticated peer, and the pull by which a node asks its parent for a newer one.

use std::sync::Arc;
use std::time::Duration;

use lienthong_core::directory::Directory;
use lienthong_core::external::ExternalDirectory;
use lienthong_proto::pb;
use lienthong_proto::pb::directory_service_server::DirectoryService;
use tokio::sync::watch;
use tonic::{Request, Response, Status};

use crate::Error;
use crate::context::Context;

/// `DirectoryService`: any authenticated peer may read the directory.
#[derive(Debug, Clone)]
pub struct DirectoryApi {
    ctx: Arc<Context>,
}

impl DirectoryApi {
    pub fn new(ctx: Arc<Context>) -> Self {
        DirectoryApi { ctx }
    }
}

type DirectoryStream =
    std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<pb::Directory, Status>> + Send>>;

#[tonic::async_trait]
impl DirectoryService for DirectoryApi {
    async fn get_directory(
        &self,
        req: Request<pb::GetDirectoryRequest>,
    ) -> Result<Response<pb::GetDirectoryResponse>, Status> {
        crate::transport::peer(&req)?;
        let req = req.into_inner();
        let current = self.ctx.directory.current();
        // Lists from the caller's subtree climb towards the root here.
        for offered in req.offered {
            take_list(&self.ctx, offered, "a child");
        }
        Ok(Response::new(pb::GetDirectoryResponse {
            version: current.version,
            directory: (current.version > req.known_version && current.signature.is_some())
                .then(|| (&**current).into()),
            external: self
                .ctx
                .external
                .newer_than(&req.external_versions)
                .iter()
                .map(|l| (&**l).into())
                .collect(),
            external_versions: self.ctx.external.versions(),
        }))
    }

    type WatchDirectoryStream = DirectoryStream;

    async fn watch_directory(
        &self,
        req: Request<pb::WatchDirectoryRequest>,
    ) -> Result<Response<DirectoryStream>, Status> {
        crate::transport::peer(&req)?;
        let mut known = req.into_inner().known_version;
        let mut rx = self.ctx.directory.subscribe();
        let (tx, out) = tokio::sync::mpsc::channel(4);
        tokio::spawn(async move {
            loop {
                let current = rx.borrow_and_update().clone();
                if current.version > known && current.signature.is_some() {
                    known = current.version;
                    if tx.send(Ok((&**current).into())).await.is_err() {
                        return;
                    }
                }
                tokio::select! {
                    changed = rx.changed() => if changed.is_err() { return },
                    _ = tx.closed() => return,
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(out),
        )))
    }
}

/// Takes a platform agency list from a neighbour if it is valid and newer; a bad one is
/// logged and dropped (it changes nothing).
fn take_list(ctx: &Context, list: pb::ExternalDirectory, from: &str) {
    let taken = ExternalDirectory::try_from(list)
        .map_err(Error::from)
        .and_then(|l| ctx.external.offer(l, &ctx.trust, &ctx.directory.current()));
    if let Err(e) = taken {
        tracing::warn!(node = %ctx.id, error = %e, "platform agency list from {from} refused");
    }
}

/// Asks the parent for a newer directory every `interval` until `stop` changes.
pub async fn pull_from_parent(
    ctx: Arc<Context>,
    channel: tonic::transport::Channel,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut client = pb::directory_service_client::DirectoryServiceClient::new(channel)
        .max_decoding_message_size(lienthong_proto::DEFAULT_MAX_MESSAGE_BYTES);
    // What the parent held at the last answer: the lists it lacks go up at the next call.
    let mut parent_holds: Option<std::collections::HashMap<String, i64>> = None;
    loop {
        let known = ctx.directory.current().version;
        let offered = match &parent_holds {
            Some(held) => ctx
                .external
                .newer_than(held)
                .iter()
                .map(|l| (&**l).into())
                .collect(),
            None => Vec::new(),
        };
        match client
            .get_directory(pb::GetDirectoryRequest {
                known_version: known,
                external_versions: ctx.external.versions(),
                offered,
            })
            .await
        {
            Ok(r) => {
                let r = r.into_inner();
                for list in r.external {
                    take_list(&ctx, list, "the parent");
                }
                parent_holds = Some(r.external_versions);
                if let Some(d) = r.directory {
                    match Directory::try_from(d)
                        .map_err(Error::from)
                        .and_then(|d| ctx.directory.offer(d, &ctx.trust))
                    {
                        Ok(true) => ctx.directory_changed(),
                        Ok(false) => {}
                        Err(e) => tracing::warn!(error = %e, "directory from parent refused"),
                    }
                }
            }
            Err(e) => tracing::debug!(error = %e, "cannot reach parent for the directory"),
        }
        // Until it holds a signed directory the node can route nothing: ask again soon.
        let wait = if ctx.directory.current().version == 0 {
            interval.min(Duration::from_millis(500))
        } else {
            interval
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => return,
        }
    }
}
