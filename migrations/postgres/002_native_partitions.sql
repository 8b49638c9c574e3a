-- so:mode native
-- Without TimescaleDB: market_ticks and scalp_ticks are range-partitioned by Seoul day.
-- so_ensure_partitions() creates partitions ahead of time and is called by the store's
-- maintenance job (application code issues no DDL of its own). A DEFAULT partition catches
-- rows for a day whose partition does not exist yet, so a late maintenance run never loses a
-- write; so_ensure_partitions() moves such rows into the new partition.

CREATE TABLE market_ticks (
    symbol           VARCHAR(20) NOT NULL,
    time             TIMESTAMPTZ NOT NULL,      -- exchange event time
    provider         TEXT        NOT NULL,
    trade_id         TEXT        NOT NULL,      -- provider trade id / sequence, else the raw_ref
    market           TEXT        NOT NULL,
    price            NUMERIC     NOT NULL,
    volume           NUMERIC     NOT NULL,      -- size of this trade
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
) PARTITION BY RANGE (time);
CREATE TABLE market_ticks_default PARTITION OF market_ticks DEFAULT;

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
) PARTITION BY RANGE (event_time);
CREATE TABLE scalp_ticks_default PARTITION OF scalp_ticks DEFAULT;
CREATE INDEX scalp_ticks_session ON scalp_ticks (session_id);

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
CREATE INDEX scalp_1m_bars_session ON scalp_1m_bars (session_id);

-- Rollups of scalp_1m_bars maintained by the store (TimescaleDB mode: continuous aggregates
-- with the same names and columns). coverage_ratio = mean coverage of the minutes present.
CREATE TABLE bars_10m (
    symbol VARCHAR(20) NOT NULL, bar_time TIMESTAMPTZ NOT NULL, provider TEXT NOT NULL, market TEXT NOT NULL,
    open NUMERIC NOT NULL, high NUMERIC NOT NULL, low NUMERIC NOT NULL, close NUMERIC NOT NULL,
    volume NUMERIC NOT NULL, coverage_ratio DOUBLE PRECISION NOT NULL, minutes INTEGER NOT NULL,
    PRIMARY KEY (symbol, bar_time, provider)
);
CREATE TABLE bars_1h (LIKE bars_10m INCLUDING ALL);
-- Days are Asia/Seoul trading days: bar_time is Seoul midnight.
CREATE TABLE bars_1d (LIKE bars_10m INCLUDING ALL);

-- Creates the daily partitions of market_ticks and scalp_ticks for p_days Seoul days from
-- p_from; returns how many it created. Idempotent.
CREATE FUNCTION so_ensure_partitions(p_from DATE, p_days INTEGER) RETURNS INTEGER
LANGUAGE plpgsql AS $$
DECLARE
    t       TEXT;
    col     TEXT;
    d       DATE;
    lo      TIMESTAMPTZ;
    hi      TIMESTAMPTZ;
    part    TEXT;
    created INTEGER := 0;
    moved   BOOLEAN;
BEGIN
    FOREACH t IN ARRAY ARRAY['market_ticks', 'scalp_ticks'] LOOP
        col := CASE t WHEN 'market_ticks' THEN 'time' ELSE 'event_time' END;
        FOR i IN 0 .. GREATEST(p_days, 1) - 1 LOOP
            d := p_from + i;
            part := t || '_' || to_char(d, 'YYYYMMDD');
            CONTINUE WHEN to_regclass(part) IS NOT NULL;
            lo := d::timestamp AT TIME ZONE 'Asia/Seoul';
            hi := (d + 1)::timestamp AT TIME ZONE 'Asia/Seoul';
            -- Rows that landed in the default partition must leave it first, or attaching
            -- the new range fails.
            EXECUTE format('SELECT EXISTS (SELECT 1 FROM %I WHERE %I >= $1 AND %I < $2)',
                           t || '_default', col, col) INTO moved USING lo, hi;
            IF moved THEN
                EXECUTE format('CREATE TEMP TABLE so_moving ON COMMIT DROP AS
                                SELECT * FROM %I WHERE %I >= $1 AND %I < $2',
                               t || '_default', col, col) USING lo, hi;
                EXECUTE format('DELETE FROM %I WHERE %I >= $1 AND %I < $2', t || '_default', col, col)
                    USING lo, hi;
            END IF;
            EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)', part, t, lo, hi);
            IF moved THEN
                EXECUTE format('INSERT INTO %I SELECT * FROM so_moving', t);
                DROP TABLE so_moving;
            END IF;
            created := created + 1;
        END LOOP;
    END LOOP;
    RETURN created;
END $$;

-- Drops daily partitions wholly older than the retention windows (NULL keeps forever), with
-- p_now from the caller's clock so simulated days age like real ones;
-- returns how many it dropped. Rollups, bars and ledgers are kept: they are small.
CREATE FUNCTION so_apply_retention(p_now TIMESTAMPTZ, p_ticks INTERVAL, p_samples INTERVAL) RETURNS INTEGER
LANGUAGE plpgsql AS $$
DECLARE
    r       RECORD;
    keep    INTERVAL;
    dropped INTEGER := 0;
    day     DATE;
BEGIN
    FOR r IN
        SELECT c.relname AS part, p.relname AS parent
        FROM pg_inherits i
        JOIN pg_class c ON c.oid = i.inhrelid
        JOIN pg_class p ON p.oid = i.inhparent
        WHERE p.relname IN ('market_ticks', 'scalp_ticks') AND c.relname ~ '_[0-9]{8}$'
    LOOP
        keep := CASE r.parent WHEN 'market_ticks' THEN p_ticks ELSE p_samples END;
        CONTINUE WHEN keep IS NULL;
        day := to_date(right(r.part, 8), 'YYYYMMDD');
        IF ((day + 1)::timestamp AT TIME ZONE 'Asia/Seoul') <= p_now - keep THEN
            EXECUTE format('DROP TABLE %I', r.part);
            dropped := dropped + 1;
        END IF;
    END LOOP;
    RETURN dropped;
END $$;
