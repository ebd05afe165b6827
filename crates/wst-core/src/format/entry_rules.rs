//! The one entry-acceptance rule of wst: which archive entries an artifact may hold.
//!
//! Every read of an artifact (verify, `ls`, restore, drill) goes through the reader, and the
//! reader applies this rule to every entry, in archive order, before any visitor sees it. So an
//! entry that verification accepts is exactly an entry that restore will write, and an artifact
//! whose verification passes restores into an empty target (design invariant 9). Restore then
//! re-checks the file system as it writes (no symlinked parent, create-new files), as a second
//! line of defence that an accepted artifact never trips.
//!
//! The rule (documented for operators in `docs/ARCHIVE.md`):
//! - paths: relative, `/`-separated, no empty, `.` or `..` components, no backslash, NUL or
//!   drive prefix, not under `.wst/` (see [`validate_archive_path`]);
//! - kinds: regular files, directories, symlinks and hard links. Device nodes, FIFOs, sockets,
//!   GNU sparse files and unknown types are refused (wst's file source never archives them: it
//!   warns and skips them at backup);
//! - no path component is longer than 255 bytes (no common file system could create it);
//! - every path appears once (a second entry for a path is refused as malformed);
//! - no entry lies below an earlier symlink, file or hard link (nothing is ever written
//!   *through* a symlink); a file, symlink or hard link may not take the path of a directory
//!   that earlier entries already live in;
//! - a symlink's target text is kept verbatim, whatever it says (absolute, `..`, outside the
//!   archive): it is restored as a link and never followed. It must be non-empty and free of
//!   NUL bytes;
//! - a hard link must point to an earlier regular file (or hard link to one) of the archive.
//!
//! Permission bits are not part of the rule: setuid/setgid/sticky bits are accepted here and
//! dropped (with a warning) by restore unless it runs under break-glass.

use std::collections::BTreeMap;
use std::ops::Bound;

use crate::archive::validate_archive_path;
use crate::error::quote_name;
use crate::source::EntryKind;

/// Longest path component, bytes: `NAME_MAX` of Linux file systems (ext4, XFS, btrfs) and the
/// 255-unit limit of NTFS and APFS. No tree wst backs up has a longer one, and no restore could
/// create it.
const MAX_COMPONENT_BYTES: usize = 255;

/// Why an entry was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The entry could write outside the target or is not a permitted kind.
    Unsafe(String),
    /// The archive is inconsistent (a duplicate path).
    Malformed(String),
}

/// What an earlier entry was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    File,
    Dir,
    Symlink,
    Hardlink,
}

/// The kind of an entry from its tar type flag and link text.
///
/// # Errors
/// A [`Refusal::Unsafe`] for device nodes, FIFOs, sparse files and unknown types, and for link
/// texts that are empty, not UTF-8 or contain NUL.
pub(crate) fn entry_kind(typeflag: u8, link: &[u8]) -> Result<EntryKind, Refusal> {
    let link_text = || -> Result<String, Refusal> {
        if link.is_empty() {
            return Err(Refusal::Unsafe("the link has no target".into()));
        }
        if link.contains(&0) {
            return Err(Refusal::Unsafe("the link target contains NUL".into()));
        }
        String::from_utf8(link.to_vec()).map_err(|_| {
            Refusal::Unsafe(format!(
                "the link target `{}` is not UTF-8",
                quote_name(link)
            ))
        })
    };
    match typeflag {
        b'0' | 0 | b'7' => Ok(EntryKind::File),
        b'5' => Ok(EntryKind::Dir),
        b'2' => Ok(EntryKind::Symlink {
            target: link_text()?,
        }),
        b'1' => Ok(EntryKind::Hardlink {
            target: link_text()?.trim_end_matches('/').to_owned(),
        }),
        b'3' | b'4' => Err(Refusal::Unsafe(
            "device nodes are not restored (wst does not back them up)".into(),
        )),
        b'6' => Err(Refusal::Unsafe(
            "FIFOs are not restored (wst does not back them up)".into(),
        )),
        b'S' => Err(Refusal::Unsafe("GNU sparse files are not supported".into())),
        other => Err(Refusal::Unsafe(format!(
            "entry type {} is not a regular file, directory, symlink or hard link",
            quote_name(&[other])
        ))),
    }
}

/// The state of the rule over one archive: every path seen, with its kind.
///
/// Memory: one copy of every accepted path (capped through
/// [`ReadLimits::max_total_path_bytes`](crate::ReadLimits::max_total_path_bytes)). Time per
/// entry: one ordered-map lookup per path component.
#[derive(Debug, Default)]
pub(crate) struct EntryRules {
    seen: BTreeMap<Box<str>, Seen>,
}

