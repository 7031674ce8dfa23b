//! SQL for users and refresh tokens.

use chrono::{DateTime, Utc};
use sqlx::{Database, Encode, QueryBuilder, Type};
use uuid::Uuid;

use super::model::{
    NewAccountToken, NewRefreshToken, NewUser, Rotation, TokenPurpose, User, UserFilter,
};
use crate::auth::Role;
use crate::db::{Db, like_pattern, push_list};
use crate::mail::{Mail, Outbox};
use crate::{transaction, with_db};

const USER_COLUMNS: &str = "id, email, name, phone, role, blocked, token_version, created_at, \
    updated_at, email_verified_at";

pub async fn insert(db: &Db, user: &NewUser) -> sqlx::Result<User> {
    const SQL: &str = "INSERT INTO users \
        (id, email, password_hash, name, phone, role, blocked, token_version, created_at, updated_at, \
        email_verified_at) VALUES ($1, $2, $3, $4, $5, $6, FALSE, 0, $7, $7, $8) \
        RETURNING id, email, name, phone, role, blocked, token_version, created_at, updated_at, \
        email_verified_at";
    with_db!(db, pool => sqlx::query_as::<_, User>(SQL)
        .bind(user.id)
        .bind(&user.email)
        .bind(&user.password_hash)
        .bind(&user.name)
        .bind(&user.phone)
        .bind(user.role)
        .bind(user.now)
        .bind(user.email_verified_at)
        .fetch_one(pool)
        .await)
}

pub async fn find(db: &Db, id: Uuid) -> sqlx::Result<Option<User>> {
    const SQL: &str = "SELECT id, email, name, phone, role, blocked, token_version, created_at, \
        updated_at, email_verified_at FROM users WHERE id = $1";
    with_db!(db, pool => sqlx::query_as::<_, User>(SQL).bind(id).fetch_optional(pool).await)
}

pub async fn find_many(db: &Db, ids: &[Uuid]) -> sqlx::Result<Vec<User>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    with_db!(db, pool => {
        let mut query = QueryBuilder::new(format!("SELECT {USER_COLUMNS} FROM users WHERE id IN "));
        push_list(&mut query, ids.iter().copied());
        query.build_query_as::<User>().fetch_all(pool).await
    })
}

#[derive(sqlx::FromRow)]
struct UserWithHash {
    #[sqlx(flatten)]
    user: User,
    password_hash: String,
}

/// The user with this (normalised) email and their password hash.
pub async fn find_with_password(db: &Db, email: &str) -> sqlx::Result<Option<(User, String)>> {
    const SQL: &str = "SELECT id, email, name, phone, role, blocked, token_version, created_at, \
        updated_at, email_verified_at, password_hash FROM users WHERE lower(email) = $1";
    let row = with_db!(db, pool => sqlx::query_as::<_, UserWithHash>(SQL)
        .bind(email)
        .fetch_optional(pool)
        .await)?;
    Ok(row.map(|r| (r.user, r.password_hash)))
}

