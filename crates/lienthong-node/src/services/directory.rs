//! `DirectoryService`, which hands the signed directory down the tree to any
//! authenticated peer, and the pull by which a node asks its parent for a newer one.

use std::sync::Arc;
use std::time::Duration;

use lienthong_core::directory::Directory;
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
        let known = req.into_inner().known_version;
        let current = self.ctx.directory.current();
        Ok(Response::new(pb::GetDirectoryResponse {
            version: current.version,
            directory: (current.version > known && current.signature.is_some())
                .then(|| (&**current).into()),
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

/// Asks the parent for a newer directory every `interval` until `stop` changes.
pub async fn pull_from_parent(
    ctx: Arc<Context>,
    channel: tonic::transport::Channel,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut client = pb::directory_service_client::DirectoryServiceClient::new(channel);
    loop {
        let known = ctx.directory.current().version;
        match client
            .get_directory(pb::GetDirectoryRequest {
                known_version: known,
            })
            .await
        {
            Ok(r) => {
                if let Some(d) = r.into_inner().directory {
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
