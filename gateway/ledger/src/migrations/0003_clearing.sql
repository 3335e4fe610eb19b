-- Clearing beside the journal: statements as uploaded, verdicts on clearing
-- rows (3261/3262), closed days; and the heartbeat row /readyz writes so that
-- a full disk or a read-only database shows as not ready.
CREATE TABLE clearing_statements (
    day            TEXT   NOT NULL,
    admdvs         TEXT   NOT NULL,
    uploaded_by    TEXT   NOT NULL,
    uploaded_at_ms BIGINT NOT NULL,
    digest         TEXT   NOT NULL,
    row_count      BIGINT NOT NULL,
    body           TEXT   NOT NULL,
    PRIMARY KEY (day, admdvs)
);

CREATE TABLE clearing_days (
    day          TEXT   NOT NULL PRIMARY KEY,
    closed_by    TEXT   NOT NULL,
    closed_at_ms BIGINT NOT NULL,
    digest       TEXT   NOT NULL,
    report       TEXT   NOT NULL
);

CREATE TABLE clearing_verdicts (
    admdvs        TEXT   NOT NULL,
    setl_id       TEXT   NOT NULL,
    day           TEXT   NOT NULL,
    cnfm_flag     TEXT   NOT NULL,
    mdtrt_id      TEXT,
    memo          TEXT,
    decided_by    TEXT   NOT NULL,
    decided_at_ms BIGINT NOT NULL,
    PRIMARY KEY (admdvs, setl_id),
    CHECK (cnfm_flag IN ('0', '1', '2'))
);

CREATE INDEX clearing_verdicts_day ON clearing_verdicts (day);

CREATE TABLE ledger_heartbeat (
    id    BIGINT NOT NULL PRIMARY KEY,
    at_ms BIGINT NOT NULL
);
