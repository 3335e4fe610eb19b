#!/usr/bin/env python3
"""What a durable commit costs an append-only journal file on this disk,
against SQLite's (BENCHMARKS.md, issue 9, tenth look): the evidence for a
decision on the ledger, not part of the gateway.

Each commit appends BATCH records in one write (half of them the size of a
pending entry, ~400 bytes, half the size of a final one with its reply,
~1,800 bytes: a group commit of BATCH/2 settlements' two writes each, as the
SQLite ledger's batches hold 16 writes at 32 connections), then calls
fdatasync once. One thread, commits back to back, for SECONDS. Prints
commits and settlements per second, bytes written and CPU time (user +
system) per settlement.

    deploy/bench/append-journal.py [BATCH=16] [SECONDS=5] [prealloc|grow]

`prealloc` (the default) reserves 1 GiB first (posix_fallocate) and writes
in place, so that a commit changes no file size; `grow` appends to an empty
file. Run it in the folder whose disk is measured (it writes journal.bin
there and removes it).
"""

import os
import resource
import sys
import time

batch = int(sys.argv[1]) if len(sys.argv) > 1 else 16
seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 5
prealloc = (sys.argv[3] if len(sys.argv) > 3 else "prealloc") != "grow"
path = "journal.bin"
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
size = 1 << 30
if prealloc:
    os.posix_fallocate(fd, 0, size)
    os.fsync(fd)
record = os.urandom(400) * (batch // 2) + os.urandom(1800) * (batch - batch // 2)
t0 = time.perf_counter()
r0 = resource.getrusage(resource.RUSAGE_SELF)
commits, offset = 0, 0
while time.perf_counter() - t0 < seconds:
    os.pwrite(fd, record, offset)
    offset = (offset + len(record)) % (size - len(record))
    os.fdatasync(fd)
    commits += 1
dt = time.perf_counter() - t0
r1 = resource.getrusage(resource.RUSAGE_SELF)
os.close(fd)
os.unlink(path)
cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
system = r1.ru_stime - r0.ru_stime
settlements = commits * batch / 2
print(
    f"batch {batch}, {'preallocated' if prealloc else 'growing'}: {commits / dt:,.0f} commits/s, "
    f"{settlements / dt:,.0f} settlements/s, {len(record) * commits / dt / 1e6:.0f} MB/s, "
    f"CPU {cpu / settlements * 1e6:.1f} µs per settlement (system {system / settlements * 1e6:.1f})"
)
