//! Invariants the database itself holds, on whichever backend the suite runs against.

use crate::common::*;
use async_graphql::EnumType;
use medilink::appointments::model::AppointmentStatus;
use medilink::auth::Role;
use medilink::calls::model::{CallEndReason, CallStatus};
use medilink::db::{Db, Pool};
use medilink::doctors::model::VerificationStatus;
use medilink::notifications::NotificationKind;
use medilink::payments::model::PaymentStatus;
use sqlx::{Decode, Encode, Sqlite, SqlitePool, Type};
use uuid::Uuid;

async fn insert_raw_user(db: &Db, email: &str) -> Result<(), sqlx::Error> {
    const SQL: &str = "INSERT INTO users (id, email, password_hash, name, role, created_at, updated_at) \
        VALUES ($1, $2, 'x', 'Raw', 'PATIENT', $3, $3)";
    let now = medilink::db::now();
    match db.pool() {
        Pool::Sqlite(pool) => sqlx::query(SQL)
            .bind(Uuid::now_v7())
            .bind(email)
            .bind(now)
            .execute(pool)
            .await
            .map(drop),
        Pool::Postgres(pool) => sqlx::query(SQL)
            .bind(Uuid::now_v7())
            .bind(email)
            .bind(now)
            .execute(pool)
            .await
            .map(drop),
    }
}

#[tokio::test]
async fn the_database_refuses_emails_differing_only_in_case() {
    let app = spawn_app().await;
    insert_raw_user(&app.db, "case@example.com").await.unwrap();
    let error = insert_raw_user(&app.db, "CASE@Example.com")
        .await
        .unwrap_err();
    assert!(medilink::db::is_unique_violation(&error), "{error}");
}

#[tokio::test]
async fn migrations_run_again_without_effect() {
    let app = spawn_app().await;
    app.register_patient().await;
    app.db.migrate().await.expect("second migration run");
    assert_eq!(app.count_rows("users").await, 1);
}

#[tokio::test]
#[ignore = "needs PostgreSQL"]
async fn postgres_backs_the_suite_when_configured() {
    let url = std::env::var("MEDILINK_TEST_DATABASE_URL")
        .expect("MEDILINK_TEST_DATABASE_URL names the PostgreSQL server for this run");
    assert!(url.starts_with("postgres"), "{url}");
    let app = spawn_app().await;
    assert_eq!(app.db.backend(), "postgres");
    let Pool::Postgres(pool) = app.db.pool() else {
        unreachable!()
    };
    let column_type: String = sqlx::query_scalar(
        "SELECT data_type FROM information_schema.columns WHERE table_name = 'users' AND column_name = 'created_at'",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(
        column_type, "timestamp with time zone",
        "native types on PostgreSQL"
    );
}

/// Every value is stored as its GraphQL name and read back from it; other text fails.
async fn stored_as_named<T>(pool: &SqlitePool)
where
    T: EnumType + std::fmt::Debug + Type<Sqlite> + for<'q> Encode<'q, Sqlite>,
    T: for<'r> Decode<'r, Sqlite> + Unpin,
{
    for item in T::items() {
        let stored: String = sqlx::query_scalar("SELECT $1")
            .bind(item.value)
            .fetch_one(pool)
            .await
            .unwrap();
        assert_eq!(stored, item.name);
        let read: T = sqlx::query_scalar("SELECT $1")
            .bind(item.name)
            .fetch_one(pool)
            .await
            .unwrap();
        assert_eq!(read, item.value);
    }
    let unknown = sqlx::query_scalar::<_, T>("SELECT 'Pending'")
        .fetch_one(pool)
        .await;
    assert!(
        matches!(unknown, Err(sqlx::Error::ColumnDecode { .. })),
        "{unknown:?}"
    );
}

/// Stored enums are their GraphQL names in the database, and other text does not read back.
#[tokio::test]
async fn stored_enums_are_their_graphql_names() {
    let pool = SqlitePool::connect("sqlite::memory:").await.unwrap();
    stored_as_named::<Role>(&pool).await;
    stored_as_named::<AppointmentStatus>(&pool).await;
    stored_as_named::<VerificationStatus>(&pool).await;
    stored_as_named::<CallStatus>(&pool).await;
    stored_as_named::<CallEndReason>(&pool).await;
    stored_as_named::<PaymentStatus>(&pool).await;
    stored_as_named::<NotificationKind>(&pool).await;
}
