//! The one error type of the service and its GraphQL shape.
//!
//! `AppError` deliberately does not implement `Display`: async-graphql converts any `Display`
//! type into an error whose message is that text, so a resolver could leak SQL or internals with a
//! stray `?`. Without `Display`, a resolver can only fail with an `AppError`, and the conversion
//! below is the single place that decides what a client sees.

use std::sync::Arc;
use std::time::Duration;

use async_graphql::ErrorExtensions;

/// The closed set of `extensions.code` values clients can rely on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    Unauthenticated,
    Forbidden,
    NotFound,
    BadUserInput,
    Conflict,
    RateLimited,
    PaymentRequired,
    /// This instance cannot serve the request now (it is stopping); another one can.
    Unavailable,
    Internal,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unauthenticated => "UNAUTHENTICATED",
            Self::Forbidden => "FORBIDDEN",
            Self::NotFound => "NOT_FOUND",
            Self::BadUserInput => "BAD_USER_INPUT",
            Self::Conflict => "CONFLICT",
            Self::RateLimited => "RATE_LIMITED",
            Self::PaymentRequired => "PAYMENT_REQUIRED",
            Self::Unavailable => "UNAVAILABLE",
            Self::Internal => "INTERNAL",
        }
    }
}

#[derive(Clone, Debug)]
pub struct AppError {
    code: ErrorCode,
    message: String,
    field: Option<&'static str>,
    /// Whole seconds to wait before trying again (RATE_LIMITED only).
    retry_after: Option<u64>,
    /// Kept for the log only; never shown to a client.
    source: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

pub type AppResult<T> = Result<T, AppError>;

impl AppError {
    fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            field: None,
            retry_after: None,
            source: None,
        }
    }

    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unauthenticated, message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Forbidden, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }

    pub fn bad_input(field: &'static str, message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadUserInput, message).with_field(field)
    }

    /// BAD_USER_INPUT about a request as a whole (its encoding, its headers), not one field.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadUserInput, message)
    }

    pub fn conflict(field: &'static str, message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Conflict, message).with_field(field)
    }

    /// RATE_LIMITED, with `extensions.retryAfter`: `wait` in whole seconds, rounded up.
    pub fn rate_limited(message: impl Into<String>, wait: Duration) -> Self {
        Self {
            retry_after: Some(crate::limits::retry_after_secs(wait)),
            ..Self::new(ErrorCode::RateLimited, message)
        }
    }

    /// A CONFLICT with the current state of an object rather than with one input field.
    pub fn state_conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Conflict, message)
    }

    /// An unexpected failure: logged here with its cause, shown to the client only as INTERNAL.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unavailable, message)
    }

    pub fn internal(source: impl std::error::Error + Send + Sync + 'static) -> Self {
        tracing::error!(error = %source, "internal error");
        Self {
            source: Some(Arc::new(source)),
            ..Self::new(ErrorCode::Internal, "internal server error")
        }
    }

    /// A dependency (such as the payment provider) failed: the cause goes to the log, the client
    /// gets INTERNAL with `message`, which says what to do.
    pub fn upstream(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        tracing::error!(error = %source, "dependency failed");
        Self {
            source: Some(Arc::new(source)),
            ..Self::new(ErrorCode::Internal, message)
        }
    }

    /// INTERNAL for a failure already logged with its cause where it happened; `message` says
    /// what the client can expect.
    pub fn logged_internal(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Internal, message)
    }

    pub fn with_field(mut self, field: &'static str) -> Self {
        self.field = Some(field);
        self
    }

    pub fn code(&self) -> ErrorCode {
        self.code
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    pub fn field(&self) -> Option<&'static str> {
        self.field
    }

    /// Whole seconds to wait before trying again (RATE_LIMITED only).
    pub fn retry_after(&self) -> Option<u64> {
        self.retry_after
    }

    pub fn source(&self) -> Option<&(dyn std::error::Error + Send + Sync)> {
        self.source.as_deref()
    }
}

impl From<sqlx::Error> for AppError {
    fn from(error: sqlx::Error) -> Self {
        Self::internal(error)
    }
}

impl From<AppError> for async_graphql::Error {
    fn from(error: AppError) -> Self {
        async_graphql::Error::new(error.message).extend_with(|_, ext| {
            ext.set("code", error.code.as_str());
            if let Some(field) = error.field {
                ext.set("field", field);
            }
            if let Some(seconds) = error.retry_after {
                ext.set("retryAfter", seconds);
            }
        })
    }
}
