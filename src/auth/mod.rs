//! Authentication mechanisms: password hashing, token issuing and checking, roles. No storage:
//! the accounts domain (`users`) decides who is who.

pub mod password;
mod role;
pub mod tokens;

pub use role::Role;
use uuid::Uuid;

use crate::enum_name::EnumName;
use crate::error::{AppError, AppResult};

/// The signed-in user of a request, checked against the database (not blocked, tokens current).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuthUser {
    pub id: Uuid,
    pub role: Role,
}

impl AuthUser {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// FORBIDDEN unless the user has `role`.
    pub fn require(&self, role: Role) -> AppResult<()> {
        if self.role == role {
            Ok(())
        } else {
            Err(AppError::forbidden(format!(
                "this operation is for {} accounts only",
                role.as_str().to_lowercase()
            )))
        }
    }
}
