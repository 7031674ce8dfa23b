use async_graphql::{Enum, InputObject, SimpleObject};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::currency::Currency;
use crate::events::DoctorStatus;

/// A doctor's profile as stored. The licence file lives apart from it.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Doctor {
    pub id: Uuid,
    pub user_id: Uuid,
    pub specialization: String,
    #[sqlx(try_from = "String")]
    pub qualifications: StringList,
    pub experience_years: i64,
    pub fee_amount: i64,
    pub fee_currency: Currency,
    #[sqlx(try_from = "String")]
    pub languages: StringList,
    pub licence_number: String,
    pub bio: String,
    pub verification_status: VerificationStatus,
    pub rejection_reason: Option<String>,
    pub rating_average: f64,
    pub rating_count: i64,
    pub submitted_at: DateTime<Utc>,
    pub reviewed_at: Option<DateTime<Utc>>,
    pub approved_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The doctor's Stripe Connect account, once payout onboarding began.
    pub stripe_account_id: Option<String>,
    /// Stripe's word on whether the account can take charges and receive payouts.
    pub charges_enabled: bool,
    pub payouts_enabled: bool,
}

#[derive(Enum, sqlx::Type, Clone, Copy, Debug, PartialEq, Eq)]
#[sqlx(type_name = "TEXT", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum VerificationStatus {
    /// Waiting for an admin; not searchable or bookable.
    Pending,
    /// Verified: searchable and bookable.
    Approved,
    /// Refused with a reason; the doctor may resubmit.
    Rejected,
}

/// A list of strings kept in one JSON text column.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StringList(pub Vec<String>);

impl StringList {
    pub fn to_json(&self) -> String {
        serde_json::Value::from(self.0.clone()).to_string()
    }
}

impl TryFrom<String> for StringList {
    type Error = serde_json::Error;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        serde_json::from_str(&value).map(Self)
    }
}

/// An amount of money in the currency's minor units (cents for USD, yen for JPY).
#[derive(SimpleObject, Clone, Debug, PartialEq, Eq)]
pub struct Money {
    pub amount: i64,
    /// ISO 4217 code, e.g. USD.
    pub currency: Currency,
}

#[derive(InputObject, Clone, Debug)]
#[graphql(name = "MoneyInput")]
pub struct MoneyInput {
    /// Minor units (cents for USD), zero or more.
    pub amount: i64,
    /// ISO 4217 code, e.g. USD.
    pub currency: String,
}

#[derive(InputObject)]
pub struct DoctorProfileInput {
    pub specialization: String,
    pub qualifications: Vec<String>,
    pub experience_years: i32,
    pub consultation_fee: MoneyInput,
    pub languages: Vec<String>,
    pub licence_number: String,
    pub bio: String,
}

/// Changes to the public part of a profile; omitted fields stay as they are. The licence and
/// its number can only change through a new submission.
#[derive(InputObject, Default)]
pub struct UpdateDoctorProfileInput {
    pub specialization: Option<String>,
    pub qualifications: Option<Vec<String>>,
    pub experience_years: Option<i32>,
    pub consultation_fee: Option<MoneyInput>,
    pub languages: Option<Vec<String>>,
    pub bio: Option<String>,
}

/// The public profile fields after validation.
#[derive(Clone, Debug)]
pub struct ProfileFields {
    pub specialization: String,
    pub qualifications: StringList,
    pub experience_years: i64,
    pub fee: Money,
    pub languages: StringList,
    pub bio: String,
}

impl ProfileFields {
    /// The languages as the search stores them in the doctor's row: lower-cased, each between
    /// newlines (which names cannot hold), so that a [`SearchFilter::language_needle`] finds
    /// one.
    pub fn language_keys(&self) -> String {
        let mut keys: Vec<String> = self.languages.0.iter().map(|l| l.to_lowercase()).collect();
        keys.sort();
        keys.dedup();
        keys.iter().fold(String::from("\n"), |mut text, key| {
            text.push_str(key);
            text.push('\n');
            text
        })
    }

    pub fn specialization_key(&self) -> String {
        self.specialization.to_lowercase()
    }
}

/// A checked licence file.
pub struct LicenceUpload {
    pub content: Vec<u8>,
    pub sha256: String,
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct LicenceInfo {
    pub doctor_id: Uuid,
    pub content_type: String,
    pub size_bytes: i64,
    pub sha256: String,
    pub uploaded_at: DateTime<Utc>,
}

pub struct LicenceFile {
    pub content: Vec<u8>,
    pub content_type: String,
}

#[derive(InputObject, Clone, Debug, Default)]
pub struct DoctorFilter {
    /// Exact specialization, any case.
    pub specialization: Option<String>,
    /// Fee bounds in minor units; combine with `currency` to compare like with like.
    pub min_fee: Option<i64>,
    pub max_fee: Option<i64>,
    pub currency: Option<String>,
    pub min_experience: Option<i32>,
    /// 0 to 5.
    pub min_rating: Option<f64>,
    /// A language the doctor speaks, any case.
    pub language: Option<String>,
    /// Case-insensitive substring of the doctor's name or bio.
    pub text: Option<String>,
    /// ONLINE, BUSY or OFFLINE right now.
    pub status: Option<DoctorStatus>,
}

#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum DoctorSortBy {
    Rating,
    Fee,
    Experience,
    /// Most recently approved.
    Newest,
}

#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SortDirection {
    Asc,
    Desc,
}

#[derive(InputObject, Clone, Copy, Debug)]
pub struct DoctorSort {
    pub by: DoctorSortBy,
    #[graphql(default_with = "SortDirection::Desc")]
    pub direction: SortDirection,
}

impl Default for DoctorSort {
    fn default() -> Self {
        Self {
            by: DoctorSortBy::Rating,
            direction: SortDirection::Desc,
        }
    }
}

/// A validated search filter, with lower-cased keys and a LIKE pattern.
#[derive(Clone, Debug, Default)]
pub struct SearchFilter {
    pub specialization_key: Option<String>,
    pub min_fee: Option<i64>,
    pub max_fee: Option<i64>,
    pub currency: Option<Currency>,
    pub min_experience: Option<i64>,
    pub min_rating: Option<f64>,
    /// A lower-cased language between newlines: a substring of the matching doctors'
    /// [`ProfileFields::language_keys`].
    pub language_needle: Option<String>,
    pub text_pattern: Option<String>,
    /// Only these doctors (by presence status); an empty list matches nobody.
    pub only_ids: Option<Vec<Uuid>>,
    /// Not these doctors.
    pub excluded_ids: Vec<Uuid>,
}

/// Where a page of search results starts: after this sort value and id.
#[derive(Clone, Debug)]
pub enum SortKey {
    Rating(f64),
    Fee(i64),
    Experience(i64),
    Newest(DateTime<Utc>),
}

#[derive(SimpleObject, Clone, Debug, sqlx::FromRow)]
pub struct Specialization {
    pub name: String,
    pub doctor_count: i64,
}
