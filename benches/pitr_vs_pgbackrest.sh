#!/usr/bin/env bash
# Point-in-time recovery beside pgBackRest (issue 16), in one run on one machine:
#   1. WAL archiving: N real segments (pgbench WAL) wait in pg_wal while archive_command fails;
#      then archive_command is set to the tool and the time until PostgreSQL's archiver has
#      archived all of them is measured (segments per second), for `wst wal-push`,
#      `pgbackrest archive-push` (synchronous), and asynchronously: `wst wal-push` with
#      `[wal] archive_async = true` and `pgbackrest archive-push` (archive-async), both with
#      2 processes.
#   2. Base backup of the pgbench database: `wst base-backup` and `pgbackrest backup --type=full`.
#   3. Point-in-time recovery from an empty directory to a server promoted at a target time:
#      `wst restore --pitr --target-time T --port P` and `pgbackrest restore --type=time` +
#      `pg_ctl start` until promoted.
# Both tools: zstd level 3, encryption on (wst: AES-256-GCM; pgBackRest: aes-256-cbc), local
# repository on the same disk, fsync on. Run as root (the server and both tools run as the
# `postgres` user). Needs: Debian's postgresql (15) and pgbackrest (2.45), a release `wst`.
#
#   cargo build --release -p wst-cli
#   benches/pitr_vs_pgbackrest.sh [SEGMENTS] [SCALE]      # defaults 200 and 30
set -euo pipefail
N=${1:-200}
SCALE=${2:-30}
BIN=/usr/lib/postgresql/15/bin
ROOT=$(cd "$(dirname "$0")/.." && pwd)
B=${WST_PITR_BENCH_DIR:-/var/tmp/wst-pitr-bench}
PORT=5497
pg() { runuser -u postgres -- "$@"; }
psqlq() { pg "$BIN/psql" -X -q -A -t -h "$B/sock" -p "$PORT" -U postgres -d postgres -c "$1"; }
now() { date +%s.%N; }

if [ -e "$B/data/postmaster.pid" ]; then pg "$BIN/pg_ctl" -D "$B/data" -m immediate stop || true; fi
for d in "$B"/r-*; do [ -e "$d/postmaster.pid" ] && pg "$BIN/pg_ctl" -D "$d" -m immediate stop || true; done
rm -rf "$B"
mkdir -p "$B"/{sock,wst-state,wst-control,pgbr-repo,pgbr-log,pgbr-lock,pgbr-spool}
cp "$ROOT/target/release/wst" "$B/wst"
chown -R postgres:postgres "$B"
cat > "$B/wst.toml" <<EOF
actor = "postgres@bench"
audit_log = "$B/wst-state/audit.jsonl"
zstd_level = 3
[database]
url = "host=$B/sock port=$PORT user=postgres dbname=postgres sslmode=disable"
[encryption]
key_file = "$B/wst-control/backup.key"
[[sinks]]
name = "local"
url = "$B/wst-repo"
[wal]
sync_sinks = ["local"]
zstd_level = 3
EOF
cat > "$B/pgbackrest.conf" <<EOF
[global]
repo1-path=$B/pgbr-repo
repo1-cipher-type=aes-256-cbc
repo1-cipher-pass=$(head -c 32 /dev/urandom | base64)
compress-type=zst
compress-level=3
process-max=2
log-level-console=warn
log-level-file=off
lock-path=$B/pgbr-lock
spool-path=$B/pgbr-spool
start-fast=y
[bench]
pg1-path=$B/data
pg1-port=$PORT
pg1-socket-path=$B/sock
EOF
# The same repository, archived asynchronously ([wal] archive_async: a worker pushes the
# ready files process_max at a time and wal-push answers from its acknowledgements).
sed -e "s#^\[wal\]#[wal]\narchive_async = true\nprocess_max = 2\nspool_dir = \"$B/wst-state/spool\"#" \
  "$B/wst.toml" > "$B/wst-async.toml"
chown postgres:postgres "$B/wst.toml" "$B/wst-async.toml" "$B/pgbackrest.conf"
chmod 600 "$B/pgbackrest.conf"
PGBR="pgbackrest --config=$B/pgbackrest.conf --stanza=bench"

pg "$BIN/initdb" -D "$B/data" -A trust -U postgres --no-sync >/dev/null
cat >> "$B/data/postgresql.conf" <<EOF
port = $PORT
listen_addresses = ''
unix_socket_directories = '$B/sock'
archive_mode = on
archive_command = 'false'
max_wal_size = 8GB
shared_buffers = 256MB
EOF
pg "$BIN/pg_ctl" -D "$B/data" -l "$B/server.log" -w start >/dev/null
pg "$B/wst" --config "$B/wst.toml" keygen >/dev/null
pg "$B/wst" --config "$B/wst.toml" init >/dev/null
pg $PGBR stanza-create

ready() { find "$B/data/pg_wal/archive_status" -name '*.ready' | wc -l; }
# N segments of pgbench WAL wait in pg_wal (archive_command fails meanwhile).
fill() {
  psqlq "ALTER SYSTEM SET archive_command = 'false'" && psqlq "SELECT pg_reload_conf()" >/dev/null
  while [ "$(ready)" -lt "$N" ]; do
    pg "$BIN/pgbench" -h "$B/sock" -p $PORT -U postgres -i -s "$SCALE" -q postgres >/dev/null 2>&1
  done
}
# Seconds until the archiver has archived every waiting segment with command $1.
drain() {
  local n t0 t1
  n=$(ready)
  psqlq "ALTER SYSTEM SET archive_command = '$1'" && psqlq "SELECT pg_reload_conf()" >/dev/null
  t0=$(now)
  while [ "$(ready)" -gt 0 ]; do sleep 0.1; done
  t1=$(now)
  echo "$n $(echo "$t1 - $t0" | bc)"
}
result() { printf '| %-58s | %9s | %10s |\n' "$1" "$2" "$3"; }