impl EntryRules {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Checks the entry at archive path `path` (trailing `/` removed) of kind `kind` against
    /// the rule and the entries before it, and records it when accepted.
    ///
    /// # Errors
    /// A [`Refusal`] with the reason (entry names in it are quoted with bounds).
    pub(crate) fn accept(&mut self, path: &str, kind: &EntryKind) -> Result<(), Refusal> {
        validate_archive_path(path, false).map_err(Refusal::Unsafe)?;
        if let Some(long) = path.split('/').find(|c| c.len() > MAX_COMPONENT_BYTES) {
            return Err(Refusal::Unsafe(format!(
                "the path component `{}` is longer than {MAX_COMPONENT_BYTES} bytes, which \
                 common file systems cannot create",
                quote_name(long.as_bytes())
            )));
        }
        if self.seen.contains_key(path) {
            return Err(Refusal::Malformed(format!(
                "the path `{}` appears twice in the archive",
                quote_name(path.as_bytes())
            )));
        }
        for (i, _) in path.match_indices('/') {
            let parent = &path[..i];
            match self.seen.get(parent) {
                None | Some(Seen::Dir) => {}
                Some(Seen::Symlink) => {
                    return Err(Refusal::Unsafe(format!(
                        "its parent `{}` is a symlink; nothing is written through a link",
                        quote_name(parent.as_bytes())
                    )));
                }
                Some(Seen::File | Seen::Hardlink) => {
                    return Err(Refusal::Unsafe(format!(
                        "its parent `{}` is a file, not a directory",
                        quote_name(parent.as_bytes())
                    )));
                }
            }
        }
        let seen = match kind {
            EntryKind::Dir => Seen::Dir,
            EntryKind::File => Seen::File,
            EntryKind::Symlink { .. } => Seen::Symlink,
            EntryKind::Hardlink { target } => {
                validate_archive_path(target, false).map_err(|reason| {
                    Refusal::Unsafe(format!(
                        "hard link target `{}`: {reason}",
                        quote_name(target.as_bytes())
                    ))
                })?;
                match self.seen.get(target.as_str()) {
                    Some(Seen::File | Seen::Hardlink) => {}
                    _ => {
                        return Err(Refusal::Unsafe(format!(
                            "hard link target `{}` is not an earlier regular file of the archive",
                            quote_name(target.as_bytes())
                        )));
                    }
                }
                Seen::Hardlink
            }
        };
        if seen != Seen::Dir {
            // Earlier entries below this path made it a directory.
            let below = format!("{path}/");
            if let Some((child, _)) = self
                .seen
                .range::<str, _>((Bound::Included(below.as_str()), Bound::Unbounded))
                .next()
                && child.starts_with(&below)
            {
                return Err(Refusal::Unsafe(format!(
                    "earlier entries such as `{}` use this path as a directory",
                    quote_name(child.as_bytes())
                )));
            }
        }
        self.seen.insert(path.into(), seen);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sym(t: &str) -> EntryKind {
        EntryKind::Symlink { target: t.into() }
    }

    fn hard(t: &str) -> EntryKind {
        EntryKind::Hardlink { target: t.into() }
    }

    #[test]
    fn the_rule_table() {
        let mut r = EntryRules::new();
        assert!(r.accept("wst", &EntryKind::Dir).is_ok());
        assert!(r.accept("wst/a", &EntryKind::File).is_ok());
        // Absolute and escaping symlinks are accepted as links.
        assert!(r.accept("wst/abs", &sym("/etc/hostname")).is_ok());
        assert!(r.accept("wst/up", &sym("../../..")).is_ok());
        // ... but nothing below them.
        let e = r.accept("wst/up/evil", &EntryKind::File).unwrap_err();
        assert!(
            matches!(&e, Refusal::Unsafe(m) if m.contains("is a symlink")),
            "{e:?}"
        );
        let e = r.accept("wst/a/x", &EntryKind::File).unwrap_err();
        assert!(
            matches!(&e, Refusal::Unsafe(m) if m.contains("not a directory")),
            "{e:?}"
        );
        // Duplicates.
        let e = r.accept("wst/a", &EntryKind::File).unwrap_err();
        assert!(matches!(e, Refusal::Malformed(_)));
        assert!(matches!(
            r.accept("wst", &EntryKind::Dir),
            Err(Refusal::Malformed(_))
        ));
        // Hard links: earlier regular files only.
        assert!(r.accept("wst/h", &hard("wst/a")).is_ok());
        assert!(r.accept("wst/h2", &hard("wst/h")).is_ok());
        for bad in ["wst", "wst/abs", "wst/later", "/etc/passwd", "../x"] {
            assert!(r.accept("wst/hx", &hard(bad)).is_err(), "{bad}");
        }
        // Implicit directories.
        assert!(r.accept("d/e/f", &EntryKind::File).is_ok());
        assert!(r.accept("d/e", &EntryKind::Dir).is_ok());
        assert!(r.accept("d", &EntryKind::File).is_err());
        assert!(r.accept("d/e2", &sym("x")).is_ok());
        assert!(
            r.accept(&format!("d/{}", "n".repeat(255)), &EntryKind::File)
                .is_ok()
        );
        assert!(
            r.accept(&format!("d/{}", "n".repeat(256)), &EntryKind::File)
                .is_err()
        );
        // Unsafe paths.
        for bad in ["/abs", "a/../b", "C:/x", "a\\b", ".wst/x", ""] {
            assert!(
                matches!(r.accept(bad, &EntryKind::File), Err(Refusal::Unsafe(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn kinds_from_type_flags() {
        assert_eq!(entry_kind(b'0', b"").unwrap(), EntryKind::File);
        assert_eq!(entry_kind(b'5', b"").unwrap(), EntryKind::Dir);
        assert_eq!(entry_kind(b'2', b"/etc/x").unwrap(), sym("/etc/x"));
        assert_eq!(entry_kind(b'1', b"a/b/").unwrap(), hard("a/b"));
        for t in [b'3', b'4', b'6', b'S', b'V', 0x1b] {
            assert!(entry_kind(t, b"").is_err());
        }
        assert!(entry_kind(b'2', b"").is_err());
        assert!(entry_kind(b'2', b"a\0b").is_err());
        let e = entry_kind(0x1b, b"").unwrap_err();
        assert!(matches!(e, Refusal::Unsafe(m) if m.contains("\\u{1b}")));
    }
}
