-- so:mode timescale
-- With TimescaleDB (seed 004): the same tables as 002_native_partitions.sql, as hypertables,
-- with compression segmented by symbol, continuous aggregates 1m → 10m / 1h / 1d and their
-- refresh policies. Applied only when the runner found the extension available; the runner
-- records 002 as skipped in that case (and this file as skipped in native mode).
--
-- Continuous aggregates are created WITH NO DATA: WITH DATA refuses to run inside the
-- transaction every migration runs in (timescale/timescaledb#2876); the policies fill them.

CREATE EXTENSION IF NOT EXISTS timescaledb;

CREATE TABLE market_ticks (
    symbol           VARCHAR(20) NOT NULL,
    time             TIMESTAMPTZ NOT NULL,
    provider         TEXT        NOT NULL,
    trade_id         TEXT        NOT NULL,
    market           TEXT        NOT NULL,
    price            NUMERIC     NOT NULL,
    volume           NUMERIC     NOT NULL,
    side             TEXT,
    cum_volume       NUMERIC,
    change           NUMERIC,
    schema_version   VARCHAR(10) NOT NULL,
    receive_time     TIMESTAMPTZ NOT NULL,
    session_id       VARCHAR(50) NOT NULL,
    mitigation_level SMALLINT    NOT NULL,
    quality_flag     VARCHAR(20) NOT NULL,
    raw_ref          TEXT,
    PRIMARY KEY (symbol, time, provider, trade_id)
);
-- seed 004 realtime_prices: 1-hour chunks for tick-rate data.
SELECT create_hypertable('market_ticks', 'time', chunk_time_interval => INTERVAL '1 hour');
ALTER TABLE market_ticks SET (
    timescaledb.compress,
    timescaledb.compress_segmentby = 'symbol, provider',
    timescaledb.compress_orderby = 'time DESC, trade_id'
);
SELECT add_compression_policy('market_ticks', INTERVAL '2 days');

CREATE TABLE scalp_ticks (
    symbol             VARCHAR(20) NOT NULL,
    event_time         TIMESTAMPTZ NOT NULL,
    provider           TEXT        NOT NULL,
    market             TEXT        NOT NULL,
    bid_price          NUMERIC,
    ask_price          NUMERIC,
    bid_size           NUMERIC,
    ask_size           NUMERIC,
    last_price         NUMERIC,
    volume             NUMERIC,
    data_age_ms        BIGINT,
    sample_interval_ms INTEGER     NOT NULL,
    schema_version     VARCHAR(10) NOT NULL,
    receive_time       TIMESTAMPTZ NOT NULL,
    session_id         VARCHAR(50) NOT NULL,
    mitigation_level   SMALLINT    NOT NULL,
    quality_flag       VARCHAR(20) NOT NULL,
    raw_ref            TEXT,
    PRIMARY KEY (symbol, event_time, provider)
);
SELECT create_hypertable('scalp_ticks', 'event_time', chunk_time_interval => INTERVAL '1 day');
CREATE INDEX scalp_ticks_session ON scalp_ticks (session_id);
ALTER TABLE scalp_ticks SET (
    timescaledb.compress,
    timescaledb.compress_segmentby = 'symbol, provider',
    timescaledb.compress_orderby = 'event_time DESC'
);
SELECT add_compression_policy('scalp_ticks', INTERVAL '7 days');

CREATE TABLE scalp_1m_bars (
    symbol           VARCHAR(20) NOT NULL,
    bar_time         TIMESTAMPTZ NOT NULL,
    provider         TEXT        NOT NULL,
    market           TEXT        NOT NULL,
    open             NUMERIC     NOT NULL,
    high             NUMERIC     NOT NULL,
    low              NUMERIC     NOT NULL,
    close            NUMERIC     NOT NULL,
    volume           NUMERIC     NOT NULL,
    coverage_ratio   DOUBLE PRECISION NOT NULL,
    samples          INTEGER     NOT NULL,
    session_id       VARCHAR(50) NOT NULL,
    schema_version   VARCHAR(10) NOT NULL,
    mitigation_level SMALLINT    NOT NULL,
    quality_flag     VARCHAR(20) NOT NULL,
    PRIMARY KEY (symbol, bar_time, provider)
);
-- seed 004 stock_prices: 1-day chunks for minute bars.
SELECT create_hypertable('scalp_1m_bars', 'bar_time', chunk_time_interval => INTERVAL '1 day');
CREATE INDEX scalp_1m_bars_session ON scalp_1m_bars (session_id);
ALTER TABLE scalp_1m_bars SET (
    timescaledb.compress,
    timescaledb.compress_segmentby = 'symbol, provider',
    timescaledb.compress_orderby = 'bar_time DESC'
);
SELECT add_compression_policy('scalp_1m_bars', INTERVAL '30 days');

CREATE MATERIALIZED VIEW bars_10m WITH (timescaledb.continuous) AS
SELECT symbol, time_bucket(INTERVAL '10 minutes', bar_time) AS bar_time, provider, min(market) AS market,
       first(open, bar_time) AS open, max(high) AS high, min(low) AS low, last(close, bar_time) AS close,
       sum(volume) AS volume, avg(coverage_ratio) AS coverage_ratio, count(*)::INTEGER AS minutes
FROM scalp_1m_bars
GROUP BY symbol, time_bucket(INTERVAL '10 minutes', bar_time), provider
WITH NO DATA;
SELECT add_continuous_aggregate_policy('bars_10m',
    start_offset => INTERVAL '1 day', end_offset => INTERVAL '10 minutes', schedule_interval => INTERVAL '10 minutes');

CREATE MATERIALIZED VIEW bars_1h WITH (timescaledb.continuous) AS
SELECT symbol, time_bucket(INTERVAL '1 hour', bar_time) AS bar_time, provider, min(market) AS market,
       first(open, bar_time) AS open, max(high) AS high, min(low) AS low, last(close, bar_time) AS close,
       sum(volume) AS volume, avg(coverage_ratio) AS coverage_ratio, count(*)::INTEGER AS minutes
FROM scalp_1m_bars
GROUP BY symbol, time_bucket(INTERVAL '1 hour', bar_time), provider
WITH NO DATA;
SELECT add_continuous_aggregate_policy('bars_1h',
    start_offset => INTERVAL '3 days', end_offset => INTERVAL '1 hour', schedule_interval => INTERVAL '1 hour');

-- Seoul trading days.
CREATE MATERIALIZED VIEW bars_1d WITH (timescaledb.continuous) AS
SELECT symbol, time_bucket(INTERVAL '1 day', bar_time, 'Asia/Seoul') AS bar_time, provider, min(market) AS market,
       first(open, bar_time) AS open, max(high) AS high, min(low) AS low, last(close, bar_time) AS close,
       sum(volume) AS volume, avg(coverage_ratio) AS coverage_ratio, count(*)::INTEGER AS minutes
FROM scalp_1m_bars
GROUP BY symbol, time_bucket(INTERVAL '1 day', bar_time, 'Asia/Seoul'), provider
WITH NO DATA;
SELECT add_continuous_aggregate_policy('bars_1d',
    start_offset => INTERVAL '3 days', end_offset => INTERVAL '1 hour', schedule_interval => INTERVAL '1 hour');

-- Chunks are created by TimescaleDB on insert: nothing to prepare ahead.
CREATE FUNCTION so_ensure_partitions(p_from DATE, p_days INTEGER) RETURNS INTEGER
LANGUAGE sql AS $$ SELECT 0 $$;

-- Retention from configuration, as TimescaleDB policies (re-set on every call so a changed
-- config takes effect); p_now is unused because the policies run on the server's clock.
CREATE FUNCTION so_apply_retention(p_now TIMESTAMPTZ, p_ticks INTERVAL, p_samples INTERVAL) RETURNS INTEGER
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM remove_retention_policy('market_ticks', if_exists => true);
    PERFORM remove_retention_policy('scalp_ticks', if_exists => true);
    IF p_ticks IS NOT NULL THEN
        PERFORM add_retention_policy('market_ticks', p_ticks);
    END IF;
    IF p_samples IS NOT NULL THEN
        PERFORM add_retention_policy('scalp_ticks', p_samples);
    END IF;
    RETURN 0;
END $$;
