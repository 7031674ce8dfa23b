//! Batched loading of the edges between objects, so a page of N items costs a constant number
//! of queries instead of N + 1.
//!
//! Loaders live for one request and cache what they loaded. A list resolver prefetches the
//! edges its selection asks for in one batch ([`prefetch`]); each item then finds its edge in
//! the cache. That makes the number of queries fixed, where DataLoader's batching window alone
//! (1 ms) would depend on how fast the items happen to be resolved.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use async_graphql::Context;
use async_graphql::dataloader::{DataLoader, HashMapCache, Loader};
use uuid::Uuid;

use crate::error::AppError;
use crate::state::AppState;

/// A request's loader of `T`.
pub type RequestLoader<T> = DataLoader<T, HashMapCache>;

/// A request's loaders, each made when first used: most operations on a socket (a signal, a
/// subscription's start) need none, and a subscription keeps its request data while it lasts.
/// Keyed by the loader's type, so that each domain keeps its loaders with it.
pub struct Loaders {
    state: AppState,
    made: Mutex<HashMap<TypeId, Arc<dyn Any + Send + Sync>>>,
}

impl Loaders {
    pub fn new(state: AppState) -> Self {
        Self {
            state,
            made: Mutex::default(),
        }
    }
}

/// A loader a request makes on first use.
pub trait RequestScoped: Loader<Uuid> + Sized {
    fn new(state: AppState) -> Self;
}

/// The request's loader of `T`.
pub fn loader<T: RequestScoped>(ctx: &Context<'_>) -> Arc<RequestLoader<T>> {
    let loaders = ctx.data_unchecked::<Loaders>();
    let mut made = loaders.made.lock().unwrap_or_else(PoisonError::into_inner);
    let made = made.entry(TypeId::of::<T>()).or_insert_with(|| {
        Arc::new(DataLoader::with_cache(
            T::new(loaders.state.clone()),
            tokio::spawn,
            HashMapCache::default(),
        ))
    });
    Arc::clone(made)
        .downcast()
        .expect("the entry of a type holds that type's loader")
}

/// Loads the edges of many items at once if the selection of a connection asks for `field` on
/// its nodes, and puts them in the request's cache, where the items' `load_one` calls find
/// them. This calls the loader directly: DataLoader's own batching would first wait out its
/// batching window.
pub async fn prefetch<T: RequestScoped + Loader<Uuid, Error = AppError>>(
    ctx: &Context<'_>,
    field: &str,
    keys: impl IntoIterator<Item = Uuid>,
) -> Result<(), AppError> {
    if selects(ctx, field) {
        let mut keys: Vec<Uuid> = keys.into_iter().collect();
        keys.sort_unstable();
        keys.dedup();
        let loader = loader::<T>(ctx);
        let found = loader.loader().load(&keys).await?;
        loader.feed_many(found).await;
    }
    Ok(())
}

/// Whether the selection of a connection asks for `field` on its nodes.
pub fn selects(ctx: &Context<'_>, field: &str) -> bool {
    let selection = ctx.look_ahead();
    selection.field("edges").field("node").field(field).exists()
        || selection.field("nodes").field(field).exists()
}
