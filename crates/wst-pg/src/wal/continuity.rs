//! Archive continuity: which WAL segments a base backup needs to roll forward, and which of
//! them the archive lacks (issue 16: "gaps in the archive discovered only at restore time" is
//! the pain this answers, from a listing alone).

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::basebackup::BaseBackupRange;
use crate::lsn::{segment_file_name, segment_number};
use crate::wal::name::{WalFileKind, WalFileName};

/// A run of missing segments on one timeline, `first`..=`last` (WAL file names).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WalGap {
    /// The first missing segment, e.g. `000000010000000000000007`.
    pub first: String,
    /// The last missing segment (equal to `first` for one segment).
    pub last: String,
    /// Segments missing in this run.
    pub segments: u64,
}

impl std::fmt::Display for WalGap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.segments == 1 {
            write!(f, "{}", self.first)
        } else {
            write!(
                f,
                "{}..{} ({} segments)",
                self.first, self.last, self.segments
            )
        }
    }
}

/// Continuity of one timeline from a base backup onwards.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TimelineContinuity {
    /// The timeline.
    pub timeline: u32,
    /// The first segment checked on it (the base backup's `stop_wal` on its own timeline; the
    /// oldest archived segment on a later timeline).
    pub from: String,
    /// The newest archived segment on it (`None`: nothing archived after `from`).
    pub newest: Option<String>,
    /// Segments archived in the checked range.
    pub archived: u64,
    /// Missing runs between `from` and `newest`, oldest first.
    pub gaps: Vec<WalGap>,
}

/// Continuity of the archive for one base backup: every timeline from its own on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Continuity {
    /// Per timeline, lowest first.
    pub timelines: Vec<TimelineContinuity>,
    /// History files of the later timelines that are missing (`0000000N.history`): without
    /// them recovery cannot follow a timeline switch.
    pub missing_history: Vec<String>,
}

impl Continuity {
    /// Whether no segment and no history file is missing.
    pub fn is_continuous(&self) -> bool {
        self.missing_history.is_empty() && self.timelines.iter().all(|t| t.gaps.is_empty())
    }

    /// The first gap, for messages.
    pub fn first_gap(&self) -> Option<&WalGap> {
        self.timelines.iter().flat_map(|t| t.gaps.iter()).next()
    }

    /// The newest archived segment of the highest timeline that has one.
    pub fn newest(&self) -> Option<&str> {
        self.timelines
            .iter()
            .rev()
            .find_map(|t| t.newest.as_deref())
    }
}

