//! Log sequence numbers and the WAL segment that holds one (`PostgreSQL`'s `pg_lsn`,
//! `XLogFileName`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// A WAL location, `PostgreSQL`'s `pg_lsn`: a 64-bit byte position in the WAL stream, written
/// `X/Y` (the high and low 32 bits in upper-case hex without leading zeros, as the server
/// prints it, e.g. `0/2000028`). Ordered by position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Lsn(pub u64);

impl Lsn {
    /// The sequence number of the segment holding this position for segments of
    /// `segment_bytes` bytes (a power of two from 1 MiB to 1 GiB; 16 MiB by default).
    pub fn segment_number(self, segment_bytes: u64) -> u64 {
        self.0 / segment_bytes.max(1)
    }

    /// The name of the WAL segment file holding this position on `timeline`, as `PostgreSQL`'s
    /// `XLogFileName` writes it: timeline ‖ log ‖ segment, 8 upper-case hex digits each, where
    /// log = segment number / segments per 4 GiB and segment = the remainder.
    pub fn wal_file_name(self, timeline: u32, segment_bytes: u64) -> String {
        segment_file_name(timeline, self.segment_number(segment_bytes), segment_bytes)
    }
}

/// The WAL file name of segment number `segno` on `timeline` (`PostgreSQL`'s `XLogFileName`).
pub fn segment_file_name(timeline: u32, segno: u64, segment_bytes: u64) -> String {
    let per_log = 0x1_0000_0000u64 / segment_bytes.max(1);
    format!(
        "{timeline:08X}{:08X}{:08X}",
        segno / per_log,
        segno % per_log
    )
}

/// The segment number of a WAL file name's log and segment fields, the inverse of
/// [`segment_file_name`].
pub fn segment_number(log: u32, seg: u32, segment_bytes: u64) -> u64 {
    let per_log = 0x1_0000_0000u64 / segment_bytes.max(1);
    u64::from(log) * per_log + u64::from(seg)
}

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

impl FromStr for Lsn {
    type Err = Error;

    /// Parses `X/Y` (1–8 hex digits each, either case), as `pg_lsn` does.
    fn from_str(s: &str) -> Result<Self, Error> {
        let bad = || {
            Error::Config(format!(
                "`{s}` is not an LSN (expected `X/Y` in hex, e.g. `0/2000028`)"
            ))
        };
        let (hi, lo) = s.split_once('/').ok_or_else(bad)?;
        let part = |p: &str| {
            if p.is_empty() || p.len() > 8 || !p.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(bad());
            }
            u64::from_str_radix(p, 16).map_err(|_| bad())
        };
        Ok(Self((part(hi)? << 32) | part(lo)?))
    }
}

impl Serialize for Lsn {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Lsn {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEG: u64 = 16 * 1024 * 1024;

    #[test]
    fn parses_and_prints_as_the_server_does() {
        let l: Lsn = "0/2000028".parse().unwrap();
        assert_eq!(l.0, 0x0200_0028);
        assert_eq!(l.to_string(), "0/2000028");
        let high: Lsn = "1A/ff".parse().unwrap();
        assert_eq!(high.to_string(), "1A/FF");
        for bad in ["", "0", "/1", "1/", "g/1", "123456789/0", "0/2000028 "] {
            assert!(bad.parse::<Lsn>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn segment_names_follow_xlogfilename() {
        // The values of a real pg_basebackup (backup_label: START WAL LOCATION 0/2000028,
        // file 000000010000000000000002).
        let l: Lsn = "0/2000028".parse().unwrap();
        assert_eq!(l.wal_file_name(1, SEG), "000000010000000000000002");
        // 256 segments of 16 MiB per 4 GiB "log".
        let l: Lsn = "1/FF000000".parse().unwrap();
        assert_eq!(l.wal_file_name(2, SEG), "0000000200000001000000FF");
        assert_eq!(segment_number(1, 0xFF, SEG), l.segment_number(SEG));
        // 1 GiB segments: 4 per log.
        let l: Lsn = "3/C0000000".parse().unwrap();
        assert_eq!(l.wal_file_name(1, 1 << 30), "000000010000000300000003");
    }
}
