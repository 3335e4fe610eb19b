#!/usr/bin/env python3
"""What a journal commit writes to SQLite's write-ahead log, B-tree by B-tree.

Builds a scratch SQLite file with the ledger's schema (every SQLite
migration under gateway/ledger/src/migrations, in order), then plays the
gateway's steady state under load: IN_FLIGHT settlements always open, and
each commit finishing the PER_COMMIT oldest of them (the `finish` UPDATE with
a REPLY_BYTES reply) and beginning as many new ones (the pending INSERT), with
the ledger's own statements (gateway/ledger/src/sql.rs). Checkpoints are off
while it runs, so the log keeps every frame; each frame's page number is then
mapped to the table or index that owns the page (SQLite's `dbstat`).

Prints the log's bytes per settlement, frames per commit, and frames per
commit by B-tree. Counts frames, not time: the same on any machine.

    deploy/bench/wal-frames.py [--in-flight 32] [--per-commit 8]
        [--reply-bytes 1400] [--settlements 20000] [--split-replies]

--split-replies measures the alternative of keeping replies in a table of
their own, appended to (`replies`, rowid-keyed), the journal row holding only
the reply's rowid.
"""

import argparse
import collections
import os
import pathlib
import sqlite3
import struct
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[2]
MIGRATIONS = ROOT / "gateway/ledger/src/migrations"
PAGE = 4096
CALLER = "H12010100789"


def schema() -> str:
    """Every SQLite migration, in version order; within a version the
    backend's own file first, then the file both backends share."""
    files = [f for f in MIGRATIONS.glob("*.sql") if not f.name.endswith(".postgres.sql")]
    files.sort(key=lambda f: (f.name[:4], not f.name.endswith(".sqlite.sql"), f.name))
    return "\n".join(f.read_text() for f in files)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--in-flight", type=int, default=32)
    p.add_argument("--per-commit", type=int, default=8)
    p.add_argument("--reply-bytes", type=int, default=1400)
    p.add_argument("--settlements", type=int, default=20000)
    p.add_argument("--split-replies", action="store_true")
    a = p.parse_args()

    folder = tempfile.mkdtemp(prefix="jjj-wal-frames.")
    path = os.path.join(folder, "ledger.db")
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = OFF")  # frames, not time, are counted
    db.execute("PRAGMA wal_autocheckpoint = 0")
    db.executescript(schema())
    if a.split_replies:
        db.executescript(
            "ALTER TABLE journal ADD COLUMN reply_id BIGINT;"
            "CREATE TABLE replies (id INTEGER PRIMARY KEY, bytes BLOB NOT NULL);"
        )
    reply = os.urandom(a.reply_bytes)

    def msgid(i: int) -> str:
        return f"{CALLER}20261127083000{i:010d}"

    def begin(i: int) -> None:
        db.execute(
            "INSERT INTO journal (caller, msgid, infno, institution, insured, treatment, region, "
            "digest, original_msgid, cancels_setl_id, received_at_ms, psn_no, state, attempts) "
            "VALUES (?, ?, '2207', ?, '110000', '120100', '110000', ?, NULL, NULL, ?, ?, 'pending', 0) "
            "ON CONFLICT (caller, msgid) DO NOTHING",
            (CALLER, msgid(i), CALLER, "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
             1_764_000_000_000 + i, "11000000000012345678"),
        )

    def finish(i: int) -> None:
        if a.split_replies:
            reply_column, value = "reply_id", db.execute(
                "INSERT INTO replies (bytes) VALUES (?)", (reply,)).lastrowid
        else:
            reply_column, value = "reply", reply
        db.execute(
            "UPDATE journal SET state = 'done', setl_id = ?, mdtrt_id = ?, insutype = '310', "
            "med_type = '11', clr_type = '11', setl_time_ms = ?, medfee_sumamt = 12345, "
            "fund_pay_sumamt = 2345, acct_pay = 0, psn_cash_pay = 10000, error_code = NULL, "
            f"anomalies = '', reply_status = 200, reply_media_type = 'application/xml', {reply_column} = ?, "
            "finished_at_ms = ? WHERE caller = ? AND msgid = ? AND state = 'pending'",
            (f"SETL{i:016d}", f"MDTRT{i:015d}", 1_764_000_000_000 + i, value,
             1_764_000_000_000 + i, CALLER, msgid(i)),
        )

    open_ = collections.deque()
    for i in range(a.in_flight):
        db.execute("BEGIN IMMEDIATE")
        begin(i)
        db.execute("COMMIT")
        open_.append(i)
    start = os.path.getsize(path + "-wal")
    nxt, commits = a.in_flight, 0
    while nxt < a.settlements + a.in_flight:
        db.execute("BEGIN IMMEDIATE")
        for _ in range(a.per_commit):
            finish(open_.popleft())
            begin(nxt)
            open_.append(nxt)
            nxt += 1
        db.execute("COMMIT")
        commits += 1
    settled = commits * a.per_commit

    log = pathlib.Path(path + "-wal").read_bytes()[start:]
    frames = [struct.unpack(">I", log[o:o + 4])[0] for o in range(0, len(log) - PAGE, 24 + PAGE)]
    owner = {page: name for name, page in db.execute("SELECT name, pageno FROM dbstat")}
    by_tree = collections.Counter(owner.get(page, f"page {page}") for page in frames)
    print(f"layout: {'replies in their own table' if a.split_replies else 'reply in the journal row'}; "
          f"{a.in_flight} in flight, {a.per_commit} finished and {a.per_commit} begun per commit, "
          f"{a.reply_bytes}-byte replies, {settled} settlements")
    print(f"write-ahead log per settlement: {len(log) / settled:,.0f} bytes; "
          f"frames per commit: {len(frames) / commits:.1f}")
    for name, count in by_tree.most_common():
        print(f"  {count / commits:5.2f}  {name}")
    db.close()
    for suffix in ("", "-wal", "-shm"):
        pathlib.Path(path + suffix).unlink(missing_ok=True)
    os.rmdir(folder)


if __name__ == "__main__":
    main()
