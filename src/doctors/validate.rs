//! Input rules for doctor profiles, licences and search filters. Each failure names its field.

use sha2::{Digest, Sha256};

use super::currency::Currency;
use super::model::{
    Doctor, DoctorFilter, DoctorProfileInput, LicenceUpload, Money, MoneyInput, ProfileFields,
    SearchFilter, StringList, UpdateDoctorProfileInput,
};
use crate::error::{AppError, AppResult};

pub const LICENCE_MAX_BYTES: usize = 5 * 1024 * 1024;
const PDF_MAGIC: &[u8] = b"%PDF-";
const MAX_FEE: i64 = 100_000_000;
const MAX_EXPERIENCE: i32 = 70;
const MAX_LIST_ITEMS: usize = 20;
const BIO_MAX_CHARS: usize = 4000;
const REASON_MAX_CHARS: usize = 1000;

pub fn profile(input: DoctorProfileInput) -> AppResult<(ProfileFields, String)> {
    let fields = ProfileFields {
        specialization: specialization(&input.specialization)?,
        qualifications: list("qualifications", &input.qualifications, 2..=120)?,
        experience_years: experience(input.experience_years)?,
        fee: fee(&input.consultation_fee)?,
        languages: list("languages", &input.languages, 2..=40)?,
        bio: bio(&input.bio)?,
    };
    Ok((fields, licence_number(&input.licence_number)?))
}

/// The profile after applying `input` to `current`.
pub fn update(current: &Doctor, input: UpdateDoctorProfileInput) -> AppResult<ProfileFields> {
    Ok(ProfileFields {
        specialization: match input.specialization {
            Some(s) => specialization(&s)?,
            None => current.specialization.clone(),
        },
        qualifications: match input.qualifications {
            Some(q) => list("qualifications", &q, 2..=120)?,
            None => current.qualifications.clone(),
        },
        experience_years: match input.experience_years {
            Some(years) => experience(years)?,
            None => current.experience_years,
        },
        fee: match input.consultation_fee {
            Some(f) => fee(&f)?,
            None => Money {
                amount: current.fee_amount,
                currency: current.fee_currency,
            },
        },
        languages: match input.languages {
            Some(l) => list("languages", &l, 2..=40)?,
            None => current.languages.clone(),
        },
        bio: match input.bio {
            Some(b) => bio(&b)?,
            None => current.bio.clone(),
        },
    })
}

fn specialization(raw: &str) -> AppResult<String> {
    text("specialization", raw, 2..=80)
}

fn experience(years: i32) -> AppResult<i64> {
    if (0..=MAX_EXPERIENCE).contains(&years) {
        Ok(i64::from(years))
    } else {
        Err(AppError::bad_input(
            "experienceYears",
            format!("experience must be 0 to {MAX_EXPERIENCE} years"),
        ))
    }
}

fn fee(input: &MoneyInput) -> AppResult<Money> {
    if !(0..=MAX_FEE).contains(&input.amount) {
        return Err(AppError::bad_input(
            "consultationFee.amount",
            format!("the fee must be 0 to {MAX_FEE} minor units"),
        ));
    }
    Ok(Money {
        amount: input.amount,
        currency: currency_code("consultationFee.currency", &input.currency)?,
    })
}

fn currency_code(field: &'static str, raw: &str) -> AppResult<Currency> {
    Currency::parse(raw).ok_or_else(|| {
        AppError::bad_input(field, format!("{raw:?} is not an ISO 4217 currency code"))
    })
}

fn bio(raw: &str) -> AppResult<String> {
    let bio = raw.trim();
    if bio.chars().count() > BIO_MAX_CHARS {
        return Err(AppError::bad_input(
            "bio",
            format!("the bio may have at most {BIO_MAX_CHARS} characters"),
        ));
    }
    Ok(bio.to_owned())
}

fn licence_number(raw: &str) -> AppResult<String> {
    let number = raw.trim().to_uppercase();
    let ok = (3..=64).contains(&number.chars().count())
        && number
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-/. ".contains(c));
    if ok {
        Ok(number)
    } else {
        Err(AppError::bad_input(
            "licenceNumber",
            "the licence number must be 3 to 64 letters, digits, spaces, dashes, dots or slashes",
        ))
    }
}

fn text(
    field: &'static str,
    raw: &str,
    chars: std::ops::RangeInclusive<usize>,
) -> AppResult<String> {
    let value = raw.trim();
    let count = value.chars().count();
    if !chars.contains(&count) || value.chars().any(char::is_control) {
        return Err(AppError::bad_input(
            field,
            format!(
                "{field} must be {} to {} printable characters",
                chars.start(),
                chars.end()
            ),
        ));
    }
    Ok(value.to_owned())
}

