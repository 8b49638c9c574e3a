-- Alerts: the same shape as PostgreSQL's 006_alerts (seed 003 §4.3). SQLite has no enum and
-- no functions: severity is checked text, and `enqueue_notification()` is the store's
-- `INSERT … ON CONFLICT (dedupe_key) WHERE dedupe_key IS NOT NULL DO NOTHING`.
-- Times are RFC 3339 UTC text with milliseconds, which sorts as time.
CREATE TABLE IF NOT EXISTS telegram_chats (
  id INTEGER PRIMARY KEY,
  user_id INTEGER,
  chat_id INTEGER NOT NULL UNIQUE,
  description TEXT,
  min_severity TEXT NOT NULL DEFAULT 'WARN' CHECK (min_severity IN ('INFO','WARN','CRITICAL')),
  enabled INTEGER NOT NULL DEFAULT 1,
  created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
);

CREATE TABLE IF NOT EXISTS notification_outbox (
  id INTEGER PRIMARY KEY,
  channel TEXT NOT NULL DEFAULT 'TELEGRAM',
  chat_id INTEGER NOT NULL,
  severity TEXT NOT NULL CHECK (severity IN ('INFO','WARN','CRITICAL')),
  title TEXT NOT NULL,
  message TEXT NOT NULL,
  dedupe_key TEXT CHECK (length(dedupe_key) <= 120),
  created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
  send_after TEXT,
  sent_at TEXT,
  fail_count INTEGER NOT NULL DEFAULT 0,
  status TEXT NOT NULL DEFAULT 'PENDING' CHECK (status IN ('PENDING','SENT','FAILED')),
  last_error TEXT
);

CREATE UNIQUE INDEX IF NOT EXISTS ux_notification_outbox_dedupe
  ON notification_outbox(dedupe_key) WHERE dedupe_key IS NOT NULL;

CREATE INDEX IF NOT EXISTS ix_notification_outbox_pending
  ON notification_outbox(id) WHERE status = 'PENDING';
