//! The [`Sink`] conformance suite (feature `conformance`), for implementors' tests.
//!
//! Modelled on `object_store`'s `src/integration.rs`: each case is a plain
//! `pub async fn case(sink: &dyn Sink)` that panics with a message naming the broken rule, and
//! [`run_all`] runs every case. A sink's integration test calls [`run_all`] (or the cases it
//! supports) on a fresh instance:
//!
//! ```no_run
//! # async fn demo(sink: &dyn wst_core::Sink) {
//! wst_core::conformance::run_all(sink).await;
//! # }
//! ```
//!
//! Every case works under its own name prefix `wst-conformance-{case}-`, asserts only about
//! objects under that prefix and deletes them when it passes, so the suite may run against a
//! shared bucket and cases may run in parallel on one sink.
//!
//! The rules checked are those of the [`Sink`] documentation: atomic put (nothing visible before
//! [`SinkUpload::complete`], nothing after an abort or drop), atomic overwrite, sorted listing of
//! completed objects only, idempotent delete, [`Error::NotFound`] for missing objects,
//! [`Error::InvalidName`] for names [`validate_object_name`](crate::validate_object_name)
//! rejects, and byte-exact round trips of large multi-part objects (checked by SHA-256).

use bytes::Bytes;
use futures::future::join_all;
use sha2::{Digest, Sha256};

use crate::error::Error;
use crate::sink::{ObjectMeta, Sink, SinkExt, SinkUpload, for_each_chunk};

/// Size of the large-object case: 64 MiB plus an odd tail, so that a multipart implementation
/// uses several parts and a final short one.
pub const LARGE_OBJECT_SIZE: u64 = 64 * 1024 * 1024 + 12_345;

/// Runs every case of the suite, one after another.
///
/// # Panics
/// On the first broken rule, with a message naming it.
pub async fn run_all(sink: &dyn Sink) {
    put_get_head_delete(sink).await;
    empty_object(sink).await;
    list_by_prefix_sorted(sink).await;
    overwrite_replaces(sink).await;
    delete_missing_is_ok(sink).await;
    missing_object_not_found(sink).await;
    interrupted_put_invisible(sink).await;
    concurrent_puts(sink).await;
    invalid_names_rejected(sink).await;
    large_multipart_round_trip(sink).await;
    create_if_absent(sink).await;
}

/// [`Sink::create`] is create-if-absent: it stores a new object, refuses an existing one with
/// [`Error::AlreadyExists`](crate::Error::AlreadyExists) leaving it unchanged, and of eight
/// concurrent creates of one name exactly one succeeds (issue 14: two hosts never write one
/// artifact).
///
/// # Panics
/// When a rule is broken.
pub async fn create_if_absent(sink: &dyn Sink) {
    let name = "conformance-create.claim";
    let meta = sink
        .create(name, Bytes::from_static(b"first"))
        .await
        .expect("create of a new name succeeds");
    assert_eq!(meta.size, 5, "create: size");
    let again = sink.create(name, Bytes::from_static(b"second")).await;
    assert!(
        matches!(again, Err(crate::Error::AlreadyExists { .. })),
        "create over an existing object must fail with AlreadyExists, got {again:?}"
    );
    assert_eq!(
        read_all(sink, name).await,
        b"first",
        "create replaced the object"
    );
    sink.delete(name).await.expect("delete");

    let racers = (0..8u8).map(|i| sink.create("conformance-race.claim", Bytes::from(vec![i; 16])));
    let results = join_all(racers).await;
    let won = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(won, 1, "exactly one concurrent create wins: {results:?}");
    assert!(
        results
            .iter()
            .all(|r| r.is_ok() || matches!(r, Err(crate::Error::AlreadyExists { .. }))),
        "the losers fail with AlreadyExists: {results:?}"
    );
    sink.delete("conformance-race.claim").await.expect("delete");
}

