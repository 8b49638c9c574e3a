//! The outbox on SQLite: the same statements as PostgreSQL's, with the claim in one write
//! transaction (SQLite's single writer is the lock `SKIP LOCKED` gives PostgreSQL).

use rusqlite::{OptionalExtension, params};

use model::UtcTime;

use super::SqliteStore;
use crate::error::StoreError;
use crate::outbox::{Chat, Claimed, NewNotification, OutboxCounts, OutboxRow, Settle, Severity};

fn severity(s: String) -> rusqlite::Result<Severity> {
    Severity::parse(&s).map_err(|e| rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, e.into()))
}

impl SqliteStore {
    pub(crate) async fn sync_chats(&self, chats: Vec<Chat>) -> Result<(), StoreError> {
        self.write(move |c| {
            let tx = c.transaction()?;
            tx.execute("UPDATE telegram_chats SET enabled = 0", [])?;
            for chat in &chats {
                tx.execute(
                    "INSERT INTO telegram_chats (chat_id, description, min_severity, enabled) VALUES (?1, ?2, ?3, 1)
                     ON CONFLICT (chat_id) DO UPDATE SET description = excluded.description,
                       min_severity = excluded.min_severity, enabled = 1",
                    params![chat.chat_id, chat.description, chat.min_severity.as_str()],
                )?;
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    pub(crate) async fn chats(&self) -> Result<Vec<Chat>, StoreError> {
        self.read(|c| {
            let mut st = c.prepare(
                "SELECT chat_id, min_severity, description FROM telegram_chats WHERE enabled = 1 ORDER BY chat_id",
            )?;
            let rows = st.query_map([], |r| {
                Ok(Chat { chat_id: r.get(0)?, min_severity: severity(r.get(1)?)?, description: r.get(2)? })
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    pub(crate) async fn enqueue(&self, n: NewNotification) -> Result<Option<i64>, StoreError> {
        self.write(move |c| {
            Ok(c.query_row(
                "INSERT INTO notification_outbox (chat_id, severity, title, message, dedupe_key, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (dedupe_key) WHERE dedupe_key IS NOT NULL DO NOTHING
                 RETURNING id",
                params![n.chat_id, n.severity.as_str(), n.title, n.message, n.dedupe_key, n.created_at.to_string()],
                |r| r.get(0),
            )
            .optional()?)
        })
        .await
    }

    pub(crate) async fn claim(&self, now: UtcTime, lease: UtcTime, limit: u32) -> Result<Vec<Claimed>, StoreError> {
        self.write(move |c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let claimed = {
                let mut st = tx.prepare_cached(
                    "UPDATE notification_outbox SET send_after = ?3
                     WHERE id IN (SELECT id FROM notification_outbox
                                  WHERE status = 'PENDING' AND (send_after IS NULL OR send_after <= ?1)
                                  ORDER BY id LIMIT ?2)
                     RETURNING id, chat_id, severity, title, message, fail_count",
                )?;
                let rows = st.query_map(params![now.to_string(), limit, lease.to_string()], |r| {
                    Ok(Claimed {
                        id: r.get(0)?,
                        chat_id: r.get(1)?,
                        severity: severity(r.get(2)?)?,
                        title: r.get(3)?,
                        message: r.get(4)?,
                        fail_count: r.get(5)?,
                    })
                })?;
                let mut v = rows.collect::<rusqlite::Result<Vec<_>>>()?;
                // RETURNING comes in no promised order.
                v.sort_by_key(|c| c.id);
                v
            };
            tx.commit()?;
            Ok(claimed)
        })
        .await
    }

    pub(crate) async fn settle(&self, id: i64, how: Settle) -> Result<(), StoreError> {
        self.write(move |c| {
            match how {
                Settle::Sent { at } => c.execute(
                    "UPDATE notification_outbox SET status = 'SENT', sent_at = ?2, send_after = NULL WHERE id = ?1",
                    params![id, at.to_string()],
                )?,
                Settle::Retry { send_after, failed, error } => c.execute(
                    "UPDATE notification_outbox SET send_after = ?2, fail_count = fail_count + ?3, last_error = ?4
                     WHERE id = ?1",
                    params![id, send_after.to_string(), u32::from(failed), error],
                )?,
                Settle::Defer { send_after } => c.execute(
                    "UPDATE notification_outbox SET send_after = ?2 WHERE id = ?1",
                    params![id, send_after.to_string()],
                )?,
                Settle::Failed { error, failed } => c.execute(
                    "UPDATE notification_outbox SET status = 'FAILED', send_after = NULL,
                       fail_count = fail_count + ?3, last_error = ?2 WHERE id = ?1",
                    params![id, error, u32::from(failed)],
                )?,
            };
            Ok(())
        })
        .await
    }

    pub(crate) async fn migrate_chat(&self, from: i64, to: i64) -> Result<(), StoreError> {
        self.write(move |c| {
            let tx = c.transaction()?;
            tx.execute("UPDATE telegram_chats SET chat_id = ?2 WHERE chat_id = ?1", params![from, to])?;
            tx.execute(
                "UPDATE notification_outbox SET chat_id = ?2 WHERE chat_id = ?1 AND status = 'PENDING'",
                params![from, to],
            )?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    pub(crate) async fn outbox_counts(&self) -> Result<OutboxCounts, StoreError> {
        self.read(|c| {
            let mut counts = OutboxCounts::default();
            let mut st = c.prepare("SELECT status, count(*) FROM notification_outbox GROUP BY status")?;
            let mut rows = st.query([])?;
            while let Some(r) = rows.next()? {
                let status: String = r.get(0)?;
                counts.add(&status, r.get(1)?);
            }
            Ok(counts)
        })
        .await
    }

    pub(crate) async fn outbox_rows(&self) -> Result<Vec<OutboxRow>, StoreError> {
        self.read(|c| {
            let mut st = c.prepare(
                "SELECT id, chat_id, severity, title, message, dedupe_key, created_at, send_after, sent_at,
                        fail_count, status, last_error
                 FROM notification_outbox ORDER BY id",
            )?;
            let rows = st.query_map([], |r| {
                Ok(OutboxRow {
                    id: r.get(0)?,
                    chat_id: r.get(1)?,
                    severity: severity(r.get(2)?)?,
                    title: r.get(3)?,
                    message: r.get(4)?,
                    dedupe_key: r.get(5)?,
                    created_at: r.get(6)?,
                    send_after: r.get(7)?,
                    sent_at: r.get(8)?,
                    fail_count: r.get(9)?,
                    status: r.get(10)?,
                    last_error: r.get(11)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }
}
