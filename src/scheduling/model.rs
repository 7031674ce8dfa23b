use async_graphql::{Enum, InputObject, SimpleObject};
use chrono::{DateTime, NaiveDate, NaiveTime, Utc, Weekday as ChronoWeekday};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::date::Date;

#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Weekday {
    Monday,
    Tuesday,
    Wednesday,
    Thursday,
    Friday,
    Saturday,
    Sunday,
}

impl From<ChronoWeekday> for Weekday {
    fn from(day: ChronoWeekday) -> Self {
        match day {
            ChronoWeekday::Mon => Self::Monday,
            ChronoWeekday::Tue => Self::Tuesday,
            ChronoWeekday::Wed => Self::Wednesday,
            ChronoWeekday::Thu => Self::Thursday,
            ChronoWeekday::Fri => Self::Friday,
            ChronoWeekday::Sat => Self::Saturday,
            ChronoWeekday::Sun => Self::Sunday,
        }
    }
}

/// Working hours on one weekday, in the doctor's time zone; `end` is exclusive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WeeklyWindow {
    pub weekday: Weekday,
    pub start: NaiveTime,
    pub end: NaiveTime,
}

/// Hours of one day, in the doctor's time zone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    pub start: NaiveTime,
    pub end: NaiveTime,
}

/// A date that does not follow the weekly pattern: a day off, or other hours.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exception {
    pub date: NaiveDate,
    pub available: bool,
    pub windows: Vec<Window>,
}

/// A doctor's validated schedule.
#[derive(Clone, Debug, PartialEq)]
pub struct Schedule {
    pub doctor_id: Uuid,
    pub time_zone: Tz,
    pub slot_minutes: i64,
    pub min_notice_minutes: i64,
    pub booking_horizon_days: i64,
    pub cancellation_notice_minutes: i64,
    pub weekly: Vec<WeeklyWindow>,
    pub exceptions: Vec<Exception>,
    pub updated_at: DateTime<Utc>,
}

/// A bookable interval in UTC.
#[derive(SimpleObject, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Slot {
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
}

#[derive(InputObject)]
pub struct WeeklyWindowInput {
    pub weekday: Weekday,
    /// `HH:MM`, in the doctor's time zone.
    pub start: String,
    /// `HH:MM`, after `start`; `24:00` is not allowed, use `23:59`.
    pub end: String,
}

#[derive(InputObject)]
pub struct WindowInput {
    pub start: String,
    pub end: String,
}

#[derive(InputObject)]
pub struct ExceptionInput {
    pub date: Date,
    /// false: no appointments that day; true: `windows` replace the weekly hours.
    pub available: bool,
    #[graphql(default)]
    pub windows: Vec<WindowInput>,
}

#[derive(InputObject)]
pub struct ScheduleInput {
    /// IANA time zone name, e.g. `America/New_York`.
    pub time_zone: String,
    /// Length of each appointment, 10 to 120 minutes.
    pub slot_minutes: i32,
    pub weekly: Vec<WeeklyWindowInput>,
    #[graphql(default)]
    pub exceptions: Vec<ExceptionInput>,
    /// The earliest a slot can be booked before it starts (default 60 minutes).
    #[graphql(default = 60)]
    pub min_notice_minutes: i32,
    /// How far ahead slots can be booked (default 60 days).
    #[graphql(default = 60)]
    pub booking_horizon_days: i32,
    /// Until how long before the start a patient may cancel (default 24 hours).
    #[graphql(default = 1440)]
    pub cancellation_notice_minutes: i32,
}

/// The row as stored; the lists are JSON.
#[derive(sqlx::FromRow)]
pub struct ScheduleRow {
    pub doctor_id: Uuid,
    pub time_zone: String,
    pub slot_minutes: i64,
    pub min_notice_minutes: i64,
    pub booking_horizon_days: i64,
    pub cancellation_notice_minutes: i64,
    pub weekly: String,
    pub exceptions: String,
    pub updated_at: DateTime<Utc>,
}
