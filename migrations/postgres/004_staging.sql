-- Bulk loads COPY into per-session TEMP staging tables, then INSERT … SELECT … ON CONFLICT DO
-- NOTHING, because COPY itself cannot skip duplicates and one duplicate must not cost the
-- rest of its batch. The tables are made by this function (called at the start of each load
-- transaction) so the application issues no DDL; ON COMMIT DELETE ROWS empties them.
CREATE FUNCTION so_prepare_staging() RETURNS VOID
LANGUAGE plpgsql AS $$
BEGIN
    IF to_regclass('pg_temp.so_stage_market_ticks') IS NULL THEN
        CREATE TEMP TABLE so_stage_market_ticks (LIKE market_ticks) ON COMMIT DELETE ROWS;
        CREATE TEMP TABLE so_stage_scalp_ticks (LIKE scalp_ticks) ON COMMIT DELETE ROWS;
    END IF;
END $$;