echo "# archive: $N segments of pgbench WAL (scale $SCALE) per tool"
fill; read -r n_wst s_wst < <(drain "RUST_LOG=warn $B/wst --config $B/wst.toml wal-push %p")
fill; read -r n_sync s_sync < <(drain "$PGBR --no-archive-async archive-push %p")
fill; read -r n_wst_async s_wst_async < <(drain "RUST_LOG=warn $B/wst --config $B/wst-async.toml wal-push %p")
fill; read -r n_async s_async < <(drain "$PGBR --archive-async archive-push %p")

# From now on every segment goes to both archives.
psqlq "ALTER SYSTEM SET archive_command = 'RUST_LOG=warn $B/wst --config $B/wst.toml wal-push %p && $PGBR --no-archive-async archive-push %p'"
psqlq "SELECT pg_reload_conf()" >/dev/null
size=$(psqlq "SELECT pg_size_pretty(pg_database_size('postgres'))")
t0=$(now); pg "$B/wst" --config "$B/wst.toml" base-backup >/dev/null; t1=$(now)
s_wst_base=$(echo "$t1 - $t0" | bc)
t0=$(now); pg $PGBR --type=full backup; t1=$(now)
s_pgbr_base=$(echo "$t1 - $t0" | bc)

# The target: after 'before' committed, before 'after'.
psqlq "CREATE TABLE marks (id int, batch text)"
psqlq "INSERT INTO marks SELECT g, 'before' FROM generate_series(1, 1000) g"
sleep 1.2
target=$(psqlq "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')")
sleep 1.2
psqlq "INSERT INTO marks SELECT g, 'after' FROM generate_series(1001, 1500) g"
pg "$BIN/pgbench" -h "$B/sock" -p $PORT -U postgres -n -c 2 -T 20 postgres >/dev/null
psqlq "SELECT pg_switch_wal()" >/dev/null
while [ "$(ready)" -gt 0 ]; do sleep 0.2; done

t0=$(now)
pg "$B/wst" --config "$B/wst.toml" restore --pitr --pgdata "$B/r-wst" --target-time "$target" --port 5498 >/dev/null
t1=$(now)
s_wst_pitr=$(echo "$t1 - $t0" | bc)
rows_wst=$(pg "$BIN/psql" -X -A -t -h "$B" -p 5498 -U postgres -d postgres -c "SELECT count(*) FROM marks")
pg "$BIN/pg_ctl" -D "$B/r-wst" -m fast -w stop >/dev/null

pgtarget="${target/T/ }"; pgtarget="${pgtarget/Z/+00}"
mkdir -p "$B/sock2" && chown postgres:postgres "$B/sock2"
t0=$(now)
pg $PGBR --pg1-path="$B/r-pgbr" --type=time "--target=$pgtarget" --target-action=promote restore
pg "$BIN/pg_ctl" -D "$B/r-pgbr" -l "$B/r-pgbr.log" -o "-p 5499 -k $B/sock2 -c archive_mode=off" -w -t 3600 start >/dev/null
until [ "$(pg "$BIN/psql" -X -A -t -h "$B/sock2" -p 5499 -U postgres -d postgres -c 'SELECT pg_is_in_recovery()' 2>/dev/null)" = "f" ]; do sleep 0.1; done
t1=$(now)
s_pgbr_pitr=$(echo "$t1 - $t0" | bc)
rows_pgbr=$(pg "$BIN/psql" -X -A -t -h "$B/sock2" -p 5499 -U postgres -d postgres -c "SELECT count(*) FROM marks")
pg "$BIN/pg_ctl" -D "$B/r-pgbr" -m fast -w stop >/dev/null
pg "$BIN/pg_ctl" -D "$B/data" -m fast -w stop >/dev/null

rate() { echo "scale=1; $1 / $2" | bc; }
echo
echo "wst $(git -C "$ROOT" rev-parse --short HEAD), $(pgbackrest version), PostgreSQL 15, $(nproc) cores, database $size (pgbench scale $SCALE)"
result "measure" "wst" "pgBackRest"
result "---" "---:" "---:"
result "WAL archived, segments/s (archiver, $n_wst/$n_sync segments, sync)" "$(rate "$n_wst" "$s_wst")" "$(rate "$n_sync" "$s_sync")"
result "WAL archived, segments/s (async: wst archive_async $n_wst_async, pgBackRest archive-async $n_async)" "$(rate "$n_wst_async" "$s_wst_async")" "$(rate "$n_async" "$s_async")"
result "base backup, s" "$(printf %.2f "$s_wst_base")" "$(printf %.2f "$s_pgbr_base")"
result "PITR: empty dir → promoted at target time, s" "$(printf %.2f "$s_wst_pitr")" "$(printf %.2f "$s_pgbr_pitr")"
result "rows at the target (1000 expected)" "$rows_wst" "$rows_pgbr"
du -sh "$B/wst-repo" "$B/pgbr-repo"
