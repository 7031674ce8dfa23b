use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(async_graphql::Enum, Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Role {
    Patient,
    Doctor,
    /// Created only with `medilink create-admin`; never by self-registration.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Patient => "PATIENT",
            Self::Doctor => "DOCTOR",
            Self::Admin => "ADMIN",
        }
    }
}

#[derive(Debug)]
pub struct UnknownRole(String);

impl fmt::Display for UnknownRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown role {:?}", self.0)
    }
}

impl std::error::Error for UnknownRole {}

impl TryFrom<String> for Role {
    type Error = UnknownRole;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        match value.as_str() {
            "PATIENT" => Ok(Self::Patient),
            "DOCTOR" => Ok(Self::Doctor),
            "ADMIN" => Ok(Self::Admin),
            _ => Err(UnknownRole(value)),
        }
    }
}