/// A stored object round-trips byte for byte; `complete`, `head` and `list` agree on its name
/// and size; after `delete` it is gone.
///
/// # Panics
/// When a rule is broken.
pub async fn put_get_head_delete(sink: &dyn Sink) {
    let name = "wst-conformance-basic-object.bin";
    let data = pseudo_random(1, 100_003);
    let meta = put_chunks(sink, name, &data, &[1, 4096, 65_536, 7]).await;
    assert_eq!(meta.name, name, "complete() must return the object's name");
    assert_eq!(
        meta.size,
        data.len() as u64,
        "complete() must return the stored size"
    );

    let head = sink.head(name).await.expect("head of a completed object");
    assert_eq!(head.name, name, "head() name");
    assert_eq!(head.size, data.len() as u64, "head() size");

    assert_eq!(
        read_all(sink, name).await,
        data,
        "get() must return the stored bytes"
    );

    let listed = sink.list("wst-conformance-basic-").await.expect("list");
    assert_eq!(
        names(&listed),
        [name],
        "list() must show the completed object"
    );
    assert_eq!(listed[0].size, data.len() as u64, "list() size");

    sink.delete(name).await.expect("delete");
    assert_not_found(sink.head(name).await, "head after delete");
    assert_not_found(sink.get(name).await.map(drop), "get after delete");
    let listed = sink.list("wst-conformance-basic-").await.expect("list");
    assert!(
        listed.is_empty(),
        "list() after delete must be empty, got {listed:?}"
    );
}

/// A zero-byte object can be stored, listed and read back.
///
/// # Panics
/// When a rule is broken.
pub async fn empty_object(sink: &dyn Sink) {
    let name = "wst-conformance-empty-object";
    let up = sink.put(name).await.expect("put");
    let meta = up.complete().await.expect("complete of an empty upload");
    assert_eq!(meta.size, 0, "an empty upload stores 0 bytes");
    assert_eq!(
        sink.head(name).await.expect("head").size,
        0,
        "head size of empty object"
    );
    assert!(
        read_all(sink, name).await.is_empty(),
        "get of an empty object"
    );
    sink.delete(name).await.expect("delete");
}

/// `list(prefix)` returns exactly the completed objects starting with `prefix`, sorted by name;
/// the empty prefix lists them all.
///
/// # Panics
/// When a rule is broken.
pub async fn list_by_prefix_sorted(sink: &dyn Sink) {
    let base = "wst-conformance-list-";
    // Inserted out of order on purpose.
    let all = [
        "wst-conformance-list-b-2",
        "wst-conformance-list-a-1",
        "wst-conformance-list-b-1",
        "wst-conformance-list-a-10",
        "wst-conformance-list-c",
    ];
    for (i, n) in all.iter().enumerate() {
        sink.put_bytes(n, Bytes::from(vec![b'x'; i + 1]))
            .await
            .expect("put_bytes");
    }
    let listed = sink.list(base).await.expect("list");
    assert_eq!(
        names(&listed),
        [
            "wst-conformance-list-a-1",
            "wst-conformance-list-a-10",
            "wst-conformance-list-b-1",
            "wst-conformance-list-b-2",
            "wst-conformance-list-c",
        ],
        "list() must return every object under the prefix, sorted by name"
    );
    let sizes: Vec<u64> = listed.iter().map(|m| m.size).collect();
    assert_eq!(sizes, [2, 4, 3, 1, 5], "list() sizes");

    let b = sink.list("wst-conformance-list-b").await.expect("list b");
    assert_eq!(
        names(&b),
        ["wst-conformance-list-b-1", "wst-conformance-list-b-2"],
        "list(prefix) must filter by prefix"
    );
    let none = sink
        .list("wst-conformance-list-zzz")
        .await
        .expect("list none");
    assert!(
        none.is_empty(),
        "a prefix matching nothing lists nothing, got {none:?}"
    );

    let everything = sink.list("").await.expect("list all");
    let all_names = names(&everything);
    let in_all = all_names.iter().filter(|n| n.starts_with(base)).count();
    assert_eq!(in_all, all.len(), "list(\"\") must include every object");
    let mut sorted = all_names.clone();
    sorted.sort_unstable();
    assert_eq!(all_names, sorted, "list(\"\") must be sorted by name");

    for n in all {
        sink.delete(n).await.expect("delete");
    }
}

