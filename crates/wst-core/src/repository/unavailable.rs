//! A configured sink that cannot be used, standing in for it so that every operation reports
//! it instead of writing to the wrong place.

use async_trait::async_trait;
use bytes::Bytes;

use crate::error::{Error, Result};
use crate::sink::{ByteStream, ObjectMeta, Sink, SinkInfo, SinkUpload};

/// A sink that refuses every operation with the reason it is unusable: an unmounted disk (its
/// directory does not exist), a sink without this repository's marker, two sinks on one
/// location. It takes the configured sink's place, so a backup reports that copy as failed
/// (the run is degraded, never silently short of a copy) and status names it.
#[derive(Debug, Clone)]
pub struct UnavailableSink {
    info: SinkInfo,
    reason: String,
}

impl UnavailableSink {
    /// Stands in for the sink described by `info`; `reason` says why it cannot be used and
    /// what to do (it becomes every operation's error).
    pub fn new(info: SinkInfo, reason: impl Into<String>) -> Self {
        Self {
            info,
            reason: reason.into(),
        }
    }

    /// Why the sink cannot be used.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    fn refuse(&self, operation: &'static str, name: &str) -> Error {
        Error::Sink {
            sink: self.info.name.clone(),
            operation,
            name: name.to_owned(),
            retryable: false,
            source: self.reason.clone().into(),
        }
    }
}

#[async_trait]
impl Sink for UnavailableSink {
    fn info(&self) -> &SinkInfo {
        &self.info
    }
    async fn put(&self, name: &str) -> Result<Box<dyn SinkUpload>> {
        Err(self.refuse("put", name))
    }
    async fn get(&self, name: &str) -> Result<ByteStream> {
        Err(self.refuse("get", name))
    }
    async fn head(&self, name: &str) -> Result<ObjectMeta> {
        Err(self.refuse("head", name))
    }
    async fn list(&self, _prefix: &str) -> Result<Vec<ObjectMeta>> {
        Err(self.refuse("list", ""))
    }
    async fn delete(&self, name: &str) -> Result<()> {
        Err(self.refuse("delete", name))
    }
    async fn create(&self, name: &str, _data: Bytes) -> Result<ObjectMeta> {
        Err(self.refuse("put", name))
    }
}
