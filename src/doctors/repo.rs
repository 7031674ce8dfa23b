//! SQL for doctor profiles and their licence files.

use chrono::{DateTime, Utc};
use sqlx::{Database, Encode, QueryBuilder, Type};
use uuid::Uuid;

use super::currency::Currency;
use super::model::{
    Doctor, DoctorSort, DoctorSortBy, LicenceFile, LicenceInfo, LicenceUpload, ProfileFields,
    SearchFilter, SortDirection, SortKey, Specialization, VerificationStatus,
};
use crate::auth::Role;
use crate::db::{Db, push_keyset, push_list};
use crate::users::model::User;
use crate::{transaction, with_db};

/// The columns of [`Doctor`], qualified for queries that join `doctors d` with other tables.
const COLUMNS: &str = "d.id, d.user_id, d.specialization, d.qualifications, d.experience_years, \
    d.fee_amount, d.fee_currency, d.languages, d.licence_number, d.bio, d.verification_status, \
    d.rejection_reason, d.rating_average, d.rating_count, d.submitted_at, d.reviewed_at, \
    d.approved_at, d.created_at, d.updated_at, d.stripe_account_id, d.charges_enabled, \
    d.payouts_enabled";

/// The same columns unqualified, for RETURNING clauses.
const RETURNING: &str = "RETURNING id, user_id, specialization, qualifications, experience_years, \
    fee_amount, fee_currency, languages, licence_number, bio, verification_status, \
    rejection_reason, rating_average, rating_count, submitted_at, reviewed_at, approved_at, \
    created_at, updated_at, stripe_account_id, charges_enabled, payouts_enabled";

/// Stores a doctor's licence, replacing any earlier one; inside a transaction body.
macro_rules! store_licence {
    ($tx:ident, $id:expr, $licence:expr, $now:expr) => {{
        sqlx::query("DELETE FROM doctor_licences WHERE doctor_id = $1")
            .bind($id)
            .execute(&mut *$tx)
            .await?;
        sqlx::query(
            "INSERT INTO doctor_licences \
             (doctor_id, content, content_type, size_bytes, sha256, uploaded_at) \
             VALUES ($1, $2, 'application/pdf', $3, $4, $5)",
        )
        .bind($id)
        .bind($licence.content.as_slice())
        .bind(i64::try_from($licence.content.len()).unwrap_or(i64::MAX))
        .bind($licence.sha256.as_str())
        .bind($now)
        .execute(&mut *$tx)
        .await?;
    }};
}

/// The account columns of a listed doctor, read from the `users u` row that [`LISTED`] joins
/// anyway, so that a search page needs no second query for its users.
const USER_COLUMNS: &str = "u.email AS user_email, u.name AS user_name, u.phone AS user_phone, \
    u.role AS user_role, u.blocked AS user_blocked, u.token_version AS user_token_version, \
    u.created_at AS user_created_at, u.updated_at AS user_updated_at, \
    u.email_verified_at AS user_email_verified_at";

#[derive(sqlx::FromRow)]
struct ListedRow {
    #[sqlx(flatten)]
    doctor: Doctor,
    user_email: String,
    user_name: String,
    user_phone: Option<String>,
    user_role: Role,
    user_blocked: bool,
    user_token_version: i64,
    user_created_at: DateTime<Utc>,
    user_updated_at: DateTime<Utc>,
    user_email_verified_at: Option<DateTime<Utc>>,
}

impl From<ListedRow> for (Doctor, User) {
    fn from(row: ListedRow) -> Self {
        let user = User {
            id: row.doctor.user_id,
            email: row.user_email,
            name: row.user_name,
            phone: row.user_phone,
            role: row.user_role,
            blocked: row.user_blocked,
            token_version: row.user_token_version,
            created_at: row.user_created_at,
            updated_at: row.user_updated_at,
            email_verified_at: row.user_email_verified_at,
        };
        (row.doctor, user)
    }
}

/// Doctors that patients may find: approved, and their account not blocked. `CROSS JOIN`
/// makes SQLite keep `doctors` as the outer loop, so that it walks a doctors index in the
/// requested order and stops at the page size; left free, SQLite 3.51 scans all users and
/// sorts. PostgreSQL plans it as any inner join.
const LISTED: &str = "FROM doctors d CROSS JOIN users u \
    WHERE u.id = d.user_id AND d.verification_status = 'APPROVED' AND u.blocked = FALSE";

