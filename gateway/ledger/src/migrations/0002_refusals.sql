-- Refusals: every message the gateway turned away from an identified caller
-- before forwarding it (bad message, failed validation, content that
-- contradicts the caller's identity, a reused msgid, ...), one row each.
-- Append only: the ledger inserts rows and never updates or deletes them.
-- Rate-limited (429) and shed (503) requests are not written here, so that a
-- flood cannot fill the disk; they are counted in the metrics only.
-- Written once for SQLite and PostgreSQL alike: only TEXT and BIGINT columns.
-- No personal data: codes, ids and a SHA-256 digest of the body, never the body.
CREATE TABLE refusals (
    id              TEXT   NOT NULL,
    caller          TEXT   NOT NULL,
    msgid           TEXT,
    infno           TEXT,
    institution     TEXT,
    insured         TEXT,
    treatment       TEXT,
    error_code      BIGINT NOT NULL,
    http_status     BIGINT NOT NULL,
    digest          TEXT   NOT NULL,
    received_at_ms  BIGINT NOT NULL,
    PRIMARY KEY (id),
    CHECK (error_code >= 0 AND error_code <= 65535),
    CHECK (http_status >= 100 AND http_status <= 599)
);

CREATE INDEX refusals_received_at_ms ON refusals (received_at_ms);

-- A clearing day's statement selects entries by settlement, cancel and
-- resolution time as well as by reception time; a settlement's page finds
-- the cancels that name it.
CREATE INDEX journal_setl_time_ms ON journal (setl_time_ms);
CREATE INDEX journal_resolved_at_ms ON journal (resolved_at_ms);
CREATE INDEX journal_cancels_setl_id ON journal (cancels_setl_id);
