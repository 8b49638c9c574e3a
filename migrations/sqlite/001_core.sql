-- Core schema for the embedded (SQLite) store.
--
-- Conventions (docs/storage.md):
-- * instants are INTEGER milliseconds since the Unix epoch, UTC: exact, compact and ordered;
--   the API formats them as RFC 3339.
-- * prices and sizes are TEXT holding the exact decimal the provider sent (rust_decimal's
--   canonical form). SQLite has no exact decimal type and REAL would round; nothing compares
--   these columns in SQL, the store does it in Rust.
-- * every table has a natural key, so re-loading the same archive lines is a no-op.
-- * common meta (seed 001 §2.14.3) is carried by every row derived from an archive record.

-- seed 000 §4.1 market_ticks: every executed trade, from the raw frames.
CREATE TABLE market_ticks (
    symbol           TEXT    NOT NULL,
    time             INTEGER NOT NULL,          -- exchange event time
    provider         TEXT    NOT NULL,
    trade_id         TEXT    NOT NULL,          -- provider trade id / sequence, else the raw_ref
    market           TEXT    NOT NULL,
    price            TEXT    NOT NULL,
    volume           TEXT    NOT NULL,          -- size of this trade
    side             TEXT,
    cum_volume       TEXT,
    change           TEXT,                      -- price - previous close, when the universe knows it
    schema_version   TEXT    NOT NULL,
    receive_time     INTEGER NOT NULL,
    session_id       TEXT    NOT NULL,
    mitigation_level INTEGER NOT NULL,
    quality_flag     TEXT    NOT NULL,
    raw_ref          TEXT,
    PRIMARY KEY (symbol, time, provider, trade_id)
) WITHOUT ROWID;

-- seed 001 §2.14.4 scalp_ticks: Track B samples.
CREATE TABLE scalp_ticks (
    symbol             TEXT    NOT NULL,
    event_time         INTEGER NOT NULL,        -- the sample's due time
    provider           TEXT    NOT NULL,
    market             TEXT    NOT NULL,
    bid_price          TEXT,
    ask_price          TEXT,
    bid_size           TEXT,
    ask_size           TEXT,
    last_price         TEXT,
    volume             TEXT,
    data_age_ms        INTEGER,
    sample_interval_ms INTEGER NOT NULL,
    schema_version     TEXT    NOT NULL,
    receive_time       INTEGER NOT NULL,
    session_id         TEXT    NOT NULL,
    mitigation_level   INTEGER NOT NULL,
    quality_flag       TEXT    NOT NULL,
    raw_ref            TEXT,
    PRIMARY KEY (symbol, event_time, provider)
) WITHOUT ROWID;
CREATE INDEX scalp_ticks_session ON scalp_ticks (session_id);

-- seed 001 §2.14.4 scalp_1m_bars, from scalp_ticks; coverage_ratio = samples present /
-- samples expected at the sampling rate in force.
CREATE TABLE scalp_1m_bars (
    symbol           TEXT    NOT NULL,
    bar_time         INTEGER NOT NULL,
    provider         TEXT    NOT NULL,
    market           TEXT    NOT NULL,
    open             TEXT    NOT NULL,
    high             TEXT    NOT NULL,
    low              TEXT    NOT NULL,
    close            TEXT    NOT NULL,
    volume           TEXT    NOT NULL,
    coverage_ratio   REAL    NOT NULL,
    samples          INTEGER NOT NULL,
    session_id       TEXT    NOT NULL,
    schema_version   TEXT    NOT NULL,
    mitigation_level INTEGER NOT NULL,
    quality_flag     TEXT    NOT NULL,
    PRIMARY KEY (symbol, bar_time, provider)
) WITHOUT ROWID;

-- Rollups of scalp_1m_bars, maintained by the store (TimescaleDB: continuous aggregates).
-- coverage_ratio = mean coverage of the minutes present; minutes = 1m bars that went in.
CREATE TABLE bars_10m (
    symbol TEXT NOT NULL, bar_time INTEGER NOT NULL, provider TEXT NOT NULL, market TEXT NOT NULL,
    open TEXT NOT NULL, high TEXT NOT NULL, low TEXT NOT NULL, close TEXT NOT NULL, volume TEXT NOT NULL,
    coverage_ratio REAL NOT NULL, minutes INTEGER NOT NULL,
    PRIMARY KEY (symbol, bar_time, provider)
) WITHOUT ROWID;
CREATE TABLE bars_1h (
    symbol TEXT NOT NULL, bar_time INTEGER NOT NULL, provider TEXT NOT NULL, market TEXT NOT NULL,
    open TEXT NOT NULL, high TEXT NOT NULL, low TEXT NOT NULL, close TEXT NOT NULL, volume TEXT NOT NULL,
    coverage_ratio REAL NOT NULL, minutes INTEGER NOT NULL,
    PRIMARY KEY (symbol, bar_time, provider)
) WITHOUT ROWID;
-- Days are Asia/Seoul trading days: bar_time is Seoul midnight.
CREATE TABLE bars_1d (
    symbol TEXT NOT NULL, bar_time INTEGER NOT NULL, provider TEXT NOT NULL, market TEXT NOT NULL,
    open TEXT NOT NULL, high TEXT NOT NULL, low TEXT NOT NULL, close TEXT NOT NULL, volume TEXT NOT NULL,
    coverage_ratio REAL NOT NULL, minutes INTEGER NOT NULL,
    PRIMARY KEY (symbol, bar_time, provider)
) WITHOUT ROWID;

