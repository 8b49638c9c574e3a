//! `db sync`: PostgreSQL → PostgreSQL through pg_dump | pg_restore (as a read-only role at
//! the source), SQLite → SQLite through the online backup API (with a writer on the source),
//! and the refusals. One PostgreSQL server serves every PostgreSQL case.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use so_store::sqlite::SqliteStore;
use so_store::testing::fixture::{DaySpec, write_day};
use so_store::{Backend, EtlOptions, Store, StoreConfig, SyncOptions, run_etl, sync};

const DATE: &str = "20260114";

/// Each user table's row count and a hash of its content in a fixed order.
type Content = BTreeMap<String, (i64, String)>;

async fn pg_content(url: &str) -> Content {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap();
    let task = tokio::spawn(conn);
    let tables = client
        .query(
            "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition ORDER BY 1",
            &[],
        )
        .await
        .unwrap();
    let mut out = Content::new();
    for t in tables {
        let name: String = t.get(0);
        let row = client
            .query_one(
                &format!(
                    "SELECT count(*), coalesce(md5(string_agg(t::text, E'\\n' ORDER BY t::text)), '') FROM \"{name}\" t"
                ),
                &[],
            )
            .await
            .unwrap();
        out.insert(name, (row.get(0), row.get(1)));
    }
    // The schema too: every partition, index and function by name.
    let schema: Vec<String> = client
        .query(
            "SELECT c.relkind::text || ' ' || c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = 'public'
             UNION ALL SELECT 'f ' || proname::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
             WHERE n.nspname = 'public' ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(schema.iter().any(|s| s == "r market_ticks_20260114"), "{schema:?}");
    out.insert("(schema)".into(), (schema.len() as i64, schema.join(",")));
    drop(client);
    let _ = task.await;
    out
}

async fn pg_exec(url: &str, sql: &str) {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap();
    let task = tokio::spawn(conn);
    client.batch_execute(sql).await.unwrap();
    drop(client);
    let _ = task.await;
}

/// A migrated store loaded with one small archive day (every table gets rows).
async fn loaded(store: &Store) {
    let archive = tempfile::tempdir().unwrap();
    write_day(archive.path(), &DaySpec::small(DATE)).unwrap();
    store.migrate().await.unwrap();
    store.maintain(so_store::parse_day(DATE).unwrap(), 2).await.unwrap();
    let report = run_etl(store, archive.path(), &EtlOptions { date: DATE.into(), batch_rows: 500, progress: false })
        .await
        .unwrap();
    assert!(report.ok, "{report:?}");
}

#[tokio::test]
async fn postgres_sync_copies_everything_replaces_on_rerun_and_only_reads_the_source() {
    let server = common::pg();
    let src = server.create_db("prod").unwrap();
    let dst = server.create_db("local").unwrap();
    let store =
        Store::open(&StoreConfig { url: Some(src.clone()), ..StoreConfig::default() }, Path::new("/x")).await.unwrap();
    loaded(&store).await;
    drop(store);
    // The source is read as a role that cannot write anything.
    pg_exec(
        &src,
        "CREATE ROLE reader LOGIN; GRANT CONNECT ON DATABASE prod TO reader; GRANT USAGE ON SCHEMA public TO reader;
         GRANT SELECT ON ALL TABLES IN SCHEMA public TO reader;
         GRANT SELECT ON ALL SEQUENCES IN SCHEMA public TO reader;
         ALTER ROLE reader SET default_transaction_read_only = on;",
    )
    .await;
    let reader = src.replace("postgres@", "reader@");
    let before = pg_content(&src).await;
    assert!(before["market_ticks"].0 > 0 && before["scalp_ticks"].0 > 0 && before["system_events"].0 > 0);

    let opts = SyncOptions::default();
    let r = sync(&reader, &dst, &opts).await.unwrap();
    assert_eq!(r.kind, "postgres");
    assert!(r.bytes > 0, "{r:?}");
    assert_eq!(r.from, format!("postgres://reader@127.0.0.1:{}/prod?sslmode=disable", server.port()));
    let copied = pg_content(&dst).await;
    assert_eq!(copied, before, "the destination equals the source, table by table");
    let reported: BTreeMap<&str, i64> = r.tables.iter().map(|t| (t.table.as_str(), t.rows as i64)).collect();
    for (table, (rows, _)) in before.iter().filter(|(t, _)| *t != "(schema)") {
        assert_eq!(reported.get(table.as_str()), Some(rows), "{table} in the report: {r:?}");
    }
    assert_eq!(pg_content(&src).await, before, "the source is unchanged");

    // A second run replaces: rows changed or added at the destination go, nothing doubles.
    pg_exec(&dst, "DELETE FROM system_events; UPDATE eod_prices SET close = close + 1;").await;
    let again = sync(&reader, &dst, &opts).await.unwrap();
    assert_eq!(pg_content(&dst).await, before);
    assert_eq!(again.total_rows(), r.total_rows());

    // Refusals: the same database under another name; an unreachable source, which leaves
    // the destination as it was; mixed kinds.
    let same = sync(&src, &dst.replace("127.0.0.1", "localhost").replace("/local", "/prod"), &opts).await.unwrap_err();
    assert!(same.to_string().contains("same database"), "{same}");
    let gone = format!("postgres://reader@127.0.0.1:{}/prod", free_port());
    let e = sync(&gone, &dst, &opts).await.unwrap_err().to_string();
    assert!(e.contains("the source postgres://reader@") && e.contains("Connection refused"), "{e}");
    // pg_dump failing part-way (a table the role may not read) and psql failing (no such
    // database) are reported by name, with their own words.
    pg_exec(&src, "CREATE TABLE zz_private (x int); INSERT INTO zz_private VALUES (1);").await;
    let e = sync(&reader, &dst, &opts).await.unwrap_err().to_string();
    assert!(e.starts_with("pg_dump failed") && e.contains("permission denied") && e.contains("unchanged"), "{e}");
    assert_eq!(pg_content(&dst).await, before, "a failed sync leaves the destination as it was");
    pg_exec(&src, "DROP TABLE zz_private").await;
    let e = sync(&reader, &dst.replace("/local", "/nowhere"), &opts).await.unwrap_err().to_string();
    assert!(e.starts_with("psql failed") && e.contains("\"nowhere\" does not exist"), "{e}");
    let dir = tempfile::tempdir().unwrap();
    let mixed = sync(&src, &dir.path().join("x.db").display().to_string(), &opts).await.unwrap_err();
    assert!(mixed.to_string().contains("both sides must be"), "{mixed}");
    let missing = SyncOptions { tools_dir: Some(dir.path().to_path_buf()), ..SyncOptions::default() };
    let e = sync(&reader, &dst, &missing).await.unwrap_err().to_string();
    assert!(e.contains("pg_dump not found") && e.contains("postgresql-client"), "{e}");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Every table's rows of a SQLite file, as text, in a fixed order.
fn sqlite_content(path: &Path) -> BTreeMap<String, Vec<String>> {
    let c = rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let names: Vec<String> = c
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let mut out = BTreeMap::new();
    for name in names {
        let mut st = c.prepare(&format!("SELECT * FROM \"{name}\"")).unwrap();
        let n = st.column_count();
        let mut rows: Vec<String> = st
            .query_map([], |r| Ok((0..n).map(|i| format!("{:?}", r.get_ref(i).unwrap())).collect::<Vec<_>>().join("|")))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        rows.sort();
        out.insert(name, rows);
    }
    out
}

/// A closed SQLite store loaded with one archive day.
async fn sqlite_source(dir: &Path) -> PathBuf {
    let path = dir.join("prod").join("observer.db");
    let store = Store::Sqlite(SqliteStore::open(&path).unwrap());
    loaded(&store).await;
    drop(store);
    path
}

#[tokio::test]
async fn sqlite_sync_is_a_snapshot_and_never_touches_the_source() {
    let dir = tempfile::tempdir().unwrap();
    let src = sqlite_source(dir.path()).await;
    let bytes = std::fs::read(&src).unwrap();
    let mtime = std::fs::metadata(&src).unwrap().modified().unwrap();
    let content = sqlite_content(&src);
    assert!(content["market_ticks"].len() > 10);
    let dst = dir.path().join("local").join("observer.db");

    let r = sync(&format!("sqlite://{}", src.display()), &dst.display().to_string(), &SyncOptions::default())
        .await
        .unwrap();
    assert_eq!(r.kind, "sqlite");
    assert!(r.pages.unwrap() > 0 && r.bytes == std::fs::metadata(&dst).unwrap().len(), "{r:?}");
    assert_eq!(sqlite_content(&dst), content);
    let reported: BTreeMap<&str, usize> = r.tables.iter().map(|t| (t.table.as_str(), t.rows as usize)).collect();
    assert_eq!(reported["market_ticks"], content["market_ticks"].len());
    assert_eq!(std::fs::read(&src).unwrap(), bytes, "source bytes unchanged");
    assert_eq!(std::fs::metadata(&src).unwrap().modified().unwrap(), mtime, "source mtime unchanged");
    assert!(!dir.path().join("local/observer.db.tmp").exists());

    // Re-running replaces a destination that was written to since.
    {
        let c = rusqlite::Connection::open(&dst).unwrap();
        c.execute("DELETE FROM market_ticks", []).unwrap();
    }
    sync(&src.display().to_string(), &dst.display().to_string(), &SyncOptions::default()).await.unwrap();
    assert_eq!(sqlite_content(&dst), content);
    assert_eq!(std::fs::read(&src).unwrap(), bytes);

    // Refusals.
    let same = sync(&src.display().to_string(), &format!("sqlite://{}", src.display()), &SyncOptions::default())
        .await
        .unwrap_err();
    assert!(same.to_string().contains("same database"), "{same}");
    let missing = dir.path().join("nope.db");
    let e =
        sync(&missing.display().to_string(), &dst.display().to_string(), &SyncOptions::default()).await.unwrap_err();
    assert!(e.to_string().contains("does not exist"), "{e}");
    assert!(!missing.exists(), "a missing source is not created");
    let e = sync("mysql://h/db", &dst.display().to_string(), &SyncOptions::default()).await.unwrap_err();
    assert!(e.to_string().contains("expected postgres://"), "{e}");
    let e = sync(&src.display().to_string(), "postgres://u@127.0.0.1/x", &SyncOptions::default()).await.unwrap_err();
    assert!(e.to_string().contains("both sides must be"), "{e}");
}

#[tokio::test]
async fn sqlite_sync_copies_a_consistent_snapshot_while_the_source_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("prod.db");
    {
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch(
            "PRAGMA journal_mode=WAL; CREATE TABLE a (id INTEGER PRIMARY KEY, pad BLOB);
             CREATE TABLE b (id INTEGER PRIMARY KEY, pad BLOB);",
        )
        .unwrap();
        // Enough pages for the copy to take several steps.
        let tx = c.unchecked_transaction().unwrap();
        for i in 0..20_000 {
            tx.execute("INSERT INTO a VALUES (?1, zeroblob(1000))", [i]).unwrap();
            tx.execute("INSERT INTO b VALUES (?1, zeroblob(1000))", [i]).unwrap();
        }
        tx.commit().unwrap();
    }
    // The writer adds a row to both tables in each transaction: any consistent snapshot has
    // as many rows in `a` as in `b`.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (path, stop) = (path.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut c = rusqlite::Connection::open(&path).unwrap();
            c.busy_timeout(std::time::Duration::from_secs(10)).unwrap();
            let mut n = 0u64;
            let mut i = 20_000;
            while !stop.load(Ordering::Relaxed) {
                let tx = c.transaction().unwrap();
                tx.execute("INSERT INTO a VALUES (?1, zeroblob(1000))", [i]).unwrap();
                tx.execute("INSERT INTO b VALUES (?1, zeroblob(1000))", [i]).unwrap();
                tx.commit().unwrap();
                i += 1;
                n += 1;
            }
            n
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(50));
    let dst = dir.path().join("local.db");
    let r = sync(&path.display().to_string(), &dst.display().to_string(), &SyncOptions::default()).await;
    stop.store(true, Ordering::Relaxed);
    let written = writer.join().unwrap();
    let r = r.unwrap();
    assert!(written > 0, "the writer kept writing during the copy");
    let rows: BTreeMap<&str, u64> = r.tables.iter().map(|t| (t.table.as_str(), t.rows)).collect();
    assert!(rows["a"] >= 20_000 && rows["a"] == rows["b"], "a consistent snapshot: {rows:?}");
    let c = rusqlite::Connection::open(&dst).unwrap();
    let check: String = c.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(check, "ok");
}