/// Checks `archived` (the WAL file names on a sink, or the union over sinks) for what
/// `base` needs to roll forward: on the base's timeline every segment from its `stop_wal` to
/// the newest archived one, and on every later timeline that has archived segments, every
/// segment between its oldest and newest, plus its history file. Segments up to `stop_wal`
/// are inside the base backup (`-X fetch`) and not required of the archive.
pub fn check_continuity(archived: &[WalFileName], base: &BaseBackupRange) -> Continuity {
    let seg_bytes = base.wal_segment_bytes;
    let mut per_tl: BTreeMap<u32, BTreeSet<u64>> = BTreeMap::new();
    let mut histories = BTreeSet::new();
    for name in archived {
        match name.kind() {
            WalFileKind::Segment | WalFileKind::Partial => {
                if let Some((log, seg)) = name.log_and_segment() {
                    per_tl
                        .entry(name.timeline())
                        .or_default()
                        .insert(segment_number(log, seg, seg_bytes));
                }
            }
            WalFileKind::History => {
                histories.insert(name.timeline());
            }
            _ => {}
        }
    }
    let base_stop = WalFileName::parse(&base.stop_wal)
        .ok()
        .and_then(|n| n.log_and_segment())
        .map_or(0, |(l, s)| segment_number(l, s, seg_bytes));
    let mut timelines = Vec::new();
    let mut missing_history = Vec::new();
    let chain: Vec<(u32, &BTreeSet<u64>)> = per_tl
        .range(base.timeline..)
        .map(|(tl, segs)| (*tl, segs))
        .collect();
    for (i, &(tl, segs)) in chain.iter().enumerate() {
        let from = if tl == base.timeline {
            base_stop
        } else {
            *segs.first().unwrap_or(&0)
        };
        let in_range: Vec<u64> = segs.range(from..).copied().collect();
        let newest = in_range.last().copied();
        // The next timeline branched off this one inside the segment where its own WAL starts:
        // this timeline is needed complete up to the segment before it (listing only: the
        // history file's switch point is inside the encryption).
        let needed_to = chain
            .get(i + 1)
            .and_then(|(_, next)| next.first())
            .map(|first| first.saturating_sub(1));
        let mut gaps = Vec::new();
        let mut expected = if tl == base.timeline { from + 1 } else { from };
        let mut push_gap = |first: u64, last: u64| {
            gaps.push(WalGap {
                first: segment_file_name(tl, first, seg_bytes),
                last: segment_file_name(tl, last, seg_bytes),
                segments: last - first + 1,
            });
        };
        for &s in &in_range {
            if s > expected {
                push_gap(expected, s - 1);
            }
            expected = expected.max(s + 1);
        }
        if let Some(to) = needed_to
            && to >= expected
        {
            push_gap(expected, to);
        }
        if tl > base.timeline && !histories.contains(&tl) {
            missing_history.push(format!("{tl:08X}.history"));
        }
        timelines.push(TimelineContinuity {
            timeline: tl,
            from: segment_file_name(tl, from, seg_bytes),
            newest: newest.map(|s| segment_file_name(tl, s, seg_bytes)),
            archived: in_range.len() as u64,
            gaps,
        });
    }
    if timelines.is_empty() {
        timelines.push(TimelineContinuity {
            timeline: base.timeline,
            from: base.stop_wal.clone(),
            newest: None,
            archived: 0,
            gaps: Vec::new(),
        });
    }
    Continuity {
        timelines,
        missing_history,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEG: u64 = 16 << 20;

    fn names(list: &[&str]) -> Vec<WalFileName> {
        list.iter()
            .map(|n| WalFileName::parse(n).unwrap())
            .collect()
    }

    fn base() -> BaseBackupRange {
        BaseBackupRange {
            timeline: 1,
            start_lsn: "0/3000028".parse().unwrap(),
            stop_lsn: "0/4000100".parse().unwrap(),
            start_wal: "000000010000000000000003".into(),
            stop_wal: "000000010000000000000004".into(),
            wal_segment_bytes: SEG,
            stop_time: "2026-11-30T10:00:00Z".parse().unwrap(),
        }
    }

    #[test]
    fn a_deleted_segment_is_named_as_a_gap() {
        let archived = names(&[
            "000000010000000000000001",
            "000000010000000000000003",
            "000000010000000000000005",
            "000000010000000000000006",
            "000000010000000000000008",
            "0000000100000001000000FF",
        ]);
        let c = check_continuity(&archived, &base());
        assert!(!c.is_continuous());
        let tl = &c.timelines[0];
        assert_eq!(tl.from, "000000010000000000000004");
        assert_eq!(tl.newest.as_deref(), Some("0000000100000001000000FF"));
        assert_eq!(tl.gaps[0].to_string(), "000000010000000000000007");
        assert_eq!(tl.gaps[1].first, "000000010000000000000009");
        assert_eq!(tl.gaps[1].last, "0000000100000001000000FE");
        assert_eq!(tl.gaps[1].segments, 256 + 0xFE - 9 + 1);
        // The segments inside the base backup (3, 4) are not required of the archive.
        let ok = check_continuity(&names(&["000000010000000000000005"]), &base());
        assert!(ok.is_continuous(), "{ok:?}");
        assert_eq!(ok.newest(), Some("000000010000000000000005"));
    }

    #[test]
    fn a_later_timeline_needs_its_history_and_no_gaps() {
        let archived = names(&[
            "000000010000000000000005",
            "000000010000000000000006.partial",
            "000000020000000000000006",
            "000000020000000000000007",
        ]);
        let c = check_continuity(&archived, &base());
        assert_eq!(c.missing_history, vec!["00000002.history".to_owned()]);
        assert_eq!(c.newest(), Some("000000020000000000000007"));
        // The parent timeline must be complete up to where the next one starts.
        let cut = names(&[
            "000000010000000000000005",
            "000000020000000000000008",
            "00000002.history",
        ]);
        let c = check_continuity(&cut, &base());
        assert_eq!(
            c.first_gap().unwrap().to_string(),
            "000000010000000000000006..000000010000000000000007 (2 segments)"
        );
        let mut with_history = archived.clone();
        with_history.extend(names(&["00000002.history"]));
        assert!(check_continuity(&with_history, &base()).is_continuous());
    }
}
