-- Alerts (seed 003 §4.3 and §6): who is told, and the outbox a worker delivers from.
-- Names and types are the seed's. Two deliberate differences:
--   * telegram_chats.user_id has no REFERENCES users(id): the observer has no users table
--     (the trading database will add it, and the key then);
--   * notification_outbox.last_error keeps why the last attempt failed (token redacted),
--     so a FAILED row explains itself.
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_type WHERE typname = 'alert_severity') THEN
    CREATE TYPE alert_severity AS ENUM ('INFO','WARN','CRITICAL');
  END IF;
END $$;

CREATE TABLE IF NOT EXISTS telegram_chats (
  id SERIAL PRIMARY KEY,
  user_id INT,
  chat_id BIGINT NOT NULL UNIQUE,
  description TEXT,
  min_severity alert_severity NOT NULL DEFAULT 'WARN',
  enabled BOOLEAN NOT NULL DEFAULT TRUE,
  created_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);

CREATE TABLE IF NOT EXISTS notification_outbox (
  id BIGSERIAL PRIMARY KEY,
  channel VARCHAR(20) NOT NULL DEFAULT 'TELEGRAM',
  chat_id BIGINT NOT NULL,
  severity alert_severity NOT NULL,
  title TEXT NOT NULL,
  message TEXT NOT NULL,
  dedupe_key VARCHAR(120),
  created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
  send_after TIMESTAMPTZ,
  sent_at TIMESTAMPTZ,
  fail_count INT NOT NULL DEFAULT 0,
  status VARCHAR(20) NOT NULL DEFAULT 'PENDING',  -- PENDING|SENT|FAILED
  last_error TEXT
);

CREATE UNIQUE INDEX IF NOT EXISTS ux_notification_outbox_dedupe
  ON notification_outbox(dedupe_key) WHERE dedupe_key IS NOT NULL;

-- The worker's claim scans only what is still to send.
CREATE INDEX IF NOT EXISTS ix_notification_outbox_pending
  ON notification_outbox(id) WHERE status = 'PENDING';

CREATE OR REPLACE FUNCTION enqueue_notification(
  p_chat_id BIGINT,
  p_sev alert_severity,
  p_title TEXT,
  p_msg TEXT,
  p_dedupe TEXT DEFAULT NULL
) RETURNS BIGINT AS $$
DECLARE v_id BIGINT;
BEGIN
  IF p_dedupe IS NOT NULL THEN
    INSERT INTO notification_outbox(chat_id, severity, title, message, dedupe_key)
    VALUES (p_chat_id, p_sev, p_title, p_msg, p_dedupe)
    ON CONFLICT (dedupe_key) WHERE dedupe_key IS NOT NULL DO NOTHING
    RETURNING id INTO v_id;
    RETURN COALESCE(v_id, 0);
  ELSE
    INSERT INTO notification_outbox(chat_id, severity, title, message)
    VALUES (p_chat_id, p_sev, p_title, p_msg)
    RETURNING id INTO v_id;
    RETURN v_id;
  END IF;
END; $$ LANGUAGE plpgsql;