/// A completed put replaces an existing object of the same name; the listing shows one object
/// with the new size and `get` returns the new bytes.
///
/// # Panics
/// When a rule is broken.
pub async fn overwrite_replaces(sink: &dyn Sink) {
    let name = "wst-conformance-overwrite-object";
    sink.put_bytes(name, Bytes::from_static(b"first version, longer"))
        .await
        .expect("first put");
    sink.put_bytes(name, Bytes::from_static(b"second"))
        .await
        .expect("second put");
    assert_eq!(read_all(sink, name).await, b"second", "get after overwrite");
    let listed = sink.list("wst-conformance-overwrite-").await.expect("list");
    assert_eq!(
        names(&listed),
        [name],
        "an overwrite must not duplicate the object"
    );
    assert_eq!(listed[0].size, 6, "list size after overwrite");
    assert_eq!(
        sink.head(name).await.expect("head").size,
        6,
        "head size after overwrite"
    );
    sink.delete(name).await.expect("delete");
}

/// Deleting an object that does not exist succeeds (idempotent, as in object stores), also twice.
///
/// # Panics
/// When a rule is broken.
pub async fn delete_missing_is_ok(sink: &dyn Sink) {
    let name = "wst-conformance-delete-missing";
    sink.delete(name)
        .await
        .expect("deleting a missing object must be Ok");
    sink.put_bytes(name, Bytes::from_static(b"x"))
        .await
        .expect("put");
    sink.delete(name).await.expect("delete");
    sink.delete(name)
        .await
        .expect("deleting an already deleted object must be Ok");
}

/// `get` and `head` of a missing object fail with [`Error::NotFound`] naming the object.
///
/// # Panics
/// When a rule is broken.
pub async fn missing_object_not_found(sink: &dyn Sink) {
    let name = "wst-conformance-missing-object";
    match sink.head(name).await {
        Err(Error::NotFound { name: n, sink: s }) => {
            assert_eq!(n, name, "NotFound must name the object");
            assert_eq!(s, sink.info().name, "NotFound must name the sink");
        }
        other => panic!("head of a missing object must be NotFound, got {other:?}"),
    }
    assert_not_found(sink.get(name).await.map(drop), "get of a missing object");
}

/// An upload that is dropped or aborted mid-write leaves nothing under its final name, is never
/// listed while in progress, and an interrupted overwrite leaves the previous version intact.
///
/// # Panics
/// When a rule is broken.
pub async fn interrupted_put_invisible(sink: &dyn Sink) {
    let prefix = "wst-conformance-interrupted-";
    let dropped = "wst-conformance-interrupted-dropped";
    let aborted = "wst-conformance-interrupted-aborted";
    let kept = "wst-conformance-interrupted-kept";
    let chunk = Bytes::from(pseudo_random(2, 1024 * 1024));

    // In progress: not visible.
    let mut up = sink.put(dropped).await.expect("put");
    for _ in 0..6 {
        up.write(chunk.clone()).await.expect("write");
    }
    assert_not_found(sink.head(dropped).await, "head of an upload in progress");
    let listed = sink.list(prefix).await.expect("list");
    assert!(
        listed.is_empty(),
        "an upload in progress must not be listed, got {listed:?}"
    );
    // Dropped without complete: never visible.
    drop(up);
    assert_not_found(sink.head(dropped).await, "head after a dropped upload");
    assert_not_found(
        sink.get(dropped).await.map(drop),
        "get after a dropped upload",
    );

    // Aborted: never visible.
    let mut up = sink.put(aborted).await.expect("put");
    up.write(chunk.clone()).await.expect("write");
    up.abort().await.expect("abort");
    assert_not_found(sink.head(aborted).await, "head after abort");

    // An interrupted overwrite keeps the previous version.
    sink.put_bytes(kept, Bytes::from_static(b"previous version"))
        .await
        .expect("put_bytes");
    let mut up = sink.put(kept).await.expect("put");
    up.write(chunk.clone()).await.expect("write");
    drop(up);
    let mut up = sink.put(kept).await.expect("put");
    up.write(chunk).await.expect("write");
    up.abort().await.expect("abort");
    assert_eq!(
        read_all(sink, kept).await,
        b"previous version",
        "an interrupted overwrite must leave the previous version intact"
    );

    let listed = sink.list(prefix).await.expect("list");
    assert_eq!(
        names(&listed),
        [kept],
        "only the completed object may be listed"
    );
    sink.delete(kept).await.expect("delete");
}

