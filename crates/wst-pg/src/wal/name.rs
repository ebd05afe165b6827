//! WAL file names (as PostgreSQL writes them) and the names of their objects on a sink
//! (`docs/WAL.md` §1).

use std::fmt;

use crate::wal::error::WalError;

/// Between the repository prefix and the WAL file name in an object name: `.wal.`. A prefix
/// holds only ASCII letters, digits, `-` and `_`, so the first `.` ends it; artifact objects
/// (`{prefix}-YYYYMMDD-HHMMSS.tar.zst.wst`) never start with `{prefix}.`, so a listing of
/// `{prefix}-` (the artifact catalog) never returns WAL objects and a listing of
/// [`wal_object_prefix`] never returns artifacts (issue 16).
pub const WAL_OBJECT_INFIX: &str = ".wal.";

/// The extension of a WAL object: zstd frames sealed in the `wst-aead-v1` format.
pub const WAL_OBJECT_EXTENSION: &str = ".zst.wst";

/// What kind of file PostgreSQL hands to `archive_command` / asks of `restore_command`
/// (PostgreSQL's `xlog_internal.h`: `IsXLogFileName`, `IsPartialXLogFileName`,
/// `IsTLHistoryFileName`, `IsBackupHistoryFileName`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum WalFileKind {
    /// A WAL segment: 24 upper-case hex digits, timeline ‖ log ‖ segment (`000000010000000000000003`).
    Segment,
    /// The last, incomplete segment of a timeline, archived at promotion
    /// (`000000010000000000000003.partial`).
    Partial,
    /// A timeline history file (`00000002.history`).
    History,
    /// A backup history file written by `pg_backup_stop` (`000000010000000000000003.00000028.backup`).
    BackupHistory,
}

impl fmt::Display for WalFileKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Segment => "segment",
            Self::Partial => "partial segment",
            Self::History => "timeline history file",
            Self::BackupHistory => "backup history file",
        })
    }
}

/// A validated WAL file name: one of the four [`WalFileKind`]s, upper-case hex exactly as
/// PostgreSQL writes them, timeline ≥ 1. Ordering is by the name, which orders a timeline's
/// segments by LSN.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WalFileName {
    name: String,
    kind: WalFileKind,
}

fn is_upper_hex(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'A'..=b'F'))
}

impl WalFileName {
    /// Parses a WAL file name as PostgreSQL passes it in `%f` (or the last component of `%p`).
    ///
    /// # Errors
    /// [`WalError::InvalidName`] for anything else (lower-case hex, another suffix, timeline 0,
    /// a path): such a file is not WAL, and wst neither archives nor fetches it.
    pub fn parse(name: &str) -> Result<Self, WalError> {
        let invalid = |reason: &str| WalError::InvalidName {
            name: crate::wal::quote(name),
            reason: reason.to_owned(),
        };
        let segment_like = |s: &str| s.len() == 24 && is_upper_hex(s);
        let kind = if segment_like(name) {
            WalFileKind::Segment
        } else if let Some(seg) = name.strip_suffix(".partial") {
            if !segment_like(seg) {
                return Err(invalid(
                    "a `.partial` file is 24 upper-case hex digits + `.partial`",
                ));
            }
            WalFileKind::Partial
        } else if let Some(tli) = name.strip_suffix(".history") {
            if !(tli.len() == 8 && is_upper_hex(tli)) {
                return Err(invalid(
                    "a history file is 8 upper-case hex digits + `.history`",
                ));
            }
            WalFileKind::History
        } else if let Some(stem) = name.strip_suffix(".backup") {
            let ok = stem.len() == 33
                && stem.as_bytes()[24] == b'.'
                && segment_like(&stem[..24])
                && is_upper_hex(&stem[25..]);
            if !ok {
                return Err(invalid(
                    "a backup history file is 24 upper-case hex digits, `.`, 8 upper-case hex digits, `.backup`",
                ));
            }
            WalFileKind::BackupHistory
        } else {
            return Err(invalid(
                "expected a WAL segment (24 upper-case hex digits), a `.partial` segment, a \
                 `TTTTTTTT.history` or a `….backup` file",
            ));
        };
        let parsed = Self {
            name: name.to_owned(),
            kind,
        };
        if parsed.timeline() == 0 {
            return Err(invalid("timeline 0 does not exist (timelines start at 1)"));
        }
        Ok(parsed)
    }

    /// The file name, e.g. `000000010000000000000003`.
    pub fn as_str(&self) -> &str {
        &self.name
    }

    /// The kind of file.
    pub fn kind(&self) -> WalFileKind {
        self.kind
    }

    /// The timeline (the first 8 hex digits).
    pub fn timeline(&self) -> u32 {
        u32::from_str_radix(&self.name[..8], 16).expect("validated hex")
    }

    /// For segments, partial segments and backup history files: the segment's `(log, seg)`
    /// numbers (hex digits 9–16 and 17–24), e.g. for later continuity checks. `None` for a
    /// history file.
    pub fn log_and_segment(&self) -> Option<(u32, u32)> {
        if self.kind == WalFileKind::History {
            return None;
        }
        let log = u32::from_str_radix(&self.name[8..16], 16).expect("validated hex");
        let seg = u32::from_str_radix(&self.name[16..24], 16).expect("validated hex");
        Some((log, seg))
    }

