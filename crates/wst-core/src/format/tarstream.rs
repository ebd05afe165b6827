//! A bounded tar reader: parses every 512-byte header block itself and checks the size that a
//! GNU long name (`L`), GNU long link (`K`), PAX extended header (`x`) or PAX global header (`g`)
//! claims *before* reading or allocating anything for it (the `tar` crate reads such a record
//! into a `Vec` of whatever size the header claims: a 37 KB artifact claiming a 1 GiB long name
//! cost 3.6 GB of memory). Only the per-block field parsing of [`tar::Header`] is reused.
//!
//! Entry content is never buffered: [`TarStream`] implements [`Read`] over the current entry's
//! content (at most its declared size, straight from the decompressor), so a 10 GiB size claim
//! costs nothing until bytes actually arrive. The rules for what an entry may be (path safety,
//! kinds, duplicates, links) are in [`crate::entry_rules`]; this module only frames the stream.
//!
//! Layout accepted (GNU tar and POSIX pax as written by wst and by common tools): header blocks
//! with a valid checksum; `L`/`K`/`x` extension records directly before the entry they describe
//! (at most one of each); `g` records anywhere before an entry (ignored, except that they may
//! not set `path`, `linkpath` or `size`); the end of the archive is the first all-zero header
//! block (or the end of the input at a header boundary, as GNU tar and the `tar` crate accept).
//! GNU sparse entries (`S`, `GNU.sparse.*` records) are refused: wst never writes them.

use std::io::{self, Read};

use crate::error::quote_name;
use crate::reader::ReadLimits;

/// Tar block size, bytes.
const BLOCK: u64 = 512;

/// One header as read, extension records applied. Content follows through [`TarStream`]'s
/// [`Read`] implementation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawEntry {
    /// Path bytes (long name, PAX `path`, or the header's name with its ustar prefix).
    pub(crate) path: Vec<u8>,
    /// Link target bytes (long link, PAX `linkpath` or the header's link name); empty when none.
    pub(crate) link: Vec<u8>,
    /// The header's type flag byte (`b'0'`, `b'5'`, …).
    pub(crate) typeflag: u8,
    /// Content size, bytes (PAX `size` when present).
    pub(crate) size: u64,
    /// Permission bits as stored (`0o7777` and above).
    pub(crate) mode: u32,
    /// Modification time, seconds since the Unix epoch (PAX `mtime` when present).
    pub(crate) mtime: i64,
}

/// Why framing failed.
#[derive(Debug)]
pub(crate) enum TarError {
    /// Reading the underlying stream failed (the cipher's errors travel this way).
    Io(io::Error),
    /// The bytes are not a tar stream wst accepts.
    Malformed(String),
    /// A metadata item is larger (or more numerous) than its [`ReadLimits`] cap.
    Limit {
        /// What was counted, e.g. `GNU long name size (bytes)`.
        what: &'static str,
        /// The claimed value.
        value: u64,
        /// The cap.
        limit: u64,
    },
}

impl From<io::Error> for TarError {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

/// Attributes taken from a PAX extended header.
#[derive(Default)]
struct Pax {
    path: Option<Vec<u8>>,
    linkpath: Option<Vec<u8>>,
    size: Option<u64>,
    mtime: Option<i64>,
}

/// A tar stream read one header at a time, with every metadata item capped before allocation.
pub(crate) struct TarStream<R: Read> {
    inner: R,
    limits: ReadLimits,
    /// Content bytes of the current entry not yet read.
    remaining: u64,
    /// Padding bytes after the current entry's content.
    padding: u64,
    /// PAX global headers seen.
    globals: u64,
    /// The end-of-archive block was read.
    ended: bool,
}

fn padding_of(size: u64) -> u64 {
    (BLOCK - size % BLOCK) % BLOCK
}

impl<R: Read> TarStream<R> {
    pub(crate) fn new(inner: R, limits: ReadLimits) -> Self {
        Self {
            inner,
            limits,
            remaining: 0,
            padding: 0,
            globals: 0,
            ended: false,
        }
    }

    /// The underlying reader, positioned after the end-of-archive block (or wherever reading
    /// stopped).
    pub(crate) fn into_inner(self) -> R {
        self.inner
    }

    /// Discards `n` bytes of the underlying stream (no allocation proportional to `n`).
    fn discard(&mut self, n: u64) -> Result<(), TarError> {
        if n == 0 {
            return Ok(());
        }
        let copied = io::copy(&mut (&mut self.inner).take(n), &mut io::sink())?;
        if copied < n {
            return Err(TarError::Malformed(
                "the archive ends inside an entry's content".into(),
            ));
        }
        Ok(())
    }

