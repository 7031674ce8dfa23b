//! One name per enum value: the GraphQL name, which is also a stored enum's text in the
//! database. Below the domains and the GraphQL kit alike, so that services name values without
//! importing either.

/// The name of an enum value as the API shows it, for logs, messages and cursors. For a stored
/// enum it is also the text in the database: those derive `sqlx::Type` with the same
/// SCREAMING_SNAKE_CASE names (checked by `stored_enums_are_their_graphql_names` in tests/storage.rs).
pub trait EnumName: async_graphql::EnumType {
    fn as_str(self) -> &'static str {
        Self::items()
            .iter()
            .find(|item| item.value == self)
            .map(|item| item.name)
            .expect("every variant is an item of its GraphQL enum")
    }
}

impl<T: async_graphql::EnumType> EnumName for T {}
