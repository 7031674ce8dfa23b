//! Invariants the database itself holds, on whichever backend the suite runs against.

mod common;

use common::*;
use medilink::db::{Db, Pool};
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
