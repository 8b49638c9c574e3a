//! Migration runner on both backends: fresh apply, re-apply is a no-op, a changed applied file
//! is refused, a failing migration leaves nothing of itself behind.

mod common;

use so_store::migrate::{postgres_migrations, sqlite_migrations};
use so_store::{Backend, Migration, MigrationState, Store, StoreError};

#[tokio::test]
async fn sqlite_migrations_apply_once_refuse_changes_and_roll_back_failures() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::open_sqlite(dir.path()).await;
    let Store::Sqlite(s) = &store else { unreachable!() };

    let st = store.status().await.unwrap();
    assert_eq!(st.mode, "sqlite");
    assert_eq!(st.pending(), sqlite_migrations().len());
    assert!(s.table_names().await.unwrap().is_empty(), "status is read-only");

    let first = store.migrate().await.unwrap();
    assert_eq!(first.applied, vec!["001_core".to_string(), "002_alerts".to_string()]);
    let again = store.migrate().await.unwrap();
    assert!(again.applied.is_empty(), "re-apply is a no-op: {again:?}");
    let st = store.status().await.unwrap();
    assert_eq!(st.pending(), 0);
    assert!(matches!(st.migrations[0].state, MigrationState::Applied { .. }));

    // A changed applied file is refused by status and migrate.
    let mut changed = sqlite_migrations();
    changed[0].sql.push_str("\n-- edited\n");
    let st = s.status_files(changed.clone()).await.unwrap();
    assert!(matches!(st.migrations[0].state, MigrationState::Changed { .. }));
    assert!(matches!(st.problem(), Some(StoreError::MigrationChanged { version: 1, .. })));
    let err = s.migrate_files(changed).await.unwrap_err();
    assert!(err.to_string().contains("001_core was changed"), "{err}");

    // A failing migration leaves no partial schema and no ledger row.
    let before = s.table_names().await.unwrap();
    let mut files = sqlite_migrations();
    let next = files.len() as u32 + 1;
    files.push(Migration::new(next, "broken", "CREATE TABLE half_done (x INTEGER); INSERT INTO nowhere VALUES (1);"));
    let err = s.migrate_files(files.clone()).await.unwrap_err();
    assert!(matches!(err, StoreError::MigrationFailed { version, .. } if version == next), "{err}");
    assert_eq!(s.table_names().await.unwrap(), before);
    let st = s.status_files(files).await.unwrap();
    assert_eq!(st.pending(), 1);
}

#[tokio::test]
async fn postgres_migrations_apply_once_refuse_changes_and_roll_back_failures() {
    let server = common::pg();
    let store = common::open_pg(&server, "migr").await;
    let Store::Postgres(p) = &store else { unreachable!() };

    // Status of a never-migrated database: everything pending, and nothing created (it runs
    // under read-only roles too).
    let st = store.status().await.unwrap();
    assert_eq!(st.pending(), postgres_migrations().len());
    assert!(p.table_names().await.unwrap().is_empty(), "status is read-only");

    let first = store.migrate().await.unwrap();
    // No TimescaleDB here: native mode, the timescale file recorded as skipped.
    assert_eq!(first.mode, "native");
    assert_eq!(
        first.applied,
        vec!["001_core", "002_native_partitions", "004_staging", "005_identifier_collation", "006_alerts"]
    );
    assert_eq!(first.skipped, vec!["003_timescale"]);
    let again = store.migrate().await.unwrap();
    assert!(again.applied.is_empty() && again.skipped.is_empty(), "{again:?}");
    let st = store.status().await.unwrap();
    assert_eq!(st.mode, "native");
    assert_eq!(st.pending(), 0);
    assert!(matches!(st.migrations[2].state, MigrationState::Skipped { .. }));

    let mut changed = postgres_migrations();
    changed[1].sql.push_str("\n-- edited\n");
    let err = p.migrate_files(changed.clone()).await.unwrap_err();
    assert!(matches!(err, StoreError::MigrationChanged { version: 2, .. }), "{err}");
    assert!(p.status_files(changed).await.unwrap().problem().is_some());

    let before = p.table_names().await.unwrap();
    let mut files = postgres_migrations();
    files.push(Migration::new(
        9,
        "broken",
        "CREATE TABLE half_done (x INT); CREATE FUNCTION half_fn() RETURNS INT LANGUAGE sql AS 'SELECT 1'; \
         INSERT INTO nowhere VALUES (1);",
    ));
    let err = p.migrate_files(files.clone()).await.unwrap_err();
    assert!(matches!(err, StoreError::MigrationFailed { version: 9, .. }), "{err}");
    assert_eq!(p.table_names().await.unwrap(), before, "nothing of the failed file remains");
    assert_eq!(p.status_files(files).await.unwrap().pending(), 1);

    // The maintenance function creates daily partitions ahead, idempotently.
    let day = so_store::parse_day("20260114").unwrap();
    assert_eq!(store.maintain(day, 3).await.unwrap(), 6);
    assert_eq!(store.maintain(day, 3).await.unwrap(), 0);
    let parts = p
        .scalar_i64("SELECT count(*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE c.relkind = 'r' AND c.relname LIKE 'market_ticks_2026011%'")
        .await
        .unwrap();
    assert_eq!(parts, 3);
    // Partitions made after migration 005 compare the tick key's text columns bytewise.
    let c_keys = p
        .scalar_i64(
            "SELECT count(*) FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid \
             JOIN pg_collation k ON k.oid = a.attcollation WHERE c.relname = 'market_ticks_20260115' \
             AND a.attname IN ('symbol', 'provider', 'trade_id') AND k.collname = 'C'",
        )
        .await
        .unwrap();
    assert_eq!(c_keys, 3);
}
