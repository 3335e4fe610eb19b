-- The settlement journal: one row per (caller, msgid).
-- Written once for SQLite and PostgreSQL alike: only TEXT and BIGINT columns,
-- plain CHECK constraints and plain indexes.
-- Amounts are integer fen; times are Unix milliseconds; the reply bytes are hex text.
-- No personal data: ids, codes, amounts and a digest only.
CREATE TABLE journal (
    caller           TEXT   NOT NULL,
    msgid            TEXT   NOT NULL,
    infno            TEXT   NOT NULL,
    institution      TEXT   NOT NULL,
    insured          TEXT   NOT NULL,
    treatment        TEXT   NOT NULL,
    region           TEXT   NOT NULL,
    digest           TEXT   NOT NULL,
    original_msgid   TEXT,
    cancels_setl_id  TEXT,
    received_at_ms   BIGINT NOT NULL,
    state            TEXT   NOT NULL,
    setl_id          TEXT,
    mdtrt_id         TEXT,
    insutype         TEXT,
    med_type         TEXT,
    clr_type         TEXT,
    setl_time_ms     BIGINT,
    medfee_sumamt    BIGINT,
    fund_pay_sumamt  BIGINT,
    acct_pay         BIGINT,
    psn_cash_pay     BIGINT,
    error_code       BIGINT,
    anomalies        TEXT,
    reply_status     BIGINT,
    reply_media_type TEXT,
    reply_hex        TEXT,
    finished_at_ms   BIGINT,
    resolved_at_ms   BIGINT,
    attempts         BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (caller, msgid),
    CHECK (state IN ('pending', 'done', 'refused', 'unknown', 'reversed', 'confirmed')),
    CHECK (attempts >= 0)
);

CREATE INDEX journal_setl_id ON journal (setl_id);
CREATE INDEX journal_received_at_ms ON journal (received_at_ms);
CREATE INDEX journal_state ON journal (state);
