//! An in-memory [`Sink`], for unit tests and examples only: it is not durable.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures::stream;

use crate::error::{Error, Result};
use crate::sink::{
    ByteStream, Medium, ObjectMeta, Sink, SinkInfo, SinkUpload, validate_object_name,
};

type Objects = Arc<Mutex<BTreeMap<String, (Bytes, jiff::Timestamp)>>>;

/// A [`Sink`] that keeps objects in memory. Clones share the same objects.
///
/// Uploads become visible only on [`SinkUpload::complete`], like every sink. Not durable: use it
/// in tests, never for real backups.
#[derive(Debug, Clone)]
pub struct MemorySink {
    info: SinkInfo,
    objects: Objects,
}

impl MemorySink {
    /// An empty sink named `name` (medium [`Medium::Disk`], not offsite).
    pub fn new(name: &str) -> Self {
        Self::with_info(SinkInfo {
            name: name.to_owned(),
            medium: Medium::Disk,
            offsite: false,
            location: format!("memory://{name}"),
        })
    }

    /// An empty sink described by `info` (e.g. to stand for an offsite object store in a test of
    /// the 3-2-1 check).
    pub fn with_info(info: SinkInfo) -> Self {
        Self {
            info,
            objects: Arc::default(),
        }
    }

    /// Replaces the bytes of an existing object in place (tests: simulate bit rot or tampering).
    ///
    /// # Errors
    /// [`Error::NotFound`] when the object does not exist.
    pub fn tamper(&self, name: &str, f: impl FnOnce(&mut Vec<u8>)) -> Result<()> {
        let mut objects = self.objects.lock().expect("memory sink lock");
        let (data, _) = objects.get_mut(name).ok_or_else(|| Error::NotFound {
            sink: self.info.name.clone(),
            name: name.to_owned(),
        })?;
        let mut v = data.to_vec();
        f(&mut v);
        *data = Bytes::from(v);
        Ok(())
    }
}

fn now() -> jiff::Timestamp {
    jiff::Timestamp::now()
}

#[async_trait]
impl Sink for MemorySink {
    fn info(&self) -> &SinkInfo {
        &self.info
    }

    async fn put(&self, name: &str) -> Result<Box<dyn SinkUpload>> {
        validate_object_name(name)?;
        Ok(Box::new(MemoryUpload {
            name: name.to_owned(),
            buf: BytesMut::new(),
            objects: Arc::clone(&self.objects),
        }))
    }

    async fn get(&self, name: &str) -> Result<ByteStream> {
        validate_object_name(name)?;
        let data = self
            .objects
            .lock()
            .expect("memory sink lock")
            .get(name)
            .map(|(d, _)| d.clone());
        let data = data.ok_or_else(|| Error::NotFound {
            sink: self.info.name.clone(),
            name: name.to_owned(),
        })?;
        let chunks: Vec<Result<Bytes>> = (0..data.len())
            .step_by(64 * 1024)
            .map(|i| Ok(data.slice(i..data.len().min(i + 64 * 1024))))
            .collect();
        Ok(Box::pin(stream::iter(chunks)))
    }

    async fn head(&self, name: &str) -> Result<ObjectMeta> {
        validate_object_name(name)?;
        let objects = self.objects.lock().expect("memory sink lock");
        let (data, t) = objects.get(name).ok_or_else(|| Error::NotFound {
            sink: self.info.name.clone(),
            name: name.to_owned(),
        })?;
        Ok(ObjectMeta {
            name: name.to_owned(),
            size: data.len() as u64,
            last_modified: *t,
        })
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        let objects = self.objects.lock().expect("memory sink lock");
        Ok(objects
            .range(prefix.to_owned()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, (d, t))| ObjectMeta {
                name: k.clone(),
                size: d.len() as u64,
                last_modified: *t,
            })
            .collect())
    }

    async fn delete(&self, name: &str) -> Result<()> {
        validate_object_name(name)?;
        self.objects.lock().expect("memory sink lock").remove(name);
        Ok(())
    }

    async fn create(&self, name: &str, data: Bytes) -> Result<ObjectMeta> {
        validate_object_name(name)?;
        let mut objects = self.objects.lock().expect("memory sink lock");
        if objects.contains_key(name) {
            return Err(Error::AlreadyExists {
                sink: self.info.name.clone(),
                name: name.to_owned(),
            });
        }
        let t = now();
        let size = data.len() as u64;
        objects.insert(name.to_owned(), (data, t));
        Ok(ObjectMeta {
            name: name.to_owned(),
            size,
            last_modified: t,
        })
    }
}

struct MemoryUpload {
    name: String,
    buf: BytesMut,
    objects: Objects,
}

#[async_trait]
impl SinkUpload for MemoryUpload {
    async fn write(&mut self, data: Bytes) -> Result<()> {
        self.buf.extend_from_slice(&data);
        Ok(())
    }

    async fn complete(self: Box<Self>) -> Result<ObjectMeta> {
        let size = self.buf.len() as u64;
        let t = now();
        self.objects
            .lock()
            .expect("memory sink lock")
            .insert(self.name.clone(), (self.buf.freeze(), t));
        Ok(ObjectMeta {
            name: self.name,
            size,
            last_modified: t,
        })
    }

    async fn abort(self: Box<Self>) -> Result<()> {
        Ok(())
    }
}
