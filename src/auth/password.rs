//! argon2id password hashing, off the async runtime and bounded in parallelism: each hash takes
//! ~19 MiB and tens of milliseconds of CPU, so a burst of sign-ups must queue, not exhaust memory.

use std::sync::Arc;

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use tokio::sync::Semaphore;

use crate::error::{AppError, AppResult};

#[derive(Clone)]
pub struct Passwords {
    permits: Arc<Semaphore>,
    /// Verified against when an email is unknown, so that a wrong email and a wrong password
    /// cost the same time.
    decoy_hash: Arc<str>,
}

impl Passwords {
    pub async fn new() -> AppResult<Self> {
        let parallelism = std::thread::available_parallelism().map_or(2, |n| n.get());
        let permits = Arc::new(Semaphore::new(parallelism * 2));
        let decoy_hash = hash_blocking(permits.clone(), "decoy password, never valid".into())
            .await?
            .into();
        Ok(Self {
            permits,
            decoy_hash,
        })
    }

    pub async fn hash(&self, password: &str) -> AppResult<String> {
        hash_blocking(self.permits.clone(), password.to_owned()).await
    }

    /// Checks `password` against `hash`, or against the decoy when there is no hash.
    pub async fn verify(&self, password: &str, hash: Option<&str>) -> AppResult<bool> {
        let exists = hash.is_some();
        let hash = hash.unwrap_or(&self.decoy_hash).to_owned();
        let password = password.to_owned();
        let _permit = self.permits.acquire().await.map_err(AppError::internal)?;
        let matches = tokio::task::spawn_blocking(move || {
            Argon2::default()
                .verify_password(password.as_bytes(), hash.as_str())
                .is_ok()
        })
        .await
        .map_err(AppError::internal)?;
        Ok(exists && matches)
    }
}

async fn hash_blocking(permits: Arc<Semaphore>, password: String) -> AppResult<String> {
    let _permit = permits.acquire().await.map_err(AppError::internal)?;
    tokio::task::spawn_blocking(move || {
        Argon2::default()
            .hash_password(password.as_bytes())
            .map(|hash| hash.to_string())
    })
    .await
    .map_err(AppError::internal)?
    .map_err(|e| AppError::internal(PasswordHashError(e.to_string())))
}

#[derive(Debug)]
struct PasswordHashError(String);

impl std::fmt::Display for PasswordHashError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "password hashing failed: {}", self.0)
    }
}

impl std::error::Error for PasswordHashError {}
