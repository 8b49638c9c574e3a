//! The outbox on PostgreSQL: `enqueue_notification()` as the seed defines it, and the claim
//! with `FOR UPDATE SKIP LOCKED`, so several workers never take the same row.

use tokio_postgres::Row;

use model::UtcTime;

use super::{PgStore, ts};
use crate::error::StoreError;
use crate::outbox::{Chat, Claimed, NewNotification, OutboxCounts, OutboxRow, Settle, Severity};

fn time(t: Option<jiff::Timestamp>) -> Option<String> {
    t.map(|t| UtcTime::from_timestamp(t).to_string())
}

fn claimed(r: &Row) -> Result<Claimed, StoreError> {
    Ok(Claimed {
        id: r.try_get(0)?,
        chat_id: r.try_get(1)?,
        severity: Severity::parse(r.try_get(2)?)?,
        title: r.try_get(3)?,
        message: r.try_get(4)?,
        fail_count: r.try_get::<_, i32>(5)?.max(0) as u32,
    })
}

impl PgStore {
    pub(crate) async fn sync_chats(&self, chats: Vec<Chat>) -> Result<(), StoreError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        tx.execute("UPDATE telegram_chats SET enabled = FALSE", &[]).await?;
        for chat in &chats {
            tx.execute(
                "INSERT INTO telegram_chats (chat_id, description, min_severity, enabled)
                 VALUES ($1, $2, $3::text::alert_severity, TRUE)
                 ON CONFLICT (chat_id) DO UPDATE SET description = excluded.description,
                   min_severity = excluded.min_severity, enabled = TRUE",
                &[&chat.chat_id, &chat.description, &chat.min_severity.as_str()],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub(crate) async fn chats(&self) -> Result<Vec<Chat>, StoreError> {
        let c = self.client().await?;
        let rows = c
            .query(
                "SELECT chat_id, min_severity::text, description FROM telegram_chats WHERE enabled ORDER BY chat_id",
                &[],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(Chat {
                    chat_id: r.try_get(0)?,
                    min_severity: Severity::parse(r.try_get(1)?)?,
                    description: r.try_get(2)?,
                })
            })
            .collect()
    }

    pub(crate) async fn enqueue(&self, n: NewNotification) -> Result<Option<i64>, StoreError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        let id: i64 = tx
            .query_one(
                "SELECT enqueue_notification($1, $2::text::alert_severity, $3, $4, $5)",
                &[&n.chat_id, &n.severity.as_str(), &n.title, &n.message, &n.dedupe_key],
            )
            .await?
            .try_get(0)?;
        // The seed's function stamps NOW(); the caller's clock is the one the worker reads.
        if id != 0 {
            tx.execute("UPDATE notification_outbox SET created_at = $2 WHERE id = $1", &[&id, &ts(n.created_at)])
                .await?;
        }
        tx.commit().await?;
        Ok((id != 0).then_some(id))
    }

    pub(crate) async fn claim(&self, now: UtcTime, lease: UtcTime, limit: u32) -> Result<Vec<Claimed>, StoreError> {
        let c = self.client().await?;
        let rows = c
            .query(
                "UPDATE notification_outbox SET send_after = $3
                 WHERE id IN (SELECT id FROM notification_outbox
                              WHERE status = 'PENDING' AND (send_after IS NULL OR send_after <= $1)
                              ORDER BY id FOR UPDATE SKIP LOCKED LIMIT $2)
                 RETURNING id, chat_id, severity::text, title, message, fail_count",
                &[&ts(now), &i64::from(limit), &ts(lease)],
            )
            .await?;
        let mut v = rows.iter().map(claimed).collect::<Result<Vec<_>, _>>()?;
        v.sort_by_key(|c| c.id);
        Ok(v)
    }

    pub(crate) async fn settle(&self, id: i64, how: Settle) -> Result<(), StoreError> {
        let c = self.client().await?;
        match how {
            Settle::Sent { at } => {
                c.execute(
                    "UPDATE notification_outbox SET status = 'SENT', sent_at = $2, send_after = NULL WHERE id = $1",
                    &[&id, &ts(at)],
                )
                .await?
            }
            Settle::Retry { send_after, failed, error } => {
                c.execute(
                    "UPDATE notification_outbox SET send_after = $2, fail_count = fail_count + $3, last_error = $4
                     WHERE id = $1",
                    &[&id, &ts(send_after), &i32::from(failed), &error],
                )
                .await?
            }
            Settle::Defer { send_after } => {
                c.execute("UPDATE notification_outbox SET send_after = $2 WHERE id = $1", &[&id, &ts(send_after)])
                    .await?
            }
            Settle::Failed { error, failed } => {
                c.execute(
                    "UPDATE notification_outbox SET status = 'FAILED', send_after = NULL,
                       fail_count = fail_count + $3, last_error = $2 WHERE id = $1",
                    &[&id, &error, &i32::from(failed)],
                )
                .await?
            }
        };
        Ok(())
    }

    pub(crate) async fn migrate_chat(&self, from: i64, to: i64) -> Result<(), StoreError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        tx.execute("UPDATE telegram_chats SET chat_id = $2 WHERE chat_id = $1", &[&from, &to]).await?;
        tx.execute(
            "UPDATE notification_outbox SET chat_id = $2 WHERE chat_id = $1 AND status = 'PENDING'",
            &[&from, &to],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub(crate) async fn outbox_counts(&self) -> Result<OutboxCounts, StoreError> {
        let c = self.client().await?;
        let mut counts = OutboxCounts::default();
        for r in c.query("SELECT status, count(*) FROM notification_outbox GROUP BY status", &[]).await? {
            counts.add(r.try_get(0)?, r.try_get(1)?);
        }
        Ok(counts)
    }

    pub(crate) async fn outbox_rows(&self) -> Result<Vec<OutboxRow>, StoreError> {
        let c = self.client().await?;
        let rows = c
            .query(
                "SELECT id, chat_id, severity::text, title, message, dedupe_key, created_at, send_after, sent_at,
                        fail_count, status, last_error
                 FROM notification_outbox ORDER BY id",
                &[],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(OutboxRow {
                    id: r.try_get(0)?,
                    chat_id: r.try_get(1)?,
                    severity: Severity::parse(r.try_get(2)?)?,
                    title: r.try_get(3)?,
                    message: r.try_get(4)?,
                    dedupe_key: r.try_get(5)?,
                    created_at: time(r.try_get(6)?).unwrap_or_default(),
                    send_after: time(r.try_get(7)?),
                    sent_at: time(r.try_get(8)?),
                    fail_count: r.try_get::<_, i32>(9)?.max(0) as u32,
                    status: r.try_get(10)?,
                    last_error: r.try_get(11)?,
                })
            })
            .collect()
    }
}
