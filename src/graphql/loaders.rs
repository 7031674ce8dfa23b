//! Batched loading of the edges between objects, so a page of N items costs a constant number
//! of queries instead of N + 1.
//!
//! Loaders live for one request and cache what they loaded. A list resolver prefetches the
//! edges its selection asks for in one batch ([`prefetch`]); each item then finds its edge in
//! the cache. That makes the number of queries fixed, where DataLoader's batching window alone
//! (1 ms) would depend on how fast the items happen to be resolved.

use std::collections::HashMap;
use std::sync::OnceLock;

use async_graphql::Context;
use async_graphql::dataloader::{DataLoader, HashMapCache, Loader};
use uuid::Uuid;

use crate::doctors::model::{Doctor, LicenceInfo};
use crate::error::AppError;
use crate::payments::model::PaymentRow;
use crate::reviews::model::Review;
use crate::state::AppState;
use crate::users::model::User;
use crate::{doctors, payments, reviews, users};

/// A request's loader of `T`.
pub type RequestLoader<T> = DataLoader<T, HashMapCache>;

/// A request's loaders, each made when first used: most operations on a socket (a signal, a
/// subscription's start) need none, and a subscription keeps its request data while it lasts.
pub struct Loaders {
    state: AppState,
    users: OnceLock<RequestLoader<UserLoader>>,
    licences: OnceLock<RequestLoader<LicenceLoader>>,
    doctors: OnceLock<RequestLoader<DoctorLoader>>,
    reviews: OnceLock<RequestLoader<ReviewLoader>>,
    payments: OnceLock<RequestLoader<PaymentLoader>>,
}

impl Loaders {
    pub fn new(state: AppState) -> Self {
        Self {
            state,
            users: OnceLock::new(),
            licences: OnceLock::new(),
            doctors: OnceLock::new(),
            reviews: OnceLock::new(),
            payments: OnceLock::new(),
        }
    }
}

/// A loader kept in [`Loaders`].
pub trait RequestScoped: Loader<Uuid> + Sized {
    fn new(state: AppState) -> Self;
    fn slot(loaders: &Loaders) -> &OnceLock<RequestLoader<Self>>;
}

/// The request's loader of `T`.
pub fn loader<'a, T: RequestScoped>(ctx: &'a Context<'_>) -> &'a RequestLoader<T> {
    let loaders = ctx.data_unchecked::<Loaders>();
    T::slot(loaders).get_or_init(|| {
        DataLoader::with_cache(
            T::new(loaders.state.clone()),
            tokio::spawn,
            HashMapCache::default(),
        )
    })
}

macro_rules! request_scoped {
    ($loader:ident, $field:ident) => {
        impl RequestScoped for $loader {
            fn new(state: AppState) -> Self {
                Self(state)
            }

            fn slot(loaders: &Loaders) -> &OnceLock<RequestLoader<Self>> {
                &loaders.$field
            }
        }
    };
}

request_scoped!(UserLoader, users);
request_scoped!(LicenceLoader, licences);
request_scoped!(DoctorLoader, doctors);
request_scoped!(ReviewLoader, reviews);
request_scoped!(PaymentLoader, payments);

/// Loads the edges of many items at once if the selection of a connection asks for `field` on
/// its nodes, and puts them in the request's cache, where the items' `load_one` calls find
/// them. This calls the loader directly: DataLoader's own batching would first wait out its
/// batching window.
pub async fn prefetch<T: RequestScoped + Loader<Uuid, Error = AppError>>(
    ctx: &Context<'_>,
    field: &str,
    keys: impl IntoIterator<Item = Uuid>,
) -> Result<(), AppError> {
    let selection = ctx.look_ahead();
    let selected = selection.field("edges").field("node").field(field).exists()
        || selection.field("nodes").field(field).exists();
    if selected {
        let mut keys: Vec<Uuid> = keys.into_iter().collect();
        keys.sort_unstable();
        keys.dedup();
        let loader = loader::<T>(ctx);
        let found = loader.loader().load(&keys).await?;
        loader.feed_many(found).await;
    }
    Ok(())
}

pub struct UserLoader(pub AppState);

impl Loader<Uuid> for UserLoader {
    type Value = User;
    type Error = AppError;

    async fn load(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, User>, AppError> {
        users::service::find_many(&self.0, ids).await
    }
}

/// Licence details by doctor id.
pub struct LicenceLoader(pub AppState);

impl Loader<Uuid> for LicenceLoader {
    type Value = LicenceInfo;
    type Error = AppError;

    async fn load(&self, doctor_ids: &[Uuid]) -> Result<HashMap<Uuid, LicenceInfo>, AppError> {
        doctors::service::licence_infos(&self.0, doctor_ids).await
    }
}

/// Doctors by id, in any verification state (an appointment keeps showing its doctor).
pub struct DoctorLoader(pub AppState);

impl Loader<Uuid> for DoctorLoader {
    type Value = Doctor;
    type Error = AppError;

    async fn load(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, Doctor>, AppError> {
        doctors::service::find_many(&self.0, ids).await
    }
}

/// Payments by appointment id.
pub struct PaymentLoader(pub AppState);

impl Loader<Uuid> for PaymentLoader {
    type Value = PaymentRow;
    type Error = AppError;

    async fn load(&self, appointment_ids: &[Uuid]) -> Result<HashMap<Uuid, PaymentRow>, AppError> {
        payments::service::for_appointments(&self.0, appointment_ids).await
    }
}

/// Reviews by appointment id.
pub struct ReviewLoader(pub AppState);

impl Loader<Uuid> for ReviewLoader {
    type Value = Review;
    type Error = AppError;

    async fn load(&self, appointment_ids: &[Uuid]) -> Result<HashMap<Uuid, Review>, AppError> {
        reviews::service::for_appointments(&self.0, appointment_ids).await
    }
}
