//! Bridges between async byte streams and the blocking tar/zstd/cipher stages.

use std::io::{self, Read, Write};

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use crate::error::{Error, Result};
use crate::sink::ByteStream;

/// What a pumped stream delivered: its length and SHA-256.
#[derive(Debug, Clone)]
pub(crate) struct Pumped {
    /// Ciphertext bytes delivered.
    pub(crate) bytes: u64,
    pub(crate) sha256: [u8; 32],
}

/// Starts a task that pulls `stream`, hashes it and hands the chunks to a blocking reader.
/// The task ends early (without error) if the reader is dropped.
pub(crate) fn pump(
    mut stream: ByteStream,
    depth: usize,
) -> (tokio::task::JoinHandle<Result<Pumped>>, StreamReader) {
    let (tx, rx) = mpsc::channel::<std::result::Result<Bytes, io::Error>>(depth);
    let task = tokio::spawn(async move {
        let mut hasher = Sha256::new();
        let mut bytes = 0u64;
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(chunk) => {
                    hasher.update(&chunk);
                    bytes += chunk.len() as u64;
                    if tx.send(Ok(chunk)).await.is_err() {
                        break;
                    }
                }
                Err(e) => {
                    let msg = e.to_string();
                    let _ = tx.send(Err(io::Error::other(msg))).await;
                    return Err(e);
                }
            }
        }
        Ok(Pumped {
            bytes,
            sha256: hasher.finalize().into(),
        })
    });
    (
        task,
        StreamReader {
            rx,
            cur: Bytes::new(),
        },
    )
}

/// A blocking `Read` over chunks sent by [`pump`]. Must be used from a blocking thread.
pub(crate) struct StreamReader {
    rx: mpsc::Receiver<std::result::Result<Bytes, io::Error>>,
    cur: Bytes,
}

impl Read for StreamReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(b)) => self.cur = b,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur[..n]);
        let _ = self.cur.split_to(n);
        Ok(n)
    }
}

/// A message to a sink task.
pub(crate) enum Msg {
    Data(Bytes),
    End,
}

/// The blocking end of the fan-out: buffers ciphertext into chunks of `chunk` bytes, hashes it,
/// and sends each chunk to every live sink channel (blocking: the slowest live sink sets the
/// pace — back-pressure). A sink whose channel closed (it failed) is dropped from the set; when
/// none is left, writes fail so the archive stops early.
pub(crate) struct FanOut {
    senders: Vec<mpsc::Sender<Msg>>,
    buf: BytesMut,
    chunk: usize,
    hasher: Sha256,
    bytes: u64,
}

impl FanOut {
    pub(crate) fn new(senders: Vec<mpsc::Sender<Msg>>, chunk: usize) -> Self {
        Self {
            senders,
            buf: BytesMut::with_capacity(chunk),
            chunk,
            hasher: Sha256::new(),
            bytes: 0,
        }
    }

    fn send(&mut self, data: &Bytes) -> io::Result<()> {
        self.senders
            .retain(|tx| tx.blocking_send(Msg::Data(data.clone())).is_ok());
        if self.senders.is_empty() {
            return Err(io::Error::other("every sink failed; see the run report"));
        }
        Ok(())
    }

    fn flush_buf(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            let data = self.buf.split().freeze();
            self.send(&data)?;
        }
        Ok(())
    }

    /// Sends the rest and the end marker; returns (ciphertext bytes, SHA-256).
    pub(crate) fn close(mut self) -> io::Result<(u64, [u8; 32])> {
        self.flush_buf()?;
        for tx in &self.senders {
            let _ = tx.blocking_send(Msg::End);
        }
        Ok((self.bytes, self.hasher.finalize().into()))
    }
}

impl Write for FanOut {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.hasher.update(data);
        self.bytes += data.len() as u64;
        let mut rest = data;
        while !rest.is_empty() {
            let room = self.chunk - self.buf.len();
            let take = room.min(rest.len());
            self.buf.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.buf.len() == self.chunk {
                self.flush_buf()?;
                self.buf.reserve(self.chunk);
            }
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Counts bytes written through it.
pub(crate) struct Counting<W> {
    pub(crate) inner: W,
    pub(crate) n: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(data)?;
        self.n += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl<W: crate::archive::FrameSink> crate::archive::FrameSink for Counting<W> {
    fn can_splice(&self) -> bool {
        self.inner.can_splice()
    }

    /// Counts the `plain` (decompressed) bytes: `n` is the tar stream's length.
    fn splice(&mut self, frames: &mut dyn Read, plain: u64) -> io::Result<u64> {
        let copied = self.inner.splice(frames, plain)?;
        self.n += plain;
        Ok(copied)
    }
}

/// Converts a join error of a blocking task into an [`Error`].
pub(crate) fn join_error(e: &tokio::task::JoinError) -> Error {
    Error::Config(format!("internal task failed: {e}"))
}