    /// The object name on a sink: `{prefix}.wal.{name}.zst.wst` (`docs/WAL.md` §1).
    pub fn object_name(&self, prefix: &str) -> String {
        format!(
            "{prefix}{WAL_OBJECT_INFIX}{}{WAL_OBJECT_EXTENSION}",
            self.name
        )
    }

    /// The WAL file name of the object `object` of repository `prefix`, or `None` when
    /// `object` is not such a WAL object (an artifact, a sidecar, another prefix's WAL).
    pub fn from_object_name(object: &str, prefix: &str) -> Option<Self> {
        let rest = object
            .strip_prefix(prefix)?
            .strip_prefix(WAL_OBJECT_INFIX)?
            .strip_suffix(WAL_OBJECT_EXTENSION)?;
        Self::parse(rest).ok()
    }
}

/// The listing prefix of every WAL object of repository `prefix`: `{prefix}.wal.`. Append a
/// timeline's 8 hex digits to list one timeline (its history file included).
pub fn wal_object_prefix(prefix: &str) -> String {
    format!("{prefix}{WAL_OBJECT_INFIX}")
}

impl fmt::Display for WalFileName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

impl fmt::Debug for WalFileName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WalFileName({})", self.name)
    }
}

impl std::str::FromStr for WalFileName {
    type Err = WalError;

    fn from_str(s: &str) -> Result<Self, WalError> {
        Self::parse(s)
    }
}

/// Checks a repository prefix: 1–64 ASCII letters, digits, `-`, `_` (the artifact prefix rule
/// of `docs/EVIDENCE.md` §1).
pub(crate) fn validate_prefix(prefix: &str) -> Result<(), WalError> {
    if prefix.is_empty()
        || prefix.len() > 64
        || !prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(WalError::InvalidName {
            name: crate::wal::quote(prefix),
            reason: "a repository prefix is 1 to 64 ASCII letters, digits, `-` or `_`".into(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_four_kinds_parse_and_everything_else_is_refused() {
        for (name, kind, tli) in [
            ("000000010000000000000003", WalFileKind::Segment, 1),
            ("0000000A00000001000000FF", WalFileKind::Segment, 10),
            ("000000010000000000000003.partial", WalFileKind::Partial, 1),
            ("00000002.history", WalFileKind::History, 2),
            (
                "000000010000000000000003.00000028.backup",
                WalFileKind::BackupHistory,
                1,
            ),
        ] {
            let n = WalFileName::parse(name).unwrap();
            assert_eq!(n.kind(), kind, "{name}");
            assert_eq!(n.timeline(), tli, "{name}");
            assert_eq!(n.as_str(), name);
        }
        for bad in [
            "",
            "00000001000000000000000",         // 23 digits
            "0000000100000000000000030",       // 25 digits
            "00000001000000000000000a",        // lower case
            "000000000000000000000003",        // timeline 0
            "00000000.history",                // timeline 0
            "0000002.history",                 // 7 digits
            "000000010000000000000003.partia", // wrong suffix
            "000000010000000000000003.0000028.backup",
            "000000010000000000000003-00000028.backup",
            "../000000010000000000000003",
            "pg_wal/000000010000000000000003",
            "RECOVERYXLOG",
            "archive_status",
            "000000010000000000000003.ready",
        ] {
            assert!(WalFileName::parse(bad).is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn segment_numbers() {
        let n = WalFileName::parse("0000000200000003000000FE").unwrap();
        assert_eq!(n.log_and_segment(), Some((3, 0xFE)));
        assert_eq!(
            WalFileName::parse("00000002.history")
                .unwrap()
                .log_and_segment(),
            None
        );
    }

    #[test]
    fn object_names_round_trip_and_never_look_like_artifacts() {
        let n = WalFileName::parse("000000010000000000000003").unwrap();
        let o = n.object_name("wst-backup");
        assert_eq!(o, "wst-backup.wal.000000010000000000000003.zst.wst");
        assert_eq!(WalFileName::from_object_name(&o, "wst-backup"), Some(n));
        assert!(o.starts_with(&wal_object_prefix("wst-backup")));
        // Not in the artifact catalog's listing, and not an artifact name.
        assert!(!o.starts_with("wst-backup-"));
        assert!(wst_core::ArtifactName::parse(&o).is_err());
        wst_core::validate_object_name(&o).unwrap();
        // Another prefix's WAL, artifacts and sidecars are not WAL objects of this prefix.
        assert_eq!(WalFileName::from_object_name(&o, "wst"), None);
        assert_eq!(WalFileName::from_object_name(&o, "wst-backup-x"), None);
        for other in [
            "wst-backup-20261121-053804.tar.zst.wst",
            "wst-backup-20261121-053804.sidecar.json",
            "wst-repository.json",
            "wst-backup.wal.000000010000000000000003.zst",
            "wst-backup.wal.00000001000000000000000x.zst.wst",
        ] {
            assert_eq!(WalFileName::from_object_name(other, "wst-backup"), None);
        }
        let h = WalFileName::parse("00000002.history").unwrap();
        assert_eq!(
            WalFileName::from_object_name(&h.object_name("p"), "p"),
            Some(h)
        );
    }

    #[test]
    fn prefixes() {
        validate_prefix("wst-backup").unwrap();
        validate_prefix("a_b-1").unwrap();
        for bad in ["", "a.b", "a/b", "ä", &"x".repeat(65)] {
            assert!(validate_prefix(bad).is_err(), "{bad:?}");
        }
    }
}
