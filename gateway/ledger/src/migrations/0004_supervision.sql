-- Cross-region supervision (gateway/src/supervision): the signals officers
-- read, and the small state the rules' windows need to survive a restart.
-- The person is only ever a keyed hash (HMAC-SHA256, hex): no ID number, no
-- name. Lists are comma-separated codes; amounts are integer fen.
CREATE TABLE supervision_signals (
    id             TEXT   NOT NULL PRIMARY KEY,
    day            TEXT   NOT NULL,
    rule           TEXT   NOT NULL,
    severity       TEXT   NOT NULL,
    detected_at_ms BIGINT NOT NULL,
    regions        TEXT   NOT NULL,
    institutions   TEXT   NOT NULL,
    person_key     TEXT,
    mdtrt_ids      TEXT   NOT NULL,
    setl_ids       TEXT   NOT NULL,
    amounts        TEXT   NOT NULL,
    detail         TEXT   NOT NULL
);

CREATE INDEX supervision_signals_day ON supervision_signals (day, rule);

-- What the windows need, one row per admission, discharge, settlement,
-- cancel or reversal observed; pruned beyond the longest window.
CREATE TABLE supervision_events (
    id          TEXT   NOT NULL PRIMARY KEY,
    at_ms       BIGINT NOT NULL,
    kind        TEXT   NOT NULL,
    person_key  TEXT,
    institution TEXT   NOT NULL,
    insured     TEXT,
    treatment   TEXT,
    msgid       TEXT,
    mdtrt_id    TEXT,
    setl_id     TEXT,
    med_type    TEXT,
    amount      BIGINT,
    invono      TEXT,
    bill        TEXT,
    drugs       TEXT,
    begin_ms    BIGINT
);

CREATE INDEX supervision_events_at ON supervision_events (at_ms);

-- Each institution's settlements a day (Asia/Shanghai), for the baseline of
-- institution_surge.
CREATE TABLE supervision_daily (
    institution TEXT   NOT NULL,
    day         TEXT   NOT NULL,
    settlements BIGINT NOT NULL,
    amount      BIGINT NOT NULL,
    PRIMARY KEY (institution, day)
);
