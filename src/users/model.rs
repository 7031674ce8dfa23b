use async_graphql::{InputObject, SimpleObject};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::auth::Role;

/// A stored account. The password hash is deliberately not part of it.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct User {
    pub id: Uuid,
    pub email: String,
    pub name: String,
    pub phone: Option<String>,
    pub role: Role,
    pub blocked: bool,
    pub token_version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// When the owner followed the link of a verification (or reset) mail.
    pub email_verified_at: Option<DateTime<Utc>>,
}

#[derive(InputObject)]
pub struct RegisterInput {
    pub email: String,
    /// 8 to 128 characters.
    pub password: String,
    pub name: String,
    /// Digits with an optional leading `+`; spaces, dashes, dots and brackets are ignored.
    pub phone: Option<String>,
    /// PATIENT or DOCTOR; admins are created by operators only.
    pub role: Role,
}

#[derive(InputObject)]
pub struct LoginInput {
    pub email: String,
    pub password: String,
}

#[derive(InputObject)]
pub struct ChangePasswordInput {
    pub current_password: String,
    /// 8 to 128 characters.
    pub new_password: String,
}

#[derive(InputObject)]
pub struct ResetPasswordInput {
    /// The token from the reset mail's link.
    pub token: String,
    /// 8 to 128 characters.
    pub new_password: String,
}

/// The fields of one's own profile; a field left out (or null) stays as it is.
#[derive(InputObject)]
pub struct UpdateMeInput {
    pub name: Option<String>,
    /// As in `register`; an empty string removes the phone number.
    pub phone: Option<String>,
}

/// What a mailed account token is for; one live token per account and purpose.
#[derive(Clone, Copy, Debug)]
pub enum TokenPurpose {
    PasswordReset,
    EmailVerification,
}

impl TokenPurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PasswordReset => "PASSWORD_RESET",
            Self::EmailVerification => "EMAIL_VERIFICATION",
        }
    }
}

/// A token about to be mailed, stored as its hash.
pub struct NewAccountToken<'a> {
    pub purpose: TokenPurpose,
    pub hash: &'a str,
    pub now: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

#[derive(Clone, Debug, Default, InputObject)]
pub struct UserFilter {
    pub role: Option<Role>,
    pub blocked: Option<bool>,
    /// Case-insensitive substring of the name or the email.
    pub search: Option<String>,
}

#[derive(SimpleObject)]
pub struct AuthPayload {
    /// Short-lived JWT for `Authorization: Bearer`.
    pub access_token: String,
    pub access_token_expires_at: DateTime<Utc>,
    /// Single-use token for `refreshToken`; each use returns a new one.
    pub refresh_token: String,
    pub user: User,
}

/// A validated account about to be stored.
pub struct NewUser {
    pub id: Uuid,
    pub email: String,
    pub password_hash: String,
    pub name: String,
    pub phone: Option<String>,
    pub role: Role,
    pub now: DateTime<Utc>,
    /// Set for accounts an operator vouches for (admins).
    pub email_verified_at: Option<DateTime<Utc>>,
}

/// A refresh token about to be stored.
pub struct NewRefreshToken {
    pub user_id: Uuid,
    pub family_id: Uuid,
    pub hash: String,
    pub now: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// What presenting a refresh token did.
pub enum Rotation {
    /// It was live; it is now used up and its successor stored.
    Rotated { user_id: Uuid },
    /// It had already been used: somebody replayed it, so every access and refresh token of
    /// the user is revoked.
    Reused { user_id: Uuid },
    /// Unknown, expired or revoked.
    Invalid,
}
