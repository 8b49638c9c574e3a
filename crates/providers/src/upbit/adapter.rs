//! `UpbitProvider`: the Upbit adapter behind the `MarketProvider` seam, over the quotation
//! REST API ([`super::rest`]) and the WebSocket ([`super::stream`] hooks in the shared
//! session loop). The stream archives everything it sends and every connection open/close,
//! and reports any end it was not asked for as `StreamEnded`.

use jiff::civil::Date;
use model::{Clock, Provider, RawFrame, Symbol};
use tokio::sync::{mpsc, watch};

use super::config::UpbitConfig;
use super::rest::RestClient;
use super::stream::{StreamState, SubState, UpbitVenue};
use super::wire::{MarketInfo, Ticker};
use crate::provider::{MarketProvider, ProviderError, UniverseEntry};

pub struct UpbitProvider {
    clock: Clock,
    rest: RestClient,
    stream: StreamState,
}

impl UpbitProvider {
    pub fn new(cfg: UpbitConfig, clock: Clock) -> Result<Self, ProviderError> {
        let stream = StreamState::new(&cfg, clock);
        Ok(UpbitProvider { clock, rest: RestClient::new(cfg, clock)?, stream })
    }

    pub fn config(&self) -> &UpbitConfig {
        self.rest.config()
    }

    /// The state of each subscribed code on the current (or last) connection.
    pub fn subscription_states(&self) -> Vec<(Symbol, SubState)> {
        self.stream.subscription_states()
    }

    pub async fn market_all_frame(&self) -> Result<RawFrame, ProviderError> {
        self.rest.market_all_frame().await
    }
    pub async fn market_all(&self) -> Result<Vec<MarketInfo>, ProviderError> {
        self.rest.market_all().await
    }
    /// `/ticker` for up to `ticker_chunk` markets, as the raw frame.
    pub async fn ticker_frame(&self, markets: &[Symbol]) -> Result<RawFrame, ProviderError> {
        self.rest.ticker_frame(markets).await
    }
    /// Typed tickers for any number of markets (requested in chunks).
    pub async fn tickers(&self, markets: &[Symbol]) -> Result<Vec<Ticker>, ProviderError> {
        self.rest.tickers(markets).await
    }
    /// The quote market's pairs with their tickers: what the engine's crypto universe filter
    /// (quote market, 24 h traded value) ranks.
    pub async fn listed_with_tickers(&self) -> Result<Vec<(MarketInfo, Ticker)>, ProviderError> {
        self.rest.listed_with_tickers().await
    }
}

impl MarketProvider for UpbitProvider {
    fn id(&self) -> Provider {
        Provider::Upbit
    }

    fn mapper(&self) -> crate::Mapper {
        <super::Upbit as crate::module::ProviderModule>::mapper()
    }

    /// Crypto trades around the clock, so the universe is the current listing whatever `day`.
    async fn universe(&self, _day: Date) -> Result<Vec<UniverseEntry>, ProviderError> {
        Ok(self
            .listed_with_tickers()
            .await?
            .into_iter()
            .map(|(info, t)| UniverseEntry {
                symbol: info.market,
                name: info.korean_name,
                prev_close: t.prev_closing_price,
                traded_value_24h: Some(model::Price::from(t.acc_trade_price_24h)),
            })
            .collect())
    }

    async fn snapshot(&self, symbol: &Symbol) -> Result<RawFrame, ProviderError> {
        match self.ticker_frame(std::slice::from_ref(symbol)).await {
            Err(ProviderError::Request { why, .. }) if why.contains("Code not found") => {
                Err(ProviderError::UnknownSymbol(symbol.clone()))
            }
            other => other,
        }
    }

    async fn stream(
        &self,
        subscriptions: watch::Receiver<Vec<Symbol>>,
        out: mpsc::Sender<RawFrame>,
        stop: watch::Receiver<bool>,
    ) -> Result<(), ProviderError> {
        let mut venue = UpbitVenue::new(self.rest.config(), self.clock, &self.stream);
        crate::ws_session::run(&mut venue, self.clock, subscriptions, out, stop).await
    }
}
