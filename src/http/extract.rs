//! Who is calling, for the HTTP routes outside GraphQL (GraphQL checks its bearer lazily, through
//! its `Session`, with the same `users::service::authenticate`).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};

use super::HttpState;
use crate::auth::AuthUser;
use crate::error::AppError;
use crate::graphql::context::log_as;
use crate::users;

/// A route that takes `AuthUser` answers 401 UNAUTHENTICATED (in the shared error shape)
/// without a token or with one that does not hold, before its handler runs.
impl FromRequestParts<HttpState> for AuthUser {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &HttpState,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer_token(&parts.headers).ok_or_else(|| {
            AppError::unauthenticated("send `Authorization: Bearer <access token>`")
        })?;
        let user = users::service::authenticate(&state.app, &token).await?;
        log_as(&user);
        Ok(user)
    }
}

/// The token of `Authorization: Bearer <token>`. Any other `Authorization` value is passed on
/// as it is, so that it fails as an invalid token instead of passing for "not signed in".
pub(super) fn bearer_token(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?;
    let value = String::from_utf8_lossy(value.as_bytes());
    let value = value.trim();
    Some(match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim().to_owned(),
        _ => value.to_owned(),
    })
}
