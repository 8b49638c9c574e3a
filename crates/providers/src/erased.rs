//! [`AnyProvider`]: any [`MarketProvider`] behind one concrete type, so the provider
//! registry can hand the engine adapters of different venues in one list. The engine stays
//! generic over `MarketProvider`; the cost is one boxed future per REST call or stream
//! session, and nothing per frame (frames are parsed by the provider's [`Mapper`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use jiff::civil::Date;
use tokio::sync::{mpsc, watch};

use model::{Provider, RawFrame, Symbol};

use crate::{Mapper, MarketProvider, ProviderError, SlotBudget, UniverseEntry, VolumeRanking};

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// `MarketProvider` with its futures boxed (the trait's `impl Future` returns are not
/// object safe).
trait Erased: Send + Sync + 'static {
    fn id(&self) -> Provider;
    fn mapper(&self) -> Mapper;
    fn slot_budget(&self) -> SlotBudget;
    fn universe(&self, day: Date) -> BoxFuture<'_, Result<Vec<UniverseEntry>, ProviderError>>;
    fn snapshot(&self, symbol: Symbol) -> BoxFuture<'_, Result<RawFrame, ProviderError>>;
    fn check_credentials(&self) -> BoxFuture<'_, Result<(), ProviderError>>;
    fn set_trades_only(&self, on: bool);
    fn volume_ranking(&self) -> BoxFuture<'_, Result<VolumeRanking, ProviderError>>;
    fn stream(
        &self,
        subscriptions: watch::Receiver<Vec<Symbol>>,
        out: mpsc::Sender<RawFrame>,
        stop: watch::Receiver<bool>,
    ) -> BoxFuture<'_, Result<(), ProviderError>>;
}

impl<P: MarketProvider> Erased for P {
    fn id(&self) -> Provider {
        MarketProvider::id(self)
    }
    fn mapper(&self) -> Mapper {
        MarketProvider::mapper(self)
    }
    fn slot_budget(&self) -> SlotBudget {
        MarketProvider::slot_budget(self)
    }
    fn universe(&self, day: Date) -> BoxFuture<'_, Result<Vec<UniverseEntry>, ProviderError>> {
        Box::pin(MarketProvider::universe(self, day))
    }
    fn snapshot(&self, symbol: Symbol) -> BoxFuture<'_, Result<RawFrame, ProviderError>> {
        Box::pin(async move { MarketProvider::snapshot(self, &symbol).await })
    }
    fn check_credentials(&self) -> BoxFuture<'_, Result<(), ProviderError>> {
        Box::pin(MarketProvider::check_credentials(self))
    }
    fn set_trades_only(&self, on: bool) {
        MarketProvider::set_trades_only(self, on)
    }
    fn volume_ranking(&self) -> BoxFuture<'_, Result<VolumeRanking, ProviderError>> {
        Box::pin(MarketProvider::volume_ranking(self))
    }
    fn stream(
        &self,
        subscriptions: watch::Receiver<Vec<Symbol>>,
        out: mpsc::Sender<RawFrame>,
        stop: watch::Receiver<bool>,
    ) -> BoxFuture<'_, Result<(), ProviderError>> {
        Box::pin(MarketProvider::stream(self, subscriptions, out, stop))
    }
}

/// One adapter of any venue. Cheap to clone.
#[derive(Clone)]
pub struct AnyProvider(Arc<dyn Erased>);

impl AnyProvider {
    pub fn new(provider: impl MarketProvider) -> Self {
        AnyProvider(Arc::new(provider))
    }

    /// An adapter the caller keeps a handle to (a test inspecting what the engine asked).
    pub fn shared<P: MarketProvider>(provider: Arc<P>) -> Self {
        AnyProvider(provider)
    }
}

impl std::fmt::Debug for AnyProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AnyProvider({})", self.0.id())
    }
}

impl MarketProvider for AnyProvider {
    fn id(&self) -> Provider {
        self.0.id()
    }
    fn mapper(&self) -> Mapper {
        self.0.mapper()
    }
    fn slot_budget(&self) -> SlotBudget {
        self.0.slot_budget()
    }
    fn universe(&self, day: Date) -> impl Future<Output = Result<Vec<UniverseEntry>, ProviderError>> + Send {
        self.0.universe(day)
    }
    fn snapshot(&self, symbol: &Symbol) -> impl Future<Output = Result<RawFrame, ProviderError>> + Send {
        // The trait's future borrows only `self`: the symbol is moved in.
        self.0.snapshot(symbol.clone())
    }
    fn check_credentials(&self) -> impl Future<Output = Result<(), ProviderError>> + Send {
        self.0.check_credentials()
    }
    fn set_trades_only(&self, on: bool) {
        self.0.set_trades_only(on)
    }
    fn volume_ranking(&self) -> impl Future<Output = Result<VolumeRanking, ProviderError>> + Send {
        self.0.volume_ranking()
    }
    fn stream(
        &self,
        subscriptions: watch::Receiver<Vec<Symbol>>,
        out: mpsc::Sender<RawFrame>,
        stop: watch::Receiver<bool>,
    ) -> impl Future<Output = Result<(), ProviderError>> + Send {
        self.0.stream(subscriptions, out, stop)
    }
}