/// Several uploads of different objects in progress at once, their writes interleaved and
/// issued concurrently, each ending with exactly its own content.
///
/// # Panics
/// When a rule is broken.
pub async fn concurrent_puts(sink: &dyn Sink) {
    const N: usize = 8;
    const CHUNK: usize = 32 * 1024;
    let data: Vec<(String, Vec<u8>)> = (0..N)
        .map(|i| {
            (
                format!("wst-conformance-concurrent-{i:02}"),
                pseudo_random(100 + i as u64, 300_000 + i * 1000),
            )
        })
        .collect();
    let mut uploads: Vec<Box<dyn SinkUpload>> =
        join_all(data.iter().map(|(name, _)| sink.put(name)))
            .await
            .into_iter()
            .map(|r| r.expect("put"))
            .collect();
    let rounds = data
        .iter()
        .map(|(_, d)| d.len().div_ceil(CHUNK))
        .max()
        .unwrap_or(0);
    for round in 0..rounds {
        let writes = uploads.iter_mut().zip(&data).filter_map(|(up, (_, d))| {
            let start = round * CHUNK;
            (start < d.len()).then(|| {
                up.write(Bytes::copy_from_slice(
                    &d[start..(start + CHUNK).min(d.len())],
                ))
            })
        });
        for r in join_all(writes).await {
            r.expect("concurrent write");
        }
    }
    let metas = join_all(uploads.into_iter().map(SinkUpload::complete)).await;
    for (meta, (name, d)) in metas.into_iter().zip(&data) {
        let meta = meta.expect("concurrent complete");
        assert_eq!(&meta.name, name, "complete() name of a concurrent upload");
        assert_eq!(meta.size, d.len() as u64, "complete() size of `{name}`");
    }
    let listed = sink
        .list("wst-conformance-concurrent-")
        .await
        .expect("list");
    assert_eq!(listed.len(), N, "every concurrent upload must be listed");
    for (name, d) in &data {
        assert_eq!(
            &read_all(sink, name).await,
            d,
            "content of concurrent upload `{name}`"
        );
    }
    for (name, _) in &data {
        sink.delete(name).await.expect("delete");
    }
}

/// Names that are not plain object names are rejected with [`Error::InvalidName`] by every
/// operation that takes a name.
///
/// # Panics
/// When a rule is broken.
pub async fn invalid_names_rejected(sink: &dyn Sink) {
    let long = "a".repeat(256);
    for bad in [
        "",
        ".hidden",
        "..",
        ".",
        "a/b",
        "../escape",
        "a\\b",
        "line\nbreak",
        "nul\0byte",
        long.as_str(),
    ] {
        assert_invalid(sink.put(bad).await.map(drop), "put", bad);
        assert_invalid(sink.get(bad).await.map(drop), "get", bad);
        assert_invalid(sink.head(bad).await.map(drop), "head", bad);
        assert_invalid(sink.delete(bad).await, "delete", bad);
    }
}