    /// Reads one header block. `Ok(None)` at the end of the archive (a zero block, or the end
    /// of input exactly at a block boundary).
    fn read_block(&mut self) -> Result<Option<[u8; 512]>, TarError> {
        let mut block = [0u8; 512];
        let mut filled = 0;
        while filled < block.len() {
            match self.inner.read(&mut block[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(TarError::Io(e)),
            }
        }
        if filled == 0 {
            return Ok(None);
        }
        if filled < block.len() {
            return Err(TarError::Malformed(
                "the archive ends inside a header block".into(),
            ));
        }
        if block.iter().all(|b| *b == 0) {
            return Ok(None);
        }
        // The checksum: the sum of all bytes with the checksum field taken as spaces.
        let sum: u32 = block[..148]
            .iter()
            .chain(&block[156..])
            .map(|b| u32::from(*b))
            .sum::<u32>()
            + 8 * u32::from(b' ');
        let stored = tar::Header::from_byte_slice(&block)
            .cksum()
            .map_err(|_| TarError::Malformed("a header's checksum field is not a number".into()))?;
        if sum != stored {
            return Err(TarError::Malformed(
                "a header's checksum does not match".into(),
            ));
        }
        Ok(Some(block))
    }

    /// Reads an extension record of `size` bytes (already checked against its cap) and the
    /// padding after it.
    fn read_record(&mut self, size: u64) -> Result<Vec<u8>, TarError> {
        // `size` is at most a few KiB to 64 KiB here (checked by the caller).
        let mut buf = vec![0u8; usize::try_from(size).unwrap_or(0)];
        self.inner.read_exact(&mut buf).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                TarError::Malformed("the archive ends inside an extension record".into())
            } else {
                TarError::Io(e)
            }
        })?;
        self.discard(padding_of(size))?;
        Ok(buf)
    }

    fn limit(what: &'static str, value: u64, limit: u64) -> Result<(), TarError> {
        if value > limit {
            return Err(TarError::Limit { what, value, limit });
        }
        Ok(())
    }

    /// Moves to the next entry: skips what is left of the current one, reads its extension
    /// records (each capped before it is read) and its header. `Ok(None)` at the end.
    pub(crate) fn next_entry(&mut self) -> Result<Option<RawEntry>, TarError> {
        if self.ended {
            return Ok(None);
        }
        let rest = self.remaining + self.padding;
        self.remaining = 0;
        self.padding = 0;
        self.discard(rest)?;
        let mut long_name: Option<Vec<u8>> = None;
        let mut long_link: Option<Vec<u8>> = None;
        let mut pax: Option<Pax> = None;
        loop {
            let Some(block) = self.read_block()? else {
                self.ended = true;
                if long_name.is_some() || long_link.is_some() || pax.is_some() {
                    return Err(TarError::Malformed(
                        "extension records at the end of the archive describe no entry".into(),
                    ));
                }
                return Ok(None);
            };
            let header = tar::Header::from_byte_slice(&block);
            let typeflag = block[156];
            let size = header
                .entry_size()
                .map_err(|_| TarError::Malformed("a header's size field is not a number".into()))?;
            match typeflag {
                b'L' | b'K' => {
                    let (slot, what, cap) = if typeflag == b'L' {
                        (
                            &mut long_name,
                            "GNU long name size (bytes)",
                            self.limits.max_path_bytes,
                        )
                    } else {
                        (
                            &mut long_link,
                            "GNU long link name size (bytes)",
                            self.limits.max_link_bytes,
                        )
                    };
                    if slot.is_some() {
                        return Err(TarError::Malformed(
                            "two GNU long name records describe the same entry".into(),
                        ));
                    }
                    // GNU tar stores the name with a terminating NUL.
                    Self::limit(what, size, cap.saturating_add(1))?;
                    let mut name = self.read_record(size)?;
                    while name.last() == Some(&0) {
                        name.pop();
                    }
                    *slot = Some(name);
                }
                b'x' | b'X' => {
                    if pax.is_some() {
                        return Err(TarError::Malformed(
                            "two PAX extended headers describe the same entry".into(),
                        ));
                    }
                    Self::limit(
                        "PAX extended header size (bytes)",
                        size,
                        self.limits.max_pax_header_bytes,
                    )?;
                    let record = self.read_record(size)?;
                    pax = Some(self.parse_pax(&record, false)?);
                }
                b'g' => {
                    self.globals += 1;
                    Self::limit(
                        "PAX global header count",
                        self.globals,
                        self.limits.max_pax_global_headers,
                    )?;
                    Self::limit(
                        "PAX global header size (bytes)",
                        size,
                        self.limits.max_pax_header_bytes,
                    )?;
                    let record = self.read_record(size)?;
                    self.parse_pax(&record, true)?;
                }
                _ => {
                    let pax = pax.unwrap_or_default();
                    let path = match (pax.path, long_name) {
                        (Some(p), _) | (None, Some(p)) => p,
                        (None, None) => header.path_bytes().into_owned(),
                    };
                    Self::limit(
                        "entry path length (bytes)",
                        path.len() as u64,
                        self.limits.max_path_bytes,
                    )?;
                    let link = match (pax.linkpath, long_link) {
                        (Some(l), _) | (None, Some(l)) => l,
                        (None, None) => header
                            .link_name_bytes()
                            .map(std::borrow::Cow::into_owned)
                            .unwrap_or_default(),
                    };
                    Self::limit(
                        "link target length (bytes)",
                        link.len() as u64,
                        self.limits.max_link_bytes,
                    )?;
                    let size = pax.size.unwrap_or(size);
                    let what = || quote_name(&path);
                    let mode = header.mode().map_err(|_| {
                        TarError::Malformed(format!("`{}`: the mode field is not a number", what()))
                    })?;
                    let mtime = match pax.mtime {
                        Some(t) => t,
                        None => header.mtime().map_or_else(
                            |_| {
                                Err(TarError::Malformed(format!(
                                    "`{}`: the mtime field is not a number",
                                    what()
                                )))
                            },
                            |m| Ok(i64::try_from(m).unwrap_or(i64::MAX)),
                        )?,
                    };
                    self.remaining = size;
                    self.padding = padding_of(size);
                    return Ok(Some(RawEntry {
                        path,
                        link,
                        typeflag,
                        size,
                        mode,
                        mtime,
                    }));
                }
            }
        }
    }

    /// Parses PAX records (`"<len> <key>=<value>\n"`), at most
    /// [`ReadLimits::max_pax_records`] of them. A global header may not set `path`,
    /// `linkpath` or `size` (wst does not apply global attributes; GNU tar would).
    fn parse_pax(&self, mut data: &[u8], global: bool) -> Result<Pax, TarError> {
        let bad = |why: &str| TarError::Malformed(format!("PAX header: {why}"));
        let mut pax = Pax::default();
        let mut count = 0u64;
        while !data.is_empty() {
            count += 1;
            Self::limit("PAX records per header", count, self.limits.max_pax_records)?;
            let space = data
                .iter()
                .take(20)
                .position(|b| *b == b' ')
                .ok_or_else(|| bad("a record has no length"))?;
            let len: usize = std::str::from_utf8(&data[..space])
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| bad("a record length is not a number"))?;
            if len <= space + 1 || len > data.len() || data[len - 1] != b'\n' {
                return Err(bad("a record length does not match the record"));
            }
            let record = &data[space + 1..len - 1];
            data = &data[len..];
            let eq = record
                .iter()
                .position(|b| *b == b'=')
                .ok_or_else(|| bad("a record has no `=`"))?;
            let (key, value) = (&record[..eq], &record[eq + 1..]);
            if key.starts_with(b"GNU.sparse.") {
                return Err(bad("GNU sparse files are not supported"));
            }
            if global && matches!(key, b"path" | b"linkpath" | b"size") {
                return Err(bad(
                    "a global header sets `path`, `linkpath` or `size`, which wst does not apply",
                ));
            }
            match key {
                b"path" => {
                    Self::limit(
                        "entry path length (bytes)",
                        value.len() as u64,
                        self.limits.max_path_bytes,
                    )?;
                    pax.path = Some(value.to_vec());
                }
                b"linkpath" => {
                    Self::limit(
                        "link target length (bytes)",
                        value.len() as u64,
                        self.limits.max_link_bytes,
                    )?;
                    pax.linkpath = Some(value.to_vec());
                }
                b"size" => {
                    pax.size = Some(
                        std::str::from_utf8(value)
                            .ok()
                            .and_then(|s| s.parse().ok())
                            .ok_or_else(|| bad("`size` is not a number"))?,
                    );
                }
                b"mtime" => {
                    // Decimal seconds, possibly negative, possibly with a fraction.
                    let s = std::str::from_utf8(value).unwrap_or("");
                    let whole = s.split('.').next().unwrap_or("");
                    let secs: i64 = whole.parse().map_err(|_| bad("`mtime` is not a number"))?;
                    pax.mtime = Some(secs);
                }
                _ => {}
            }
        }
        Ok(pax)
    }
}

/// The current entry's content: at most its declared size.
impl<R: Read> Read for TarStream<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the archive ends inside an entry's content",
            ));
        }
        self.remaining -= n as u64;
        Ok(n)
    }
}