/// Sets the blocked flag. Blocking also invalidates every token the user holds.
pub async fn set_blocked(
    db: &Db,
    id: Uuid,
    blocked: bool,
    now: DateTime<Utc>,
) -> sqlx::Result<Option<User>> {
    const BLOCK: &str = "UPDATE users SET blocked = $2, updated_at = $3, \
        token_version = token_version + CASE WHEN $2 THEN 1 ELSE 0 END \
        WHERE id = $1 \
        RETURNING id, email, name, phone, role, blocked, token_version, created_at, updated_at, \
        email_verified_at";
    let user = transaction!(db, tx => {
        let user = sqlx::query_as::<_, User>(BLOCK)
            .bind(id)
            .bind(blocked)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?;
        if user.is_some() && blocked {
            sqlx::query(REVOKE_ALL)
                .bind(id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
        }
        user
    });
    Ok(user)
}

const REVOKE_ALL: &str =
    "UPDATE refresh_tokens SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL";
/// Access tokens carry the version they were issued at: bumping it kills them all at once.
const BUMP_TOKEN_VERSION: &str =
    "UPDATE users SET token_version = token_version + 1, updated_at = $2 WHERE id = $1";

/// Makes every access and refresh token of the user stop working.
pub async fn revoke_sessions(db: &Db, user_id: Uuid, now: DateTime<Utc>) -> sqlx::Result<()> {
    transaction!(db, tx => {
        sqlx::query(BUMP_TOKEN_VERSION).bind(user_id).bind(now).execute(&mut *tx).await?;
        sqlx::query(REVOKE_ALL).bind(user_id).bind(now).execute(&mut *tx).await?;
    });
    Ok(())
}

const INSERT_REFRESH: &str = "INSERT INTO refresh_tokens \
    (id, user_id, family_id, token_hash, created_at, expires_at) \
    VALUES ($1, $2, $3, $4, $5, $6)";

pub async fn insert_refresh_token(db: &Db, token: &NewRefreshToken) -> sqlx::Result<()> {
    with_db!(db, pool => sqlx::query(INSERT_REFRESH)
        .bind(Uuid::now_v7())
        .bind(token.user_id)
        .bind(token.family_id)
        .bind(&token.hash)
        .bind(token.now)
        .bind(token.expires_at)
        .execute(pool)
        .await
        .map(drop))
}

#[derive(sqlx::FromRow)]
struct Consumed {
    user_id: Uuid,
    family_id: Uuid,
}

/// The user a refresh token (by its hash) was issued to, used or not.
pub async fn refresh_token_owner(db: &Db, token_hash: &str) -> sqlx::Result<Option<Uuid>> {
    const SQL: &str = "SELECT user_id FROM refresh_tokens WHERE token_hash = $1";
    with_db!(db, pool => sqlx::query_scalar(SQL).bind(token_hash).fetch_optional(pool).await)
}

/// Uses up the refresh token with hash `presented` (issued to `owner`) and stores `next` in its
/// family, atomically. A token that was already used is a replay: every access and refresh
/// token of its user is revoked.
///
/// The owner's row is locked first, as logout and blocking lock it before the tokens: a
/// replay that locked a token (PostgreSQL keeps the row lock of an UPDATE whose recheck failed)
/// and then waited for the user would otherwise deadlock with another one.
pub async fn rotate_refresh_token(
    db: &Db,
    owner: Uuid,
    presented: &str,
    next_hash: &str,
    now: DateTime<Utc>,
    next_expires_at: DateTime<Utc>,
) -> sqlx::Result<Rotation> {
    const CONSUME: &str = "UPDATE refresh_tokens SET used_at = $2 \
        WHERE token_hash = $1 AND used_at IS NULL AND revoked_at IS NULL AND expires_at > $2 \
        RETURNING user_id, family_id";
    const USED_BY: &str =
        "SELECT user_id FROM refresh_tokens WHERE token_hash = $1 AND used_at IS NOT NULL";
    const LOCK_OWNER: &str = "UPDATE users SET updated_at = updated_at WHERE id = $1";
    let rotation = transaction!(db, tx => {
        sqlx::query(LOCK_OWNER).bind(owner).execute(&mut *tx).await?;
        let consumed = sqlx::query_as::<_, Consumed>(CONSUME)
            .bind(presented)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?;
        match consumed {
            Some(Consumed { user_id, family_id }) => {
                sqlx::query(INSERT_REFRESH)
                    .bind(Uuid::now_v7())
                    .bind(user_id)
                    .bind(family_id)
                    .bind(next_hash)
                    .bind(now)
                    .bind(next_expires_at)
                    .execute(&mut *tx)
                    .await?;
                Rotation::Rotated { user_id }
            }
            None => {
                let replayed_by: Option<Uuid> = sqlx::query_scalar(USED_BY)
                    .bind(presented)
                    .fetch_optional(&mut *tx)
                    .await?;
                match replayed_by {
                    Some(user_id) => {
                        sqlx::query(BUMP_TOKEN_VERSION)
                            .bind(user_id)
                            .bind(now)
                            .execute(&mut *tx)
                            .await?;
                        sqlx::query(REVOKE_ALL)
                            .bind(user_id)
                            .bind(now)
                            .execute(&mut *tx)
                            .await?;
                        Rotation::Reused { user_id }
                    }
                    None => Rotation::Invalid,
                }
            }
        }
    });
    Ok(rotation)
}

/// One page of users in id (creation) order, after the user `after`.
pub async fn list(
    db: &Db,
    filter: &UserFilter,
    after: Option<Uuid>,
    limit: usize,
) -> sqlx::Result<Vec<User>> {
    with_db!(db, pool => {
        let mut query = QueryBuilder::new(format!("SELECT {USER_COLUMNS} FROM users WHERE TRUE"));
        push_filter(&mut query, filter);
        if let Some(after) = after {
            query.push(" AND id > ").push_bind(after);
        }
        query.push(" ORDER BY id LIMIT ").push_bind(i64::try_from(limit).unwrap_or(i64::MAX));
        query.build_query_as::<User>().fetch_all(pool).await
    })
}

pub async fn count(db: &Db, filter: &UserFilter) -> sqlx::Result<i64> {
    with_db!(db, pool => {
        let mut query = QueryBuilder::new("SELECT COUNT(*) FROM users WHERE TRUE");
        push_filter(&mut query, filter);
        query.build_query_scalar::<i64>().fetch_one(pool).await
    })
}

fn push_filter<DB: Database>(query: &mut QueryBuilder<DB>, filter: &UserFilter)
where
    for<'t> String: Encode<'t, DB> + Type<DB>,
    for<'t> bool: Encode<'t, DB> + Type<DB>,
    for<'t> Role: Encode<'t, DB> + Type<DB>,
{
    if let Some(role) = filter.role {
        query.push(" AND role = ").push_bind(role);
    }
    if let Some(blocked) = filter.blocked {
        query.push(" AND blocked = ").push_bind(blocked);
    }
    if let Some(search) = filter.search.as_deref().filter(|s| !s.trim().is_empty()) {
        let pattern = like_pattern(search);
        query
            .push(" AND (lower(name) LIKE ")
            .push_bind(pattern.clone())
            .push(" ESCAPE '\\' OR lower(email) LIKE ")
            .push_bind(pattern)
            .push(" ESCAPE '\\')");
    }
}

/// The user with this id and their password hash.
pub async fn find_with_password_by_id(db: &Db, id: Uuid) -> sqlx::Result<Option<(User, String)>> {
    const SQL: &str = "SELECT id, email, name, phone, role, blocked, token_version, created_at, \
        updated_at, email_verified_at, password_hash FROM users WHERE id = $1";
    let row = with_db!(db, pool => sqlx::query_as::<_, UserWithHash>(SQL)
        .bind(id)
        .fetch_optional(pool)
        .await)?;
    Ok(row.map(|r| (r.user, r.password_hash)))
}

/// Changes the name (when `name` is given) and the phone (when `phone` is given: `Some(None)`
/// removes it).
pub async fn update_profile(
    db: &Db,
    id: Uuid,
    name: Option<&str>,
    phone: Option<Option<&str>>,
    now: DateTime<Utc>,
) -> sqlx::Result<Option<User>> {
    const SQL: &str = "UPDATE users SET name = COALESCE($2, name), \
        phone = CASE WHEN $3 THEN $4 ELSE phone END, updated_at = $5 WHERE id = $1 \
        RETURNING id, email, name, phone, role, blocked, token_version, created_at, updated_at, \
        email_verified_at";
    with_db!(db, pool => sqlx::query_as::<_, User>(SQL)
        .bind(id)
        .bind(name)
        .bind(phone.is_some())
        .bind(phone.flatten())
        .bind(now)
        .fetch_optional(pool)
        .await)
}

/// Stores `token` for the account, replacing any older one of its purpose.
const UPSERT_TOKEN: &str = "INSERT INTO account_tokens \
    (user_id, purpose, token_hash, created_at, expires_at) VALUES ($1, $2, $3, $4, $5) \
    ON CONFLICT (user_id, purpose) DO UPDATE SET token_hash = excluded.token_hash, \
    created_at = excluded.created_at, expires_at = excluded.expires_at";

/// A new password takes effect, every access and refresh token stops working, and the owner's
/// mail about it is queued, together or not at all.
const SET_PASSWORD: &str = "UPDATE users SET password_hash = $2, \
    token_version = token_version + 1, updated_at = $3 WHERE id = $1";

/// Stores a new token of `token.purpose` for `user` and queues `mail`, which carries it.
pub async fn issue_token(
    db: &Db,
    outbox: &Outbox,
    user: Uuid,
    token: &NewAccountToken<'_>,
    mail: &Mail,
) -> sqlx::Result<()> {
    transaction!(db, tx => {
        sqlx::query(UPSERT_TOKEN)
            .bind(user)
            .bind(token.purpose.as_str())
            .bind(token.hash)
            .bind(token.now)
            .bind(token.expires_at)
            .execute(&mut *tx)
            .await?;
        outbox.enqueue_in(&mut *tx, mail).await?;
    });
    Ok(())
}

/// Stores a password-reset token for the account with this (normalised) email and queues `mail`
/// to it, if there is one. The same statements run whether or not the account exists, so both
/// cases cost the same.
pub async fn request_reset(
    db: &Db,
    outbox: &Outbox,
    email: &str,
    token: &NewAccountToken<'_>,
    mail: &Mail,
) -> sqlx::Result<()> {
    const SQL: &str = "INSERT INTO account_tokens \
        (user_id, purpose, token_hash, created_at, expires_at) \
        SELECT id, $2, $3, $4, $5 FROM users WHERE lower(email) = $1 \
        ON CONFLICT (user_id, purpose) DO UPDATE SET token_hash = excluded.token_hash, \
        created_at = excluded.created_at, expires_at = excluded.expires_at";
    transaction!(db, tx => {
        sqlx::query(SQL)
            .bind(email)
            .bind(token.purpose.as_str())
            .bind(token.hash)
            .bind(token.now)
            .bind(token.expires_at)
            .execute(&mut *tx)
            .await?;
        outbox.enqueue_in_if_account(&mut *tx, mail).await?;
    });
    Ok(())
}

#[derive(sqlx::FromRow)]
pub struct StoredToken {
    pub user_id: Uuid,
    pub expires_at: DateTime<Utc>,
}

/// The live token of `purpose` with this hash, expired or not.
pub async fn find_token(
    db: &Db,
    purpose: TokenPurpose,
    hash: &str,
) -> sqlx::Result<Option<StoredToken>> {
    const SQL: &str =
        "SELECT user_id, expires_at FROM account_tokens WHERE token_hash = $1 AND purpose = $2";
    with_db!(db, pool => sqlx::query_as::<_, StoredToken>(SQL)
        .bind(hash)
        .bind(purpose.as_str())
        .fetch_optional(pool)
        .await)
}

/// Uses up the token with this hash if it is still live at `now`: its user, or `None` when
/// another request used it first or it has expired.
const CONSUME_TOKEN: &str = "DELETE FROM account_tokens \
    WHERE token_hash = $1 AND purpose = $2 AND expires_at > $3 RETURNING user_id";

/// Uses up the reset token `hash` and sets the password hash: the user's sessions end and
/// `mail` is queued. `false` if the token was used meanwhile or has expired.
pub async fn reset_password(
    db: &Db,
    outbox: &Outbox,
    hash: &str,
    password_hash: &str,
    now: DateTime<Utc>,
    mail: &Mail,
) -> sqlx::Result<bool> {
    const VERIFIED: &str = "UPDATE users SET email_verified_at = COALESCE(email_verified_at, $2) \
        WHERE id = $1";
    let done = transaction!(db, tx => {
        let user: Option<Uuid> = sqlx::query_scalar(CONSUME_TOKEN)
            .bind(hash)
            .bind(TokenPurpose::PasswordReset.as_str())
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?;
        if let Some(user) = user {
            sqlx::query(SET_PASSWORD).bind(user).bind(password_hash).bind(now).execute(&mut *tx).await?;
            sqlx::query(REVOKE_ALL).bind(user).bind(now).execute(&mut *tx).await?;
            // The reset link reached this address: it is the owner's.
            sqlx::query(VERIFIED).bind(user).bind(now).execute(&mut *tx).await?;
            outbox.enqueue_in(&mut *tx, mail).await?;
        }
        user.is_some()
    });
    Ok(done)
}

/// Sets the password hash of `user`: every session ends and `mail` is queued.
pub async fn change_password(
    db: &Db,
    outbox: &Outbox,
    user: Uuid,
    password_hash: &str,
    now: DateTime<Utc>,
    mail: &Mail,
) -> sqlx::Result<()> {
    transaction!(db, tx => {
        sqlx::query(SET_PASSWORD).bind(user).bind(password_hash).bind(now).execute(&mut *tx).await?;
        sqlx::query(REVOKE_ALL).bind(user).bind(now).execute(&mut *tx).await?;
        outbox.enqueue_in(&mut *tx, mail).await?;
    });
    Ok(())
}

/// Uses up the verification token `hash` and marks its user's email verified: the user, or
/// `None` when the token is unknown, used or expired.
pub async fn verify_email(db: &Db, hash: &str, now: DateTime<Utc>) -> sqlx::Result<Option<Uuid>> {
    const VERIFY: &str = "UPDATE users SET email_verified_at = COALESCE(email_verified_at, $2), \
        updated_at = $2 WHERE id = $1";
    let user = transaction!(db, tx => {
        let user: Option<Uuid> = sqlx::query_scalar(CONSUME_TOKEN)
            .bind(hash)
            .bind(TokenPurpose::EmailVerification.as_str())
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?;
        if let Some(user) = user {
            sqlx::query(VERIFY).bind(user).bind(now).execute(&mut *tx).await?;
        }
        user
    });
    Ok(user)
}
