//! One budget for a whole HTTP batch: at most `max_batch` operations, and together no more
//! complexity than one request may have. async-graphql checks `limit_complexity` per request, so
//! a batch of N would otherwise spend N times the limit.
//!
//! async-graphql makes a document's complexity public only as the `ValidationResult` handed to
//! an extension, and any extension on the executing schema slows every field (see
//! `schema::execution`). So a second schema, built like the real one but without a complexity
//! limit, carries [`Measure`]: it validates a copy of each request, records the complexity and
//! stops before execution. The batch runs on the real schema only if the sum fits; each request
//! is still validated there as always.

use std::sync::{Arc, OnceLock};

use async_graphql::async_trait::async_trait;
use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextRequest, NextValidation,
};
use async_graphql::{Request, Response, ServerError, ValidationResult, Value};

use crate::config::Config;
use crate::schema::{self, AppSchema};

pub struct Budget {
    /// Validates and never executes: it has no data for resolvers to run on.
    measuring: AppSchema,
    max_operations: usize,
    max_complexity: usize,
}

impl Budget {
    pub fn new(config: &Config) -> Self {
        Self {
            measuring: schema::builder(config)
                .limit_complexity(usize::MAX)
                .extension(Measure)
                .finish(),
            max_operations: config.max_batch,
            max_complexity: config.query_complexity_limit,
        }
    }

    /// Why a batch of `operations` is refused before anything is prepared, if it is.
    pub fn refuse_size(&self, operations: usize) -> Option<String> {
        (operations > self.max_operations).then(|| {
            format!(
                "a batch may hold at most {} operations, this one holds {operations}",
                self.max_operations
            )
        })
    }

    /// Why the prepared `requests` of a batch are refused together, if they are: their
    /// complexity adds up to more than one request may have. A request that does not validate
    /// counts nothing; its execution reports why.
    pub async fn refuse_complexity<'a>(
        &self,
        requests: impl IntoIterator<Item = &'a mut Request>,
    ) -> Option<String> {
        let mut total = 0usize;
        for request in requests {
            total = total.saturating_add(self.complexity(request).await);
            if total > self.max_complexity {
                return Some(format!(
                    "the batch's operations are too complex together: more than {}",
                    self.max_complexity
                ));
            }
        }
        None
    }

    async fn complexity(&self, request: &mut Request) -> usize {
        let Ok(document) = request.parsed_query().cloned() else {
            return 0;
        };
        let mut copy = Request::new(request.query.clone()).variables(request.variables.clone());
        copy.operation_name = request.operation_name.clone();
        copy.set_parsed_query(document);
        match self.measuring.execute(copy).await.data {
            Value::Number(n) => n
                .as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .unwrap_or(usize::MAX),
            _ => 0,
        }
    }
}

/// Answers a request with its complexity as `data`, or with its validation errors.
struct Measure;

impl ExtensionFactory for Measure {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(Measuring::default())
    }
}

#[derive(Default)]
struct Measuring {
    complexity: OnceLock<usize>,
}

#[async_trait]
impl Extension for Measuring {
    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        let stopped = next.run(ctx).await;
        match self.complexity.get() {
            Some(&complexity) => Response::new(Value::from(complexity)),
            None => stopped,
        }
    }

    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        let result = next.run(ctx).await?;
        let _ = self.complexity.set(result.complexity);
        // Measured: failing here is what keeps the request from executing.
        Err(Vec::new())
    }
}
