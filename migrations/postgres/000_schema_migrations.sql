-- Bootstrap: the ledger of applied migrations. Run (idempotently) before anything else so the
-- runner can tell which numbered files are pending; it is the only file applied every time.
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     INTEGER PRIMARY KEY,
    name        TEXT        NOT NULL,
    checksum    TEXT        NOT NULL,   -- sha256 of the file as applied, hex
    mode        TEXT        NOT NULL,   -- native | timescale: the storage mode at apply time
    skipped     BOOLEAN     NOT NULL DEFAULT false, -- true when the file targets the other mode
    applied_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
