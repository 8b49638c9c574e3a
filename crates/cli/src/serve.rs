//! `stock-observer serve`: `/api/v1` over a database and archive without collecting (the
//! central hub's API, or a look at an edge's data while nothing records).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};

use model::Clock;
use store::Backend;

#[derive(clap::Args)]
pub struct Args {
    /// Configuration file (default: the embedded configs/observer.yaml; APP_ENV selects an overlay).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The data dir: its API keys (`auth/api_keys.json`) and, unless `store.url` is set, its
    /// database (`observer.db`).
    #[arg(long, value_name = "DIR", default_value = "./data")]
    data_dir: PathBuf,
    /// Listen here instead of `http.listen`.
    #[arg(long, value_name = "ADDR:PORT")]
    listen: Option<SocketAddr>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let settings = crate::load_config(args.config.as_deref())?.settings;
    let mut http = settings.http.clone();
    if let Some(l) = args.listen {
        http.listen = l;
    }
    let sessions = api::session::Sessions::from_env(settings.api.session_ttl.get().as_secs() as i64)?;
    let keys = Arc::new(api::keys::KeyStore::open(&args.data_dir).with_sessions(sessions));
    if !http.is_loopback() {
        if !http.allow_remote {
            bail!("refusing to listen on {} (not loopback) without http.allow_remote: true", http.listen);
        }
        if !keys.any_active().context("reading the API keys")? {
            bail!(
                "refusing to serve /api/v1 on {} with no API key: create one with `stock-observer apikey create --data-dir {} --scope read`",
                http.listen,
                args.data_dir.display()
            );
        }
    }
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the async runtime")?;
    runtime.block_on(async move {
        let db = store::Store::open(&settings.store, &args.data_dir).await.context("opening the database")?;
        let described = db.describe();
        // A read-only API does not change the schema: a database not migrated is the
        // operator's to migrate, and says so now rather than as a 503 on every request.
        let status = db.status().await.with_context(|| format!("reading the migrations of {described}"))?;
        if let Some(problem) = status.problem() {
            return Err(anyhow::Error::from(problem).context(format!("cannot serve {described}")));
        }
        if status.pending() > 0 {
            bail!(
                "{described} has {} migration(s) pending: run `stock-observer db migrate --data-dir {}` (or point store.url at a migrated database)",
                status.pending(),
                args.data_dir.display()
            );
        }
        // The same backups `stock-observer backup create` makes, for POST /api/v1/admin/backup.
        let upkeep = lifecycle::upkeep::Upkeep::new(
            &args.data_dir,
            settings.backup.clone(),
            settings.compression.clone(),
            settings.retention.clone(),
        );
        let state = api::v1::ApiState {
            upkeep: Some(Arc::new(upkeep)),
            etl_batch_rows: settings.store.batch_rows,
            ..api::v1::ApiState::new(Arc::new(db), args.data_dir.clone(), Clock::real(), settings.api)
        };
        let app = api::v1::standalone(state, keys, described.clone());
        let (stop_tx, stop) = tokio::sync::watch::channel(false);
        let listener = api::serve_app(&http, app, Arc::default(), stop).await?;
        eprintln!("serving /api/v1 on http://{} over {described}; Ctrl-C stops", listener.addr);
        tokio::signal::ctrl_c().await.context("waiting for Ctrl-C")?;
        let _ = stop_tx.send(true);
        Ok(ExitCode::SUCCESS)
    })
}