-- seed 001 §2.14.4 scalp_gaps, from gap_marker events; keyed by the archive line it came from.
CREATE TABLE scalp_gaps (
    src_file         TEXT    NOT NULL,
    src_line         INTEGER NOT NULL,
    provider         TEXT    NOT NULL,
    gap_start_ts     INTEGER NOT NULL,
    gap_end_ts       INTEGER NOT NULL,
    gap_seconds      INTEGER NOT NULL,
    scope            TEXT    NOT NULL,
    reason           TEXT    NOT NULL,
    detail           TEXT,
    session_id       TEXT    NOT NULL,
    schema_version   TEXT    NOT NULL,
    mitigation_level INTEGER NOT NULL,
    quality_flag     TEXT    NOT NULL,
    PRIMARY KEY (src_file, src_line)
);
CREATE INDEX scalp_gaps_time ON scalp_gaps (gap_start_ts);
CREATE INDEX scalp_gaps_session ON scalp_gaps (session_id);

-- seed 001 §2.14.5 swing_bars_10m, from Track A snapshots.
CREATE TABLE swing_bars_10m (
    symbol           TEXT    NOT NULL,
    bar_time         INTEGER NOT NULL,
    provider         TEXT    NOT NULL,
    market           TEXT    NOT NULL,
    open             TEXT    NOT NULL,
    high             TEXT    NOT NULL,
    low              TEXT    NOT NULL,
    close            TEXT    NOT NULL,
    volume           TEXT    NOT NULL,
    snapshots        INTEGER NOT NULL,
    session_id       TEXT    NOT NULL,
    schema_version   TEXT    NOT NULL,
    mitigation_level INTEGER NOT NULL,
    quality_flag     TEXT    NOT NULL,
    PRIMARY KEY (symbol, bar_time, provider)
) WITHOUT ROWID;

-- seed 001 §2.14.5 eod_prices: the day's last Track A snapshot of each symbol.
CREATE TABLE eod_prices (
    symbol           TEXT NOT NULL,
    trade_date       TEXT NOT NULL,             -- YYYY-MM-DD, Asia/Seoul
    provider         TEXT NOT NULL,
    market           TEXT NOT NULL,
    open             TEXT NOT NULL,
    high             TEXT NOT NULL,
    low              TEXT NOT NULL,
    close            TEXT NOT NULL,
    volume           TEXT NOT NULL,
    prev_close       TEXT NOT NULL,
    session_id       TEXT NOT NULL,
    schema_version   TEXT NOT NULL,
    PRIMARY KEY (symbol, trade_date, provider)
) WITHOUT ROWID;
CREATE INDEX eod_prices_date ON eod_prices (trade_date);

-- universe/YYYYMMDD_{market}.json
CREATE TABLE universe (
    trade_date  TEXT NOT NULL,
    market      TEXT NOT NULL,
    provider    TEXT NOT NULL,
    symbol      TEXT NOT NULL,
    name        TEXT NOT NULL,
    prev_close  TEXT NOT NULL,
    source      TEXT NOT NULL,
    PRIMARY KEY (trade_date, market, provider, symbol)
) WITHOUT ROWID;

-- system/overflow/{provider}/YYYYMMDD_overflow.jsonl (seed 001 §2.14.1)
CREATE TABLE overflow_entries (
    src_file         TEXT    NOT NULL,
    src_line         INTEGER NOT NULL,
    provider         TEXT    NOT NULL,
    ts               INTEGER NOT NULL,
    symbol           TEXT    NOT NULL,
    candidate_score  REAL    NOT NULL,          -- a ranking score, not money: binary float is fine
    cutoff_rank      INTEGER NOT NULL,
    decision_reason  TEXT    NOT NULL,
    session_id       TEXT    NOT NULL,
    schema_version   TEXT    NOT NULL,
    mitigation_level INTEGER NOT NULL,
    quality_flag     TEXT    NOT NULL,
    PRIMARY KEY (src_file, src_line)
);
CREATE INDEX overflow_entries_ts ON overflow_entries (ts);

-- system/events/{provider}/YYYYMMDD.jsonl (seed 001 §2.14.2): every event, body kept as JSON.
CREATE TABLE system_events (
    src_file         TEXT    NOT NULL,
    src_line         INTEGER NOT NULL,
    provider         TEXT    NOT NULL,
    event_time       INTEGER NOT NULL,
    event_type       TEXT    NOT NULL,
    session_id       TEXT    NOT NULL,
    schema_version   TEXT    NOT NULL,
    mitigation_level INTEGER NOT NULL,
    quality_flag     TEXT    NOT NULL,
    body             TEXT    NOT NULL,
    PRIMARY KEY (src_file, src_line)
);
CREATE INDEX system_events_time ON system_events (event_time);

-- The newest trade per symbol (seed 004 realtime_prices): a primary-key lookup instead of a
-- descending scan of market_ticks; maintained with every tick batch.
CREATE TABLE latest_prices (
    symbol      TEXT    NOT NULL,
    provider    TEXT    NOT NULL,
    market      TEXT    NOT NULL,
    time        INTEGER NOT NULL,
    price       TEXT    NOT NULL,
    volume      TEXT    NOT NULL,
    trade_id    TEXT    NOT NULL,
    PRIMARY KEY (symbol, provider)
) WITHOUT ROWID;
