#!/usr/bin/env bash
# Journal writes per second with group commit (examples/journal_tps.rs)
# against pgbench doing single-row INSERTs into a table of the same shape, one
# commit each, synchronous_commit on: same client count, same machine, same run.
#
#   gateway/ledger/examples/journal_tps.sh            # 32 clients, 10 s each
#   CLIENTS=64 DURATION=20 JJJ_BENCH_POSTGRES_URL=postgres://… gateway/ledger/examples/journal_tps.sh
#
# Builds the example in release mode. Creates a throw-away schema and drops it.
set -euo pipefail

cd "$(dirname "$0")/../../.."
PG_URL=${JJJ_BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}
CLIENTS=${CLIENTS:-32}
DURATION=${DURATION:-10}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
PGBENCH=$(command -v pgbench || ls /usr/lib/postgresql/*/bin/pgbench 2>/dev/null | head -n 1 || true)
if [ -z "$PGBENCH" ]; then
    echo "pgbench not found: apt-get install -y postgresql-client (or postgresql-contrib)" >&2
    exit 1
fi
SCHEMA="bench_$$_$(date +%s)"
WORK=$(mktemp -d)
cleanup() {
    psql "$PG_URL" -qc "DROP SCHEMA IF EXISTS $SCHEMA CASCADE" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT

case "$PG_URL" in *\?*) SEP='&' ;; *) SEP='?' ;; esac
LEDGER_PG_URL="${PG_URL}${SEP}options=-csearch_path%3D${SCHEMA}"

psql "$PG_URL" -v ON_ERROR_STOP=1 -qc "CREATE SCHEMA $SCHEMA"
# pgbench writes into the journal's own DDL (columns, checks, indexes), renamed.
sed 's/journal/pgbench_journal/g' gateway/ledger/src/migrations/0001_journal.sql |
    PGOPTIONS="-c search_path=$SCHEMA" psql "$PG_URL" -v ON_ERROR_STOP=1 -q
cat >"$WORK/insert.sql" <<'SQL'
\set n random(1, 9000000000000000000)
INSERT INTO pgbench_journal (caller, msgid, infno, institution, insured, treatment, region, digest, received_at_ms, state, attempts) VALUES ('H' || :client_id, :client_id || '-' || :n, '2207', 'H13010500001', '110000', '130100', '110000', '9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08', :n, 'pending', 0);
SQL

cargo build --release -q -p ledger --example journal_tps
BIN="$CARGO_TARGET_DIR/release/examples/journal_tps"

echo "== machine: $(nproc) cores; $(psql "$PG_URL" -Atc 'select version()' | cut -d, -f1)"
echo "== pgbench: $CLIENTS clients, one single-row INSERT per transaction, ${DURATION}s"
PGOPTIONS="-c search_path=$SCHEMA -c synchronous_commit=on" \
    "$PGBENCH" -n -c "$CLIENTS" -j "$(nproc)" -T "$DURATION" -f "$WORK/insert.sql" "$PG_URL" | tee "$WORK/pgbench.out"
PGBENCH_TPS=$(sed -nE 's/^tps = ([0-9]+).*/\1/p' "$WORK/pgbench.out" | head -n 1)

echo "== ledger on PostgreSQL: $CLIENTS writers, begin+finish, ${DURATION}s"
"$BIN" --url "$LEDGER_PG_URL" --writers "$CLIENTS" --seconds "$DURATION" | tee "$WORK/pg.out"
LEDGER_PG=$(sed -nE 's/^RESULT writes_per_s=([0-9]+).*/\1/p' "$WORK/pg.out")

echo "== ledger on SQLite: $CLIENTS writers, begin+finish, ${DURATION}s"
"$BIN" --url "sqlite://$WORK/sqlite/ledger.db" --writers "$CLIENTS" --seconds "$DURATION" | tee "$WORK/sqlite.out"
LEDGER_SQLITE=$(sed -nE 's/^RESULT writes_per_s=([0-9]+).*/\1/p' "$WORK/sqlite.out")

ratio() { echo "$(($1 / $2)).$(printf '%02d' $(($1 * 100 / $2 % 100)))"; }
echo
echo "pgbench single-row INSERT tps:        $PGBENCH_TPS"
echo "ledger (postgres) journal writes/s:   $LEDGER_PG   ratio to pgbench $(ratio "$LEDGER_PG" "$PGBENCH_TPS")"
echo "ledger (sqlite)   journal writes/s:   $LEDGER_SQLITE   ratio to pgbench $(ratio "$LEDGER_SQLITE" "$PGBENCH_TPS")"
