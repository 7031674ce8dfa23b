//! The GraphQL kit every domain's resolvers use; it imports no domain. The schema root that
//! merges the domains sits above them, in [`crate::schema`].

pub mod connection;
pub mod context;
pub mod guard;
pub mod ids;
pub mod introspection;
pub mod loaders;
pub mod nul;
