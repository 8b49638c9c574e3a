-- so:mode native
-- Identifiers compare bytewise. The key of every tick-rate table starts with text columns
-- (symbol, provider, trade_id), and each index insert compares them some twenty times on its
-- way down the btree. Under a libc locale other than "C" (initdb's default is the machine's,
-- often C.UTF-8 or en_US.UTF-8) each of those comparisons goes through strcoll(); under
-- "C" it is a memcmp. Measured in docs/benchmarks.md: about 10% less server CPU per tick.
-- Symbols, provider names and trade ids are ASCII codes, for which byte order is the only
-- meaningful order (and what SQLite's BINARY collation already uses), so nothing a query
-- returns changes but the order of mixed-case or punctuated codes under a linguistic locale.
--
-- Native mode only: in TimescaleDB mode these tables are hypertables with compression on,
-- whose column types cannot be altered without decompressing every chunk.

ALTER TABLE market_ticks
    ALTER COLUMN symbol TYPE VARCHAR(20) COLLATE "C",
    ALTER COLUMN provider TYPE TEXT COLLATE "C",
    ALTER COLUMN trade_id TYPE TEXT COLLATE "C";

ALTER TABLE scalp_ticks
    ALTER COLUMN symbol TYPE VARCHAR(20) COLLATE "C",
    ALTER COLUMN provider TYPE TEXT COLLATE "C";

-- Upserted with every tick batch, keyed by (symbol, provider).
ALTER TABLE latest_prices
    ALTER COLUMN symbol TYPE VARCHAR(20) COLLATE "C",
    ALTER COLUMN provider TYPE TEXT COLLATE "C";
