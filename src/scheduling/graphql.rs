use async_graphql::{Context, Object, SimpleObject};
use chrono::NaiveTime;

use super::date::Date;
use super::model::{Exception, Schedule, ScheduleInput, Weekday, WeeklyWindow, Window};
use super::service;
use crate::error::AppResult;
use crate::graphql::context::{state, viewer};

#[derive(Default)]
pub struct SchedulingMutation;

#[Object]
impl SchedulingMutation {
    /// Replaces the signed-in doctor's schedule: weekly hours and exceptions in their own time
    /// zone, slot length and booking rules. Booked appointments are kept.
    async fn set_schedule(&self, ctx: &Context<'_>, input: ScheduleInput) -> AppResult<Schedule> {
        service::set(state(ctx), viewer(ctx).await?, input).await
    }
}

fn hh_mm(time: NaiveTime) -> String {
    time.format("%H:%M").to_string()
}

#[Object]
impl Schedule {
    async fn time_zone(&self) -> &str {
        self.time_zone.name()
    }

    async fn slot_minutes(&self) -> i64 {
        self.slot_minutes
    }

    async fn min_notice_minutes(&self) -> i64 {
        self.min_notice_minutes
    }

    async fn booking_horizon_days(&self) -> i64 {
        self.booking_horizon_days
    }

    async fn cancellation_notice_minutes(&self) -> i64 {
        self.cancellation_notice_minutes
    }

    async fn weekly(&self) -> Vec<WeeklyWindowView> {
        self.weekly.iter().map(WeeklyWindowView::from).collect()
    }

    async fn exceptions(&self) -> Vec<ExceptionView> {
        self.exceptions.iter().map(ExceptionView::from).collect()
    }
}

#[derive(SimpleObject)]
#[graphql(name = "WeeklyWindow")]
pub struct WeeklyWindowView {
    weekday: Weekday,
    start: String,
    end: String,
}

impl From<&WeeklyWindow> for WeeklyWindowView {
    fn from(w: &WeeklyWindow) -> Self {
        Self {
            weekday: w.weekday,
            start: hh_mm(w.start),
            end: hh_mm(w.end),
        }
    }
}

#[derive(SimpleObject)]
#[graphql(name = "Window")]
pub struct WindowView {
    start: String,
    end: String,
}

impl From<&Window> for WindowView {
    fn from(w: &Window) -> Self {
        Self {
            start: hh_mm(w.start),
            end: hh_mm(w.end),
        }
    }
}

#[derive(SimpleObject)]
#[graphql(name = "ScheduleException")]
pub struct ExceptionView {
    date: Date,
    available: bool,
    windows: Vec<WindowView>,
}

impl From<&Exception> for ExceptionView {
    fn from(e: &Exception) -> Self {
        Self {
            date: Date(e.date),
            available: e.available,
            windows: e.windows.iter().map(WindowView::from).collect(),
        }
    }
}