/// A [`LARGE_OBJECT_SIZE`]-byte object (more than 64 MiB, written in 1 MiB chunks plus odd
/// pieces) round-trips with the same SHA-256, read back as a stream.
///
/// # Panics
/// When a rule is broken.
pub async fn large_multipart_round_trip(sink: &dyn Sink) {
    let name = "wst-conformance-large-object";
    let mut up = sink.put(name).await.expect("put");
    let mut hasher = Sha256::new();
    let mut rng = SplitMix64(42);
    let mut written = 0u64;
    let mut i = 0u64;
    while written < LARGE_OBJECT_SIZE {
        // Mostly 1 MiB chunks with an occasional odd-sized one.
        let want = if i % 7 == 3 { 65_537 } else { 1024 * 1024 };
        let len = want.min(LARGE_OBJECT_SIZE - written);
        let mut chunk = vec![0u8; len as usize];
        rng.fill(&mut chunk);
        hasher.update(&chunk);
        up.write(Bytes::from(chunk)).await.expect("write");
        written += len;
        i += 1;
    }
    let expected = hex::encode(hasher.finalize());
    let meta = up.complete().await.expect("complete of a large object");
    assert_eq!(
        meta.size, LARGE_OBJECT_SIZE,
        "complete() size of the large object"
    );
    assert_eq!(
        sink.head(name).await.expect("head").size,
        LARGE_OBJECT_SIZE,
        "head() size of the large object"
    );

    let mut hasher = Sha256::new();
    let stream = sink.get(name).await.expect("get");
    let n = for_each_chunk(stream, |c| hasher.update(c))
        .await
        .expect("reading the large object");
    assert_eq!(n, LARGE_OBJECT_SIZE, "bytes read back");
    assert_eq!(
        hex::encode(hasher.finalize()),
        expected,
        "SHA-256 of the large object read back"
    );
    sink.delete(name).await.expect("delete");
}

// ----- helpers -----

/// Stores `data` under `name`, cutting it into pieces of the given sizes (cycled).
async fn put_chunks(sink: &dyn Sink, name: &str, data: &[u8], sizes: &[usize]) -> ObjectMeta {
    let mut up: Box<dyn SinkUpload> = sink.put(name).await.expect("put");
    let mut rest = data;
    for size in sizes.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (head, tail) = rest.split_at((*size).min(rest.len()));
        up.write(Bytes::copy_from_slice(head)).await.expect("write");
        rest = tail;
    }
    up.complete().await.expect("complete")
}

async fn read_all(sink: &dyn Sink, name: &str) -> Vec<u8> {
    sink.get_bytes(name, u64::MAX)
        .await
        .unwrap_or_else(|e| panic!("get `{name}`: {e}"))
        .to_vec()
}

fn names(list: &[ObjectMeta]) -> Vec<&str> {
    list.iter().map(|m| m.name.as_str()).collect()
}

fn assert_not_found<T: std::fmt::Debug>(r: crate::Result<T>, what: &str) {
    match r {
        Err(Error::NotFound { .. }) => {}
        other => panic!("{what}: expected Error::NotFound, got {other:?}"),
    }
}

fn assert_invalid<T: std::fmt::Debug>(r: crate::Result<T>, op: &str, name: &str) {
    match r {
        Err(Error::InvalidName { .. }) => {}
        other => panic!("{op}({name:?}): expected Error::InvalidName, got {other:?}"),
    }
}

/// Deterministic test data: `len` bytes from seed `seed`.
fn pseudo_random(seed: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    SplitMix64(seed).fill(&mut v);
    v
}

/// `SplitMix64`: a tiny, well-known generator; good enough for incompressible test data.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let x = self.next().to_le_bytes();
            chunk.copy_from_slice(&x[..chunk.len()]);
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::memory::MemorySink;

    /// wst-core's own `MemorySink` against the whole suite.
    #[tokio::test]
    async fn memory_sink_conforms() {
        super::run_all(&MemorySink::new("memory")).await;
    }
}
