//! Access tokens (short HS256 JWTs) and refresh tokens (random, stored only as a SHA-256 hash).

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::Role;
use crate::error::{AppError, AppResult};

const ISSUER: &str = "medilink";

#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub sub: Uuid,
    pub role: Role,
    /// The user's token version when issued; logout and blocking bump it.
    pub tv: i64,
    pub iat: i64,
    pub exp: i64,
    pub iss: String,
}

/// Shared: the application state is cloned per operation and per subscription, and the keys
/// and validation rules would be copied (several allocations) each time.
#[derive(Clone)]
pub struct TokenKeys(Arc<Keys>);

struct Keys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    access_ttl: Duration,
}

impl TokenKeys {
    pub fn new(secret: &[u8], access_ttl: Duration) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "sub", "iss"]);
        Self(Arc::new(Keys {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            access_ttl,
        }))
    }

    pub fn access_ttl(&self) -> Duration {
        self.0.access_ttl
    }

    pub fn issue_access(&self, user_id: Uuid, role: Role, token_version: i64) -> AppResult<String> {
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            sub: user_id,
            role,
            tv: token_version,
            iat: now,
            exp: now + i64::try_from(self.0.access_ttl.as_secs()).unwrap_or(i64::MAX / 2),
            iss: ISSUER.into(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.0.encoding)
            .map_err(AppError::internal)
    }

    /// Checks signature, issuer and expiry; says which of them failed, never why in detail.
    pub fn decode_access(&self, token: &str) -> AppResult<Claims> {
        jsonwebtoken::decode::<Claims>(token, &self.0.decoding, &self.0.validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => {
                    AppError::unauthenticated("the access token has expired; refresh it")
                }
                _ => AppError::unauthenticated("the access token is invalid"),
            })
    }
}

/// A new refresh token: `plain` goes to the client once, `hash` to the database.
pub struct RefreshToken {
    pub plain: String,
    pub hash: String,
}

pub fn new_refresh_token() -> RefreshToken {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let plain = URL_SAFE_NO_PAD.encode(bytes);
    let hash = hash_refresh_token(&plain);
    RefreshToken { plain, hash }
}

pub fn hash_refresh_token(plain: &str) -> String {
    let digest = Sha256::digest(plain.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}
