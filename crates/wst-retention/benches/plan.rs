//! Planning time for large sinks. Goal (issue 6): 100 000 backups in under 50 ms.
//!
//! Run: `cargo bench -p wst-retention --bench plan`.
#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use jiff::{SignedDuration, Timestamp, ToSpan};
use wst_core::BackupRecord;
use wst_retention::{Policy, plan, time_zone};

/// `n` backups, one every 17 minutes back from `now` (so every period rule sees many backups per
/// period and the hourly rule sees DST transitions), 1 in 50 unverified, 1 in 97 incomplete,
/// shuffled deterministically so that the sort is exercised.
fn backups(n: u32, now: Timestamp) -> Vec<BackupRecord> {
    let mut v: Vec<BackupRecord> = (0..n)
        .map(|i| {
            let time = now - SignedDuration::from_mins(17 * i64::from(i) + 5);
            BackupRecord {
                name: format!("wst-backup-{i:08}"),
                time,
                verified: i % 50 != 7,
                complete: i % 97 != 3,
            }
        })
        .collect();
    // Deterministic Fisher-Yates with a xorshift generator.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for i in (1..v.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.swap(i, (x % (i as u64 + 1)) as usize);
    }
    v
}

fn bench_plan(c: &mut Criterion) {
    let now: Timestamp = "2026-11-21T02:00:00Z".parse().expect("valid timestamp");
    let tz = time_zone("Europe/Amsterdam").expect("tzdb has Europe/Amsterdam");
    let gfs = Policy::gfs().keep_last(14).keep_hourly(48);
    let everything = Policy::default()
        .keep_last(1000)
        .keep_hourly(100_000)
        .keep_daily(100_000)
        .keep_weekly(100_000)
        .keep_monthly(100_000)
        .keep_yearly(100_000)
        .keep_within(30.days())
        .max_age(2.years());

    let mut group = c.benchmark_group("plan");
    group.sample_size(20);
    for n in [1_000u32, 100_000] {
        let input = backups(n, now);
        group.throughput(Throughput::Elements(u64::from(n)));
        group.bench_with_input(BenchmarkId::new("gfs", n), &input, |b, input| {
            b.iter(|| plan(black_box(input), &gfs, now, &tz).expect("plan"));
        });
        group.bench_with_input(
            BenchmarkId::new("all_rules_unbounded", n),
            &input,
            |b, input| {
                b.iter(|| plan(black_box(input), &everything, now, &tz).expect("plan"));
            },
        );
    }
    group.finish();
}

criterion_group!(benches, bench_plan);
criterion_main!(benches);
