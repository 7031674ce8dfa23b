//! Free-slot generation: the weekly pattern and exceptions, laid out on the calendar in the
//! doctor's time zone and converted to UTC with the zone's real offsets, so slots that a
//! daylight-saving change skips are not offered and repeated ones are offered once.

use chrono::{DateTime, Duration, LocalResult, NaiveDate, TimeZone, Utc};

use super::model::{Schedule, Slot, Weekday, Window};

/// Every slot of the schedule on the local dates `from..=to`, in time order.
pub fn scheduled(schedule: &Schedule, from: NaiveDate, to: NaiveDate) -> Vec<Slot> {
    let step = Duration::minutes(schedule.slot_minutes);
    let mut slots = Vec::new();
    for date in from.iter_days().take_while(|d| *d <= to) {
        for window in windows_on(schedule, date) {
            let mut start = date.and_time(window.start);
            while start + step <= date.and_time(window.end) {
                // A local time that does not exist (spring forward) has no slot; one that
                // exists twice (fall back) has one, at its first occurrence.
                let instant = match schedule.time_zone.from_local_datetime(&start) {
                    LocalResult::Single(t) => Some(t),
                    LocalResult::Ambiguous(first, _) => Some(first),
                    LocalResult::None => None,
                };
                if let Some(instant) = instant {
                    let starts_at = instant.with_timezone(&Utc);
                    slots.push(Slot {
                        starts_at,
                        ends_at: starts_at + step,
                    });
                }
                start += step;
            }
        }
    }
    slots.sort();
    slots.dedup_by_key(|s| s.starts_at);
    slots
}

fn windows_on(schedule: &Schedule, date: NaiveDate) -> Vec<Window> {
    if let Some(exception) = schedule.exceptions.iter().find(|e| e.date == date) {
        return if exception.available {
            exception.windows.clone()
        } else {
            Vec::new()
        };
    }
    let weekday = Weekday::from(chrono::Datelike::weekday(&date));
    schedule
        .weekly
        .iter()
        .filter(|w| w.weekday == weekday)
        .map(|w| Window {
            start: w.start,
            end: w.end,
        })
        .collect()
}

/// The slots a patient can book now: within the notice and horizon, and not overlapping a
/// booked interval. `booked` holds (start, end) pairs in any order.
pub fn free(
    schedule: &Schedule,
    slots: Vec<Slot>,
    booked: &[(DateTime<Utc>, DateTime<Utc>)],
    now: DateTime<Utc>,
) -> Vec<Slot> {
    let earliest = now + Duration::minutes(schedule.min_notice_minutes);
    let latest = now + Duration::days(schedule.booking_horizon_days);
    // Booked intervals by start, with the latest end seen so far: a slot overlaps one of the
    // intervals starting before its end exactly when the latest of their ends is after its
    // start. O((slots + booked) log booked) instead of comparing every pair.
    let mut booked = booked.to_vec();
    booked.sort_unstable();
    let latest_end: Vec<DateTime<Utc>> = booked
        .iter()
        .scan(None, |max: &mut Option<DateTime<Utc>>, (_, end)| {
            *max = Some(max.map_or(*end, |m| m.max(*end)));
            *max
        })
        .collect();
    slots
        .into_iter()
        .filter(|slot| slot.starts_at >= earliest && slot.starts_at <= latest)
        .filter(|slot| {
            let starting_before_end = booked.partition_point(|(start, _)| *start < slot.ends_at);
            starting_before_end == 0 || latest_end[starting_before_end - 1] <= slot.starts_at
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use chrono::{NaiveTime, TimeZone, Timelike};
    use uuid::Uuid;

    use super::*;
    use crate::scheduling::model::{Exception, WeeklyWindow};

    fn schedule(
        zone: &str,
        slot_minutes: i64,
        day: Weekday,
        start: (u32, u32),
        end: (u32, u32),
    ) -> Schedule {
        Schedule {
            doctor_id: Uuid::nil(),
            time_zone: zone.parse().unwrap(),
            slot_minutes,
            min_notice_minutes: 0,
            booking_horizon_days: 365,
            cancellation_notice_minutes: 0,
            weekly: vec![WeeklyWindow {
                weekday: day,
                start: NaiveTime::from_hms_opt(start.0, start.1, 0).unwrap(),
                end: NaiveTime::from_hms_opt(end.0, end.1, 0).unwrap(),
            }],
            exceptions: Vec::new(),
            updated_at: Utc::now(),
        }
    }

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn spring_forward_skips_the_missing_hour() {
        // 2026-03-08: New York jumps from 02:00 to 03:00.
        let s = schedule("America/New_York", 30, Weekday::Sunday, (1, 0), (4, 0));
        let slots = scheduled(&s, date(2026, 3, 8), date(2026, 3, 8));
        let local: Vec<String> = slots
            .iter()
            .map(|slot| {
                slot.starts_at
                    .with_timezone(&s.time_zone)
                    .format("%H:%M")
                    .to_string()
            })
            .collect();
        assert_eq!(local, ["01:00", "01:30", "03:00", "03:30"]);
    }

    #[test]
    fn fall_back_offers_the_repeated_hour_once() {
        // 2026-11-01: New York repeats 01:00-02:00.
        let s = schedule("America/New_York", 30, Weekday::Sunday, (0, 0), (3, 0));
        let slots = scheduled(&s, date(2026, 11, 1), date(2026, 11, 1));
        let utc: Vec<u32> = slots.iter().map(|slot| slot.starts_at.hour()).collect();
        // 00:00 and 00:30 EDT (04:xx UTC), 01:00 and 01:30 EDT once (05:xx UTC), then
        // 02:00 and 02:30 EST (07:xx UTC).
        assert_eq!(utc, [4, 4, 5, 5, 7, 7]);
    }

    #[test]
    fn booked_intervals_hide_the_slots_they_overlap() {
        let s = schedule("UTC", 30, Weekday::Monday, (9, 0), (12, 0));
        let slots = scheduled(&s, date(2026, 6, 1), date(2026, 6, 1));
        let at = |h: u32, m: u32| Utc.with_ymd_and_hms(2026, 6, 1, h, m, 0).unwrap();
        // One 30-minute booking, and a long one from an earlier, coarser schedule.
        let booked = [(at(11, 0), at(11, 30)), (at(9, 15), at(10, 15))];
        let free: Vec<u32> = free(&s, slots, &booked, at(0, 0))
            .iter()
            .map(|slot| slot.starts_at.hour() * 100 + slot.starts_at.minute())
            .collect();
        assert_eq!(free, [1030, 1130]);
    }

    #[test]
    fn exceptions_replace_the_weekly_hours() {
        let mut s = schedule("Europe/Berlin", 60, Weekday::Monday, (9, 0), (12, 0));
        s.exceptions = vec![
            Exception {
                date: date(2026, 6, 1),
                available: false,
                windows: Vec::new(),
            },
            Exception {
                date: date(2026, 6, 8),
                available: true,
                windows: vec![Window {
                    start: NaiveTime::from_hms_opt(14, 0, 0).unwrap(),
                    end: NaiveTime::from_hms_opt(15, 0, 0).unwrap(),
                }],
            },
        ];
        assert!(scheduled(&s, date(2026, 6, 1), date(2026, 6, 1)).is_empty());
        let replaced = scheduled(&s, date(2026, 6, 8), date(2026, 6, 8));
        assert_eq!(replaced.len(), 1);
        assert_eq!(replaced[0].starts_at.hour(), 12, "14:00 CEST is 12:00 UTC");
        assert_eq!(scheduled(&s, date(2026, 6, 15), date(2026, 6, 15)).len(), 3);
    }
}