pub async fn find(db: &Db, id: Uuid) -> sqlx::Result<Option<Doctor>> {
    let sql = format!("SELECT {COLUMNS} FROM doctors d WHERE d.id = $1");
    with_db!(db, pool => sqlx::query_as::<_, Doctor>(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(pool).await)
}

pub async fn find_many(db: &Db, ids: &[Uuid]) -> sqlx::Result<Vec<Doctor>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    with_db!(db, pool => {
        let mut query = QueryBuilder::new(format!("SELECT {COLUMNS} FROM doctors d WHERE d.id IN "));
        push_list(&mut query, ids.iter().copied());
        query.build_query_as::<Doctor>().fetch_all(pool).await
    })
}

pub async fn find_listed(db: &Db, id: Uuid) -> sqlx::Result<Option<Doctor>> {
    let sql = format!("SELECT {COLUMNS} {LISTED} AND d.id = $1");
    with_db!(db, pool => sqlx::query_as::<_, Doctor>(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(pool).await)
}

pub async fn find_by_user(db: &Db, user_id: Uuid) -> sqlx::Result<Option<Doctor>> {
    let sql = format!("SELECT {COLUMNS} FROM doctors d WHERE d.user_id = $1");
    with_db!(db, pool => sqlx::query_as::<_, Doctor>(sqlx::AssertSqlSafe(sql)).bind(user_id).fetch_optional(pool).await)
}

/// Stores a first submission with its licence, in one transaction.
pub async fn insert(
    db: &Db,
    id: Uuid,
    user_id: Uuid,
    fields: &ProfileFields,
    licence_number: &str,
    licence: &LicenceUpload,
    now: DateTime<Utc>,
) -> sqlx::Result<Doctor> {
    let sql = format!(
        "INSERT INTO doctors (id, user_id, specialization, specialization_key, qualifications, \
         experience_years, fee_amount, fee_currency, languages, language_keys, licence_number, \
         bio, verification_status, submitted_at, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 'PENDING', $13, $13, $13) \
         {RETURNING}"
    );
    let doctor = transaction!(db, tx => {
        let doctor = sqlx::query_as::<_, Doctor>(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .bind(user_id)
            .bind(&fields.specialization)
            .bind(fields.specialization_key())
            .bind(fields.qualifications.to_json())
            .bind(fields.experience_years)
            .bind(fields.fee.amount)
            .bind(fields.fee.currency)
            .bind(fields.languages.to_json())
            .bind(fields.language_keys())
            .bind(licence_number)
            .bind(&fields.bio)
            .bind(now)
            .fetch_one(&mut *tx)
            .await?;
        store_licence!(tx, id, licence, now);
        doctor
    });
    Ok(doctor)
}

/// Replaces a PENDING or REJECTED submission and puts it back in the queue. `None` when the
/// profile is in another state (approved meanwhile, say); then nothing changes.
pub async fn resubmit(
    db: &Db,
    id: Uuid,
    fields: &ProfileFields,
    licence_number: &str,
    licence: &LicenceUpload,
    now: DateTime<Utc>,
) -> sqlx::Result<Option<Doctor>> {
    let sql = format!(
        "UPDATE doctors SET specialization = $2, specialization_key = $3, qualifications = $4, \
         experience_years = $5, fee_amount = $6, fee_currency = $7, languages = $8, \
         language_keys = $9, licence_number = $10, bio = $11, verification_status = 'PENDING', \
         rejection_reason = NULL, submitted_at = $12, reviewed_at = NULL, updated_at = $12 \
         WHERE id = $1 AND verification_status IN ('PENDING', 'REJECTED') {RETURNING}"
    );
    let doctor = transaction!(db, tx => {
        let doctor = sqlx::query_as::<_, Doctor>(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .bind(&fields.specialization)
            .bind(fields.specialization_key())
            .bind(fields.qualifications.to_json())
            .bind(fields.experience_years)
            .bind(fields.fee.amount)
            .bind(fields.fee.currency)
            .bind(fields.languages.to_json())
            .bind(fields.language_keys())
            .bind(licence_number)
            .bind(&fields.bio)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?;
        if doctor.is_some() {
            store_licence!(tx, id, licence, now);
        }
        doctor
    });
    Ok(doctor)
}

/// Changes the public fields, whatever the verification status.
pub async fn update_profile(
    db: &Db,
    id: Uuid,
    fields: &ProfileFields,
    now: DateTime<Utc>,
) -> sqlx::Result<Option<Doctor>> {
    let sql = format!(
        "UPDATE doctors SET specialization = $2, specialization_key = $3, qualifications = $4, \
         experience_years = $5, fee_amount = $6, fee_currency = $7, languages = $8, \
         language_keys = $9, bio = $10, updated_at = $11 WHERE id = $1 {RETURNING}"
    );
    with_db!(db, pool => {
        sqlx::query_as::<_, Doctor>(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .bind(&fields.specialization)
            .bind(fields.specialization_key())
            .bind(fields.qualifications.to_json())
            .bind(fields.experience_years)
            .bind(fields.fee.amount)
            .bind(fields.fee.currency)
            .bind(fields.languages.to_json())
            .bind(fields.language_keys())
            .bind(&fields.bio)
            .bind(now)
            .fetch_optional(pool)
            .await
    })
}

/// Moves the doctor to `to` if it is in one of `from`; `None` (and no change) otherwise.
pub async fn transition(
    db: &Db,
    id: Uuid,
    from: &[VerificationStatus],
    to: VerificationStatus,
    reason: Option<&str>,
    now: DateTime<Utc>,
) -> sqlx::Result<Option<Doctor>> {
    let approved_at = (to == VerificationStatus::Approved).then_some(now);
    with_db!(db, pool => {
        let mut query = QueryBuilder::new("UPDATE doctors SET verification_status = ");
        query
            .push_bind(to)
            .push(", rejection_reason = ")
            .push_bind(reason.map(str::to_owned))
            .push(", reviewed_at = ")
            .push_bind(now)
            .push(", approved_at = ")
            .push_bind(approved_at)
            .push(", updated_at = ")
            .push_bind(now)
            .push(" WHERE id = ")
            .push_bind(id)
            .push(" AND verification_status IN ");
        push_list(&mut query, from.iter().copied());
        query.push(" ").push(RETURNING);
        query.build_query_as::<Doctor>().fetch_optional(pool).await
    })
}

/// One page of listed doctors matching `filter` in `sort` order, after `after`, each with
/// their account.
pub async fn search(
    db: &Db,
    filter: &SearchFilter,
    sort: DoctorSort,
    after: Option<&(SortKey, Uuid)>,
    limit: usize,
) -> sqlx::Result<Vec<(Doctor, User)>> {
    let column = sort_column(sort.by);
    let (comparison, order) = match sort.direction {
        SortDirection::Asc => (">", "ASC"),
        SortDirection::Desc => ("<", "DESC"),
    };
    // PostgreSQL plans a named statement generically after its fifth run, from average
    // selectivities: with a fee range it then scanned the fee index and sorted, many times slower.
    // An unnamed statement is planned for the values at hand each time.
    let persistent = db.backend() == "sqlite";
    with_db!(db, pool => {
        let mut query = QueryBuilder::new(format!("SELECT {COLUMNS}, {USER_COLUMNS} {LISTED}"));
        push_filter(&mut query, filter, Some(column));
        if let Some((key, id)) = after {
            query.push(format!(" AND ({column}, d.id) {comparison} ("));
            match key {
                SortKey::Rating(v) => query.push_bind(*v),
                SortKey::Fee(v) | SortKey::Experience(v) => query.push_bind(*v),
                SortKey::Newest(v) => query.push_bind(*v),
            };
            query.push(", ").push_bind(*id).push(")");
        }
        query.push(format!(" ORDER BY {column} {order}, d.id {order} LIMIT "));
        query.push_bind(i64::try_from(limit).unwrap_or(i64::MAX));
        let rows = query.build_query_as::<ListedRow>().persistent(persistent).fetch_all(pool).await?;
        Ok(rows.into_iter().map(Into::into).collect())
    })
}

pub async fn count(db: &Db, filter: &SearchFilter) -> sqlx::Result<i64> {
    with_db!(db, pool => {
        let mut query = QueryBuilder::new(format!("SELECT COUNT(*) {LISTED}"));
        push_filter(&mut query, filter, None);
        query.build_query_scalar::<i64>().fetch_one(pool).await
    })
}

fn sort_column(by: DoctorSortBy) -> &'static str {
    match by {
        DoctorSortBy::Rating => "d.rating_average",
        DoctorSortBy::Fee => "d.fee_amount",
        DoctorSortBy::Experience => "d.experience_years",
        DoctorSortBy::Newest => "d.approved_at",
    }
}

/// On SQLite, range filters on columns other than the sort column are written `+d.column`,
/// which keeps its planner from scanning their index and sorting afterwards: walking the sort
/// order (or the specialization's slice of it) and stopping at the page size is far cheaper.
fn push_filter<DB: Database>(
    query: &mut QueryBuilder<DB>,
    filter: &SearchFilter,
    sort_column: Option<&str>,
) where
    for<'t> String: Encode<'t, DB> + Type<DB>,
    for<'t> i64: Encode<'t, DB> + Type<DB>,
    for<'t> f64: Encode<'t, DB> + Type<DB>,
    for<'t> Uuid: Encode<'t, DB> + Type<DB>,
    for<'t> Currency: Encode<'t, DB> + Type<DB>,
{
    // PostgreSQL estimates ranges well and would misjudge `+column` instead.
    let steer = DB::NAME == "SQLite";
    let range = |column: &'static str| {
        if steer && sort_column != Some(column) {
            format!(" AND +{column}")
        } else {
            format!(" AND {column}")
        }
    };
    if let Some(key) = &filter.specialization_key {
        query
            .push(" AND d.specialization_key = ")
            .push_bind(key.clone());
    }
    if let Some(min) = filter.min_fee {
        query
            .push(range("d.fee_amount"))
            .push(" >= ")
            .push_bind(min);
    }
    if let Some(max) = filter.max_fee {
        query
            .push(range("d.fee_amount"))
            .push(" <= ")
            .push_bind(max);
    }
    if let Some(currency) = &filter.currency {
        query.push(" AND d.fee_currency = ").push_bind(*currency);
    }
    if let Some(min) = filter.min_experience {
        query
            .push(range("d.experience_years"))
            .push(" >= ")
            .push_bind(min);
    }
    if let Some(min) = filter.min_rating {
        query
            .push(range("d.rating_average"))
            .push(" >= ")
            .push_bind(min);
    }
    if let Some(needle) = &filter.language_needle {
        // Both find the position of a substring, under different names.
        let position = if DB::NAME == "SQLite" {
            " AND instr(d.language_keys, "
        } else {
            " AND strpos(d.language_keys, "
        };
        query.push(position).push_bind(needle.clone()).push(") > 0");
    }
    if let Some(ids) = &filter.only_ids {
        if ids.is_empty() {
            query.push(" AND FALSE");
        } else {
            query.push(" AND d.id IN ");
            push_list(query, ids.iter().copied());
        }
    }
    if !filter.excluded_ids.is_empty() {
        query.push(" AND d.id NOT IN ");
        push_list(query, filter.excluded_ids.iter().copied());
    }
    if let Some(pattern) = &filter.text_pattern {
        query
            .push(" AND (lower(u.name) LIKE ")
            .push_bind(pattern.clone())
            .push(" ESCAPE '\\' OR lower(d.bio) LIKE ")
            .push_bind(pattern.clone())
            .push(" ESCAPE '\\')");
    }
}

/// The admin's queue: pending submissions, oldest first, after `after`.
pub async fn pending(
    db: &Db,
    after: Option<&(DateTime<Utc>, Uuid)>,
    limit: usize,
) -> sqlx::Result<Vec<Doctor>> {
    with_db!(db, pool => {
        let mut query = QueryBuilder::new(format!(
            "SELECT {COLUMNS} FROM doctors d WHERE d.verification_status = 'PENDING'"
        ));
        push_keyset(&mut query, "d.submitted_at, d.id", ">", after);
        query
            .push(" ORDER BY d.submitted_at, d.id LIMIT ")
            .push_bind(i64::try_from(limit).unwrap_or(i64::MAX));
        query.build_query_as::<Doctor>().fetch_all(pool).await
    })
}

pub async fn count_pending(db: &Db) -> sqlx::Result<i64> {
    const SQL: &str = "SELECT COUNT(*) FROM doctors WHERE verification_status = 'PENDING'";
    with_db!(db, pool => sqlx::query_scalar(SQL).fetch_one(pool).await)
}

/// Licence details (not the bytes) of several doctors in one query.
pub async fn licence_infos(db: &Db, doctor_ids: &[Uuid]) -> sqlx::Result<Vec<LicenceInfo>> {
    if doctor_ids.is_empty() {
        return Ok(Vec::new());
    }
    with_db!(db, pool => {
        let mut query = QueryBuilder::new(
            "SELECT doctor_id, content_type, size_bytes, sha256, uploaded_at FROM doctor_licences \
             WHERE doctor_id IN ",
        );
        push_list(&mut query, doctor_ids.iter().copied());
        query.build_query_as::<LicenceInfo>().fetch_all(pool).await
    })
}

#[derive(sqlx::FromRow)]
struct LicenceRow {
    content: Vec<u8>,
    content_type: String,
}

pub async fn licence_file(db: &Db, doctor_id: Uuid) -> sqlx::Result<Option<LicenceFile>> {
    const SQL: &str = "SELECT content, content_type FROM doctor_licences WHERE doctor_id = $1";
    let row = with_db!(db, pool => sqlx::query_as::<_, LicenceRow>(SQL).bind(doctor_id).fetch_optional(pool).await)?;
    Ok(row.map(|r| LicenceFile {
        content: r.content,
        content_type: r.content_type,
    }))
}

/// Listed doctors per specialization, most first: the approved ones counted from an index,
/// less those whose account is blocked (few, and found through a partial index), instead of
/// checking every approved doctor's account. The name shown is the lowest spelling among the
/// approved doctors that share the case-insensitive key.
pub async fn specializations(db: &Db) -> sqlx::Result<Vec<Specialization>> {
    const SQL: &str = "WITH approved AS ( \
            SELECT specialization_key, MIN(specialization) AS name, COUNT(*) AS doctors \
            FROM doctors WHERE verification_status = 'APPROVED' GROUP BY specialization_key), \
        blocked AS ( \
            SELECT d.specialization_key, COUNT(*) AS doctors \
            FROM users u CROSS JOIN doctors d \
            WHERE u.blocked = TRUE AND d.user_id = u.id AND d.verification_status = 'APPROVED' \
            GROUP BY d.specialization_key) \
        SELECT a.name, a.doctors - COALESCE(b.doctors, 0) AS doctor_count \
        FROM approved a LEFT JOIN blocked b ON b.specialization_key = a.specialization_key \
        WHERE a.doctors > COALESCE(b.doctors, 0) \
        ORDER BY doctor_count DESC, a.name";
    with_db!(db, pool => sqlx::query_as::<_, Specialization>(SQL).fetch_all(pool).await)
}

/// Stores the doctor's Stripe account unless one is stored already; returns the stored one.
pub async fn set_payout_account(db: &Db, id: Uuid, account: &str) -> sqlx::Result<Option<String>> {
    const SET: &str =
        "UPDATE doctors SET stripe_account_id = $2 WHERE id = $1 AND stripe_account_id IS NULL";
    const GET: &str = "SELECT stripe_account_id FROM doctors WHERE id = $1";
    with_db!(db, pool => {
        sqlx::query(SET).bind(id).bind(account).execute(pool).await?;
        sqlx::query_scalar(GET).bind(id).fetch_one(pool).await
    })
}

/// Records what Stripe says the account can do; `false` when no doctor has that account.
pub async fn set_payout_state(
    db: &Db,
    account: &str,
    charges_enabled: bool,
    payouts_enabled: bool,
) -> sqlx::Result<bool> {
    const SQL: &str = "UPDATE doctors SET charges_enabled = $2, payouts_enabled = $3 \
        WHERE stripe_account_id = $1";
    let changed = with_db!(db, pool => sqlx::query(SQL).bind(account).bind(charges_enabled).bind(payouts_enabled).execute(pool).await.map(|r| r.rows_affected()))?;
    Ok(changed > 0)
}
