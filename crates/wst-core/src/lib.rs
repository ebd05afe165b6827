//! wst-core: the traits and the artifact pipeline of wst.
//!
//! A backup run reads [`Source`]s once, writes a tar stream, compresses it with zstd, seals it
//! with a [`Cipher`] and writes the ciphertext to every [`Sink`] concurrently. The tar ends with a
//! [`Manifest`] (every entry's size and SHA-256); beside the artifact each sink stores a plaintext
//! [`Sidecar`] with non-sensitive facts. [`list_artifact`] browses an artifact (entries,
//! manifest, sidecar) without restoring it; [`restore`] restores all of it, or only the
//! entries an include [`Selection`] selects, into an isolated directory.
#![deny(rustdoc::broken_intra_doc_links)]

// The layout shows the architecture: `contracts` (traits, error, clock), `format` (the
// artifact), `repository` (the owner of a job's artifacts: catalog, evidence, markers, lock,
// audit), `ops` (one module per operation), `impls` (sources and sinks of the core). The
// modules are re-exported at the root so every path stays `crate::<module>`.
mod contracts;
mod format;
mod impls;
mod ops;
mod repository;

use contracts::{cipher, clock, error, progress, retention, sink, source};
use format::{archive, artifact, bridge, entry_rules, manifest, reader, selection, tarstream};
#[cfg(feature = "conformance")]
pub use impls::conformance;
use impls::{files, memory};
use ops::placement;
use ops::{
    compliance, drill, list, pipeline, prune, replicate, report, restore, three_two_one, verify,
};
use repository::{anchor, audit, catalog, erasure, evidence, lock, marker, unavailable};

pub use anchor::{AUDIT_HEAD_FORMAT, AuditCheck, AuditHeadObject, audit_head_object};
pub use artifact::{
    ARTIFACT_EXTENSION, ArtifactName, DEFAULT_PREFIX, SIDECAR_EXTENSION, SIDECAR_FORMAT, Sidecar,
    SidecarVerification, SourceCounts,
};
pub use audit::{
    AUDIT_MAX_FIELD_BYTES, AUDIT_MAX_LIST_ITEMS, AuditEvent, AuditHead, AuditLog, AuditRecord,
    ChainReport, GENESIS,
};
pub use catalog::{Anomaly, CLAIM_EXTENSION, Catalog, CatalogCopy, Trust};
pub use cipher::{Cipher, KeyFingerprint, OpenReader, Opener, SealWriter, Sealer, cipher_error};
pub use clock::Clock;
pub use compliance::{
    CLOCK_SKEW_TOLERANCE, ComplianceOptions, ComplianceReport, RuleStatus, compliance_status,
};
pub use drill::{
    CheckContext, DrillOptions, DrillReport, DrillSelection, EntryRestorer, PostRestoreCheck,
    ProofReport, RestoredEntry, ScratchAccess, SmokeTest, complete_artifacts, restore_drill,
};
pub use erasure::{
    ERASURE_FORMAT, ERASURE_ITEM_MAX_BYTES, ERASURE_MAX_ITEMS, ERASURE_MAX_OBJECTS,
    ERASURE_OBJECT_MAX_BYTES, ERASURE_TEXT_MAX_BYTES, ErasureAnomaly, ErasureCatchUp, ErasureEntry,
    ErasureRecordReport, ErasureRegister, ErasureRequest, ErasureScope, ErasureTemplate,
    ObjectErasure, ReErasure, SUBJECT_MAX_BYTES, SUBJECT_PLACEHOLDER, StatementCount, erase_tree,
    erasure_object, erasure_object_prefix, validate_subject,
};
pub use error::{BoxError, Error, ErrorKind, Result};
pub use evidence::{
    EVIDENCE_MAC, EvidenceKey, SIDECAR_MAX_BYTES, SidecarTrust, open_sidecar, seal_sidecar,
};
pub use files::FileTreeSource;
pub use list::{ArtifactListing, ListedEntry, list_artifact};
pub use lock::{LockHolder, RepositoryLock};
pub use manifest::{MANIFEST_FORMAT, MANIFEST_MAX_BYTES, MANIFEST_PATH, Manifest, ManifestEntry};
pub use marker::{MARKER_FORMAT, MARKER_OBJECT, RepositoryMarker, SinkIdentity};
pub use memory::MemorySink;
pub use pipeline::{BackupJob, BackupJobBuilder};
pub use placement::{
    JURISDICTION_RULE, OFFSITE_REGION_RULE, Placement, SinkPlacement, placement_rules,
};
pub use progress::{NoProgress, Progress, Stage};
pub use prune::{
    DeleteFailure, PruneEntry, PruneOptions, PruneReport, Refusal, prune, prune_audited,
};
pub use reader::ReadLimits;
pub use replicate::{
    CopiedArtifact, ReplicateOptions, ReplicationFailure, ReplicationReport, replicate,
};
pub use report::{RunOutcome, RunReport, SinkOutcome, SourceOutcome};
pub use repository::drill_due::{DrillDue, SCHEMA_DRILL_RULE};
pub use repository::{Repository, RepositoryBuilder};
pub use restore::{BreakGlass, MAX_RESTORE_WARNINGS, RestoreOptions, RestoreReport, restore};
pub use retention::{BackupRecord, Decision, Flag, Period, Reason, RetentionPlan, RetentionPolicy};
pub use selection::Selection;
pub use sink::{
    ByteStream, Medium, ObjectMeta, Sink, SinkExt, SinkInfo, SinkUpload, for_each_chunk,
    validate_object_name,
};
pub use source::{
    EntryKind, EntryMeta, EntryOutcome, EntryWriter, LISTING_MAX_ITEMS, LISTING_MAX_KEY_BYTES,
    LISTING_MAX_VALUE_BYTES, PreparedSource, Source, SourceDescription,
};
pub use three_two_one::{
    CopyStatus, ThreeTwoOneOptions, ThreeTwoOneReport, Violation, check_3_2_1,
};
pub use unavailable::UnavailableSink;
pub use verify::{ArtifactVerifier, Check, EntryCheck, VerificationReport, Verifier};
