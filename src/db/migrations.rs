//! Migrations are compiled into the binary, one list per backend. Versions match where both
//! change; a version only one backend needs (SQLite's covering indexes, 7) has no twin.

use std::borrow::Cow;

use sqlx::SqlSafeStr;
use sqlx::migrate::{Migration, MigrationType, Migrator};

type Source = (i64, &'static str, &'static str);

const SQLITE: &[Source] = &[
    (
        1,
        "accounts",
        include_str!("../../migrations/sqlite/0001_accounts.sql"),
    ),
    (
        2,
        "doctors",
        include_str!("../../migrations/sqlite/0002_doctors.sql"),
    ),
    (
        3,
        "scheduling",
        include_str!("../../migrations/sqlite/0003_scheduling.sql"),
    ),
    (
        4,
        "realtime",
        include_str!("../../migrations/sqlite/0004_realtime.sql"),
    ),
    (
        5,
        "payments",
        include_str!("../../migrations/sqlite/0005_payments.sql"),
    ),
    (
        6,
        "doctor language keys",
        include_str!("../../migrations/sqlite/0006_doctor_language_keys.sql"),
    ),
    (
        7,
        "doctor search covering indexes",
        include_str!("../../migrations/sqlite/0007_doctor_search_covering.sql"),
    ),
    (
        8,
        "specialization counts",
        include_str!("../../migrations/sqlite/0008_specialization_counts.sql"),
    ),
    (
        9,
        "accounts and mail",
        include_str!("../../migrations/sqlite/0009_accounts_mail.sql"),
    ),
    (
        10,
        "notifications and reminders",
        include_str!("../../migrations/sqlite/0010_notifications.sql"),
    ),
];

const POSTGRES: &[Source] = &[
    (
        1,
        "accounts",
        include_str!("../../migrations/postgres/0001_accounts.sql"),
    ),
    (
        2,
        "doctors",
        include_str!("../../migrations/postgres/0002_doctors.sql"),
    ),
    (
        3,
        "scheduling",
        include_str!("../../migrations/postgres/0003_scheduling.sql"),
    ),
    (
        4,
        "realtime",
        include_str!("../../migrations/postgres/0004_realtime.sql"),
    ),
    (
        5,
        "payments",
        include_str!("../../migrations/postgres/0005_payments.sql"),
    ),
    (
        6,
        "doctor language keys",
        include_str!("../../migrations/postgres/0006_doctor_language_keys.sql"),
    ),
    (
        8,
        "specialization counts",
        include_str!("../../migrations/postgres/0008_specialization_counts.sql"),
    ),
    (
        9,
        "accounts and mail",
        include_str!("../../migrations/postgres/0009_accounts_mail.sql"),
    ),
    (
        10,
        "notifications and reminders",
        include_str!("../../migrations/postgres/0010_notifications.sql"),
    ),
];

fn migrator(sources: &[Source]) -> Migrator {
    Migrator::with_migrations(
        sources
            .iter()
            .map(|&(version, description, sql)| {
                Migration::new(
                    version,
                    Cow::Borrowed(description),
                    MigrationType::Simple,
                    sql.into_sql_str(),
                    false,
                )
            })
            .collect(),
    )
}

pub fn sqlite() -> Migrator {
    migrator(SQLITE)
}

pub fn postgres() -> Migrator {
    migrator(POSTGRES)
}