/// A non-empty list of distinct (case-insensitively) items, each within `chars`.
fn list(
    field: &'static str,
    raw: &[String],
    chars: std::ops::RangeInclusive<usize>,
) -> AppResult<StringList> {
    if raw.is_empty() || raw.len() > MAX_LIST_ITEMS {
        return Err(AppError::bad_input(
            field,
            format!("{field} must have 1 to {MAX_LIST_ITEMS} entries"),
        ));
    }
    let mut items: Vec<String> = Vec::with_capacity(raw.len());
    for item in raw {
        let item = text(field, item, chars.clone())?;
        if !items
            .iter()
            .any(|i| i.to_lowercase() == item.to_lowercase())
        {
            items.push(item);
        }
    }
    Ok(StringList(items))
}

/// A licence must be a PDF by its content (not its name or declared type) and at most 5 MiB.
pub fn licence(content: Vec<u8>) -> AppResult<LicenceUpload> {
    if content.is_empty() {
        return Err(AppError::bad_input("licence", "the licence file is empty"));
    }
    if content.len() > LICENCE_MAX_BYTES {
        return Err(AppError::bad_input(
            "licence",
            format!("the licence may be at most {LICENCE_MAX_BYTES} bytes (5 MiB)"),
        ));
    }
    if !content.starts_with(PDF_MAGIC) {
        return Err(AppError::bad_input(
            "licence",
            "the licence must be a PDF file",
        ));
    }
    let sha256 = Sha256::digest(&content)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok(LicenceUpload { content, sha256 })
}

pub fn rejection_reason(raw: &str) -> AppResult<String> {
    text("reason", raw, 1..=REASON_MAX_CHARS)
}

/// The longest text a search filter takes: a LIKE pattern's cost grows with it, and no name
/// or specialization comes near it.
pub const FILTER_TEXT_MAX_CHARS: usize = 200;

pub fn filter(filter: DoctorFilter) -> AppResult<SearchFilter> {
    for (field, value) in [
        ("filter.text", &filter.text),
        ("filter.specialization", &filter.specialization),
        ("filter.language", &filter.language),
    ] {
        if value
            .as_deref()
            .is_some_and(|v| v.chars().count() > FILTER_TEXT_MAX_CHARS)
        {
            return Err(AppError::bad_input(
                field,
                format!("{field} must be at most {FILTER_TEXT_MAX_CHARS} characters"),
            ));
        }
    }
    let non_negative = |field: &'static str, value: Option<i64>| match value {
        Some(v) if v < 0 => Err(AppError::bad_input(
            field,
            format!("{field} cannot be negative"),
        )),
        _ => Ok(value),
    };
    let min_fee = non_negative("filter.minFee", filter.min_fee)?;
    let max_fee = non_negative("filter.maxFee", filter.max_fee)?;
    if let (Some(min), Some(max)) = (min_fee, max_fee)
        && min > max
    {
        return Err(AppError::bad_input(
            "filter.maxFee",
            "maxFee must not be below minFee",
        ));
    }
    let min_experience =
        non_negative("filter.minExperience", filter.min_experience.map(i64::from))?;
    if let Some(rating) = filter.min_rating
        && !(0.0..=5.0).contains(&rating)
    {
        return Err(AppError::bad_input(
            "filter.minRating",
            "minRating must be 0 to 5",
        ));
    }
    let key = |value: Option<String>| {
        value
            .map(|v| v.trim().to_lowercase())
            .filter(|v| !v.is_empty())
    };
    let language = key(filter.language);
    if language
        .as_deref()
        .is_some_and(|l| l.chars().any(char::is_control))
    {
        return Err(AppError::bad_input(
            "filter.language",
            "language must be printable characters",
        ));
    }
    Ok(SearchFilter {
        specialization_key: key(filter.specialization),
        min_fee,
        max_fee,
        currency: filter
            .currency
            .map(|c| currency_code("filter.currency", &c))
            .transpose()?,
        min_experience,
        min_rating: filter.min_rating,
        language_needle: language.map(|l| format!("\n{l}\n")),
        text_pattern: filter
            .text
            .filter(|t| !t.trim().is_empty())
            .map(|t| crate::db::like_pattern(&t)),
        only_ids: None,
        excluded_ids: Vec::new(),
    })
}
