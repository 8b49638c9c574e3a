-- Tables shared by both PostgreSQL modes (native partitions and TimescaleDB).
--
-- Prices and sizes are NUMERIC, never DOUBLE PRECISION (seed 000 §4.1 used DOUBLE): a price
-- must come back with exactly the digits the provider sent, sums of volume must be exact, and
-- crypto sizes like 0.00012345 have no binary-float representation. NUMERIC without a fixed
-- scale keeps whatever scale arrived (KRX prices are integers, Upbit has 8 decimals).
-- Every table has a natural key, so re-loading the same archive lines is a no-op.

-- seed 001 §2.14.4 scalp_gaps, from gap_marker events; keyed by the archive line it came from.
CREATE TABLE scalp_gaps (
    src_file         TEXT        NOT NULL,
    src_line         BIGINT      NOT NULL,
    provider         TEXT        NOT NULL,
    gap_start_ts     TIMESTAMPTZ NOT NULL,
    gap_end_ts       TIMESTAMPTZ NOT NULL,
    gap_seconds      BIGINT      NOT NULL,
    scope            VARCHAR(20) NOT NULL,
    reason           VARCHAR(100) NOT NULL,
    detail           TEXT,
    session_id       VARCHAR(50) NOT NULL,
    schema_version   VARCHAR(10) NOT NULL,
    mitigation_level SMALLINT    NOT NULL,
    quality_flag     VARCHAR(20) NOT NULL,
    PRIMARY KEY (src_file, src_line)
);
CREATE INDEX scalp_gaps_time ON scalp_gaps (gap_start_ts);
CREATE INDEX scalp_gaps_session ON scalp_gaps (session_id);

-- seed 001 §2.14.5 swing_bars_10m, from Track A snapshots.
CREATE TABLE swing_bars_10m (
    symbol           VARCHAR(20) NOT NULL,
    bar_time         TIMESTAMPTZ NOT NULL,
    provider         TEXT        NOT NULL,
    market           TEXT        NOT NULL,
    open             NUMERIC     NOT NULL,
    high             NUMERIC     NOT NULL,
    low              NUMERIC     NOT NULL,
    close            NUMERIC     NOT NULL,
    volume           NUMERIC     NOT NULL,
    snapshots        INTEGER     NOT NULL,
    session_id       VARCHAR(50) NOT NULL,
    schema_version   VARCHAR(10) NOT NULL,
    mitigation_level SMALLINT    NOT NULL,
    quality_flag     VARCHAR(20) NOT NULL,
    PRIMARY KEY (symbol, bar_time, provider)
);
CREATE INDEX swing_bars_10m_session ON swing_bars_10m (session_id);

-- seed 001 §2.14.5 eod_prices: the day's last Track A snapshot of each symbol.
CREATE TABLE eod_prices (
    symbol           VARCHAR(20) NOT NULL,
    trade_date       DATE        NOT NULL,      -- Asia/Seoul
    provider         TEXT        NOT NULL,
    market           TEXT        NOT NULL,
    open             NUMERIC     NOT NULL,
    high             NUMERIC     NOT NULL,
    low              NUMERIC     NOT NULL,
    close            NUMERIC     NOT NULL,
    volume           NUMERIC     NOT NULL,
    prev_close       NUMERIC     NOT NULL,
    session_id       VARCHAR(50) NOT NULL,
    schema_version   VARCHAR(10) NOT NULL,
    PRIMARY KEY (symbol, trade_date, provider)
);
CREATE INDEX eod_prices_date ON eod_prices (trade_date);

-- universe/YYYYMMDD_{market}.json
CREATE TABLE universe (
    trade_date  DATE        NOT NULL,
    market      TEXT        NOT NULL,
    provider    TEXT        NOT NULL,
    symbol      VARCHAR(20) NOT NULL,
    name        TEXT        NOT NULL,
    prev_close  NUMERIC     NOT NULL,
    source      TEXT        NOT NULL,
    PRIMARY KEY (trade_date, market, provider, symbol)
);

-- system/overflow/{provider}/YYYYMMDD_overflow.jsonl (seed 001 §2.14.1)
CREATE TABLE overflow_entries (
    src_file         TEXT        NOT NULL,
    src_line         BIGINT      NOT NULL,
    provider         TEXT        NOT NULL,
    ts               TIMESTAMPTZ NOT NULL,
    symbol           VARCHAR(20) NOT NULL,
    candidate_score  DOUBLE PRECISION NOT NULL, -- a ranking score, not money
    cutoff_rank      INTEGER     NOT NULL,
    decision_reason  TEXT        NOT NULL,
    session_id       VARCHAR(50) NOT NULL,
    schema_version   VARCHAR(10) NOT NULL,
    mitigation_level SMALLINT    NOT NULL,
    quality_flag     VARCHAR(20) NOT NULL,
    PRIMARY KEY (src_file, src_line)
);
CREATE INDEX overflow_entries_ts ON overflow_entries (ts);

-- system/events/{provider}/YYYYMMDD.jsonl (seed 001 §2.14.2): every event, body kept as JSON.
CREATE TABLE system_events (
    src_file         TEXT        NOT NULL,
    src_line         BIGINT      NOT NULL,
    provider         TEXT        NOT NULL,
    event_time       TIMESTAMPTZ NOT NULL,
    event_type       TEXT        NOT NULL,
    session_id       VARCHAR(50) NOT NULL,
    schema_version   VARCHAR(10) NOT NULL,
    mitigation_level SMALLINT    NOT NULL,
    quality_flag     VARCHAR(20) NOT NULL,
    body             JSONB       NOT NULL,
    PRIMARY KEY (src_file, src_line)
);
CREATE INDEX system_events_time ON system_events (event_time);

-- The newest trade per symbol (seed 004 realtime_prices): a primary-key lookup instead of a
-- descending scan over every partition of market_ticks; maintained with every tick batch.
CREATE TABLE latest_prices (
    symbol      VARCHAR(20) NOT NULL,
    provider    TEXT        NOT NULL,
    market      TEXT        NOT NULL,
    time        TIMESTAMPTZ NOT NULL,
    price       NUMERIC     NOT NULL,
    volume      NUMERIC     NOT NULL,
    trade_id    TEXT        NOT NULL,
    PRIMARY KEY (symbol, provider)
);
