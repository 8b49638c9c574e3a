use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use jiff::civil::DateTime;

use model::{Clock, UtcTime};

use crate::sources::{self, Binds};

#[derive(clap::Args)]
pub struct Args {
    /// The first fake server's REST listens here; every registered provider takes two
    /// consecutive ports (REST, WebSocket) in registry order: KIS REST and WebSocket, then
    /// Upbit's. Port 0 picks free ports.
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:0")]
    bind: SocketAddr,
    /// Configuration file (sim market, fake-server behaviour).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Run the simulated clock N times faster than real time.
    #[arg(long, value_name = "N", default_value_t = 1.0, value_parser = crate::collect::parse_speed)]
    speed: f64,
    /// Start the simulated clock at this Seoul date and time (default: 09:30, the opening of
    /// Track B's window, on the latest trading day on or before today).
    #[arg(long, value_name = "YYYY-MM-DDTHH:MM", value_parser = crate::collect::parse_start)]
    start: Option<DateTime>,
    /// Also serve a fake Telegram Bot API here and print each message it receives: point
    /// `alerts.telegram.api_base` at it to watch a collector's alerts without Telegram. It
    /// accepts the token in TELEGRAM_BOT_TOKEN (or `sim:token` when unset).
    #[arg(long, value_name = "ADDR:PORT")]
    telegram: Option<SocketAddr>,
}

/// The token the fake Bot API takes when TELEGRAM_BOT_TOKEN is not set.
const SIM_BOT_TOKEN: &str = "sim:token";

/// Serves the fake Bot API on `addr` (an error now if it cannot bind).
async fn fake_telegram(addr: SocketAddr) -> anyhow::Result<alerts::telegram::fake::FakeBotApi> {
    let token = std::env::var(alerts::TOKEN_ENV).ok().filter(|t| !t.is_empty()).unwrap_or(SIM_BOT_TOKEN.to_string());
    let fake = alerts::telegram::fake::FakeBotApi::start_on(addr, &token)
        .await
        .with_context(|| format!("fake Telegram Bot API on {addr}"))?;
    println!("fake Telegram Bot API: {} (alerts.telegram.api_base)", fake.base_url());
    Ok(fake)
}

/// Prints what each chat would show, as it arrives.
async fn print_messages(fake: alerts::telegram::fake::FakeBotApi) {
    let mut shown = 0;
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let got = fake.received();
        for m in &got[shown..] {
            println!("telegram → chat {} [{}]\n{}\n", m.chat_id, m.answered, m.shown);
        }
        shown = got.len();
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let settings = crate::load_config(args.config.as_deref())?.settings;
    let start = match args.start {
        Some(dt) => UtcTime::from_kst(dt),
        None => crate::collect::default_start(&settings)?,
    };
    let market = crate::collect::sim_market(&settings, start)?;
    let binds = Binds::from_base(args.bind);
    let clock = Clock::simulated(start, args.speed, settings.sim.clock_stall_grace.get());
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the async runtime")?;
    runtime.block_on(async move {
        let fakes = sources::start_fakes(&settings, market, clock, &binds, true).await?;
        for line in fakes.servers.iter().flat_map(|f| &f.description) {
            println!("{line}");
        }
        if let Some(addr) = args.telegram {
            tokio::spawn(print_messages(fake_telegram(addr).await?));
        }
        println!("simulated market from {} KST at {}x; Ctrl-C stops", start.kst(), args.speed);
        tokio::signal::ctrl_c().await.context("waiting for Ctrl-C")?;
        drop(fakes);
        Ok(ExitCode::SUCCESS)
    })
}
