//! Relay connections: async-graphql's `Connection` with a lazily counted `totalCount`, so a
//! page costs a COUNT query only when the client asks for the total.

use std::sync::Arc;

use async_graphql::connection::{self, Edge, EmptyFields};
use async_graphql::{Object, OutputType};
use futures_util::future::BoxFuture;

use crate::error::AppResult;
use crate::pagination::Page;

pub type Connection<N> = connection::Connection<String, N, TotalCount, EmptyFields>;

pub type CountFn = Arc<dyn Fn() -> BoxFuture<'static, AppResult<i64>> + Send + Sync>;

pub struct TotalCount(CountFn);

#[Object]
impl TotalCount {
    /// Items matching the filter across all pages.
    async fn total_count(&self) -> AppResult<i64> {
        (self.0)().await
    }
}

pub fn connection<N: OutputType>(page: Page<N>, count: CountFn) -> Connection<N> {
    let mut connection = Connection::with_additional_fields(
        page.has_previous_page,
        page.has_next_page,
        TotalCount(count),
    );
    connection.edges.extend(
        page.edges
            .into_iter()
            .map(|(cursor, node)| Edge::new(cursor, node)),
    );
    connection
}
