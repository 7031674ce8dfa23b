//! Input rules for schedules. Each failure names its field.

use chrono::{NaiveTime, Utc};
use chrono_tz::Tz;
use uuid::Uuid;

use super::model::{Exception, Schedule, ScheduleInput, WeeklyWindow, Window, WindowInput};
use crate::error::{AppError, AppResult};

const MAX_WINDOWS: usize = 50;
const MAX_EXCEPTIONS: usize = 366;

pub fn schedule(doctor_id: Uuid, input: ScheduleInput) -> AppResult<Schedule> {
    let time_zone: Tz = input.time_zone.trim().parse().map_err(|_| {
        AppError::bad_input(
            "timeZone",
            format!(
                "{:?} is not an IANA time zone such as Europe/Berlin",
                input.time_zone
            ),
        )
    })?;
    let slot_minutes = within("slotMinutes", input.slot_minutes, 10, 120)?;
    let min_notice_minutes = within("minNoticeMinutes", input.min_notice_minutes, 0, 7 * 24 * 60)?;
    let booking_horizon_days = within("bookingHorizonDays", input.booking_horizon_days, 1, 365)?;
    let cancellation_notice_minutes = within(
        "cancellationNoticeMinutes",
        input.cancellation_notice_minutes,
        0,
        7 * 24 * 60,
    )?;
    if input.weekly.len() > MAX_WINDOWS {
        return Err(AppError::bad_input(
            "weekly",
            format!("at most {MAX_WINDOWS} windows"),
        ));
    }
    let mut weekly = Vec::with_capacity(input.weekly.len());
    for w in &input.weekly {
        let window = window("weekly", &w.start, &w.end)?;
        weekly.push(WeeklyWindow {
            weekday: w.weekday,
            start: window.start,
            end: window.end,
        });
    }
    for (i, a) in weekly.iter().enumerate() {
        if weekly[i + 1..]
            .iter()
            .any(|b| a.weekday == b.weekday && a.start < b.end && b.start < a.end)
        {
            return Err(AppError::bad_input(
                "weekly",
                format!("two windows on {:?} overlap", a.weekday),
            ));
        }
    }
    if input.exceptions.len() > MAX_EXCEPTIONS {
        return Err(AppError::bad_input(
            "exceptions",
            format!("at most {MAX_EXCEPTIONS} exceptions"),
        ));
    }
    let mut exceptions: Vec<Exception> = Vec::with_capacity(input.exceptions.len());
    for e in input.exceptions {
        if exceptions.iter().any(|x| x.date == e.date.0) {
            return Err(AppError::bad_input(
                "exceptions",
                format!("{} has two exceptions", e.date.0),
            ));
        }
        let windows = e
            .windows
            .iter()
            .map(|w: &WindowInput| window("exceptions", &w.start, &w.end))
            .collect::<AppResult<Vec<_>>>()?;
        if !e.available && !windows.is_empty() {
            return Err(AppError::bad_input(
                "exceptions",
                format!("{} is unavailable but has windows", e.date.0),
            ));
        }
        if windows.iter().enumerate().any(|(i, a)| {
            windows[i + 1..]
                .iter()
                .any(|b| a.start < b.end && b.start < a.end)
        }) {
            return Err(AppError::bad_input(
                "exceptions",
                format!("two windows on {} overlap", e.date.0),
            ));
        }
        exceptions.push(Exception {
            date: e.date.0,
            available: e.available,
            windows,
        });
    }
    Ok(Schedule {
        doctor_id,
        time_zone,
        slot_minutes,
        min_notice_minutes,
        booking_horizon_days,
        cancellation_notice_minutes,
        weekly,
        exceptions,
        updated_at: Utc::now(),
    })
}

fn within(field: &'static str, value: i32, min: i64, max: i64) -> AppResult<i64> {
    let value = i64::from(value);
    if (min..=max).contains(&value) {
        Ok(value)
    } else {
        Err(AppError::bad_input(
            field,
            format!("{field} must be {min} to {max}"),
        ))
    }
}

fn window(field: &'static str, start: &str, end: &str) -> AppResult<Window> {
    let parse = |raw: &str| {
        NaiveTime::parse_from_str(raw.trim(), "%H:%M").map_err(|_| {
            AppError::bad_input(field, format!("{raw:?} is not a time of day as HH:MM"))
        })
    };
    let (start, end) = (parse(start)?, parse(end)?);
    if end <= start {
        return Err(AppError::bad_input(
            field,
            format!("a window must end after it starts ({start} to {end})"),
        ));
    }
    Ok(Window { start, end })
}
