//! Keyset pagination shared by every list: page size rules and opaque cursors.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, SecondsFormat, Utc};
use uuid::Uuid;

use crate::error::{AppError, AppResult};

pub const DEFAULT_PAGE_SIZE: usize = 20;
pub const MAX_PAGE_SIZE: usize = 100;

/// What a page costs against the query complexity limit: each of its items costs what its
/// selection does, so `first: 100` of a nested page counts a hundred times.
pub fn page_complexity(first: Option<i32>, child_complexity: usize) -> usize {
    let size = first.map_or(DEFAULT_PAGE_SIZE, |n| {
        usize::try_from(n).unwrap_or(0).min(MAX_PAGE_SIZE)
    });
    size.max(1)
        .saturating_mul(child_complexity)
        .saturating_add(1)
}

/// A validated `first`/`after` pair. `after` is the decoded cursor, which only the domain that
/// issued it knows how to read.
#[derive(Clone, Debug)]
pub struct PageArgs {
    pub first: usize,
    pub after: Option<String>,
}

impl PageArgs {
    pub fn new(first: Option<i32>, after: Option<String>) -> AppResult<Self> {
        let first = match first {
            None => DEFAULT_PAGE_SIZE,
            Some(n) => usize::try_from(n)
                .ok()
                .filter(|n| *n <= MAX_PAGE_SIZE)
                .ok_or_else(|| {
                    AppError::bad_input(
                        "first",
                        format!("first must be between 0 and {MAX_PAGE_SIZE}"),
                    )
                })?,
        };
        let after = after.map(|cursor| decode_cursor(&cursor)).transpose()?;
        Ok(Self { first, after })
    }

    /// `after` read as the cursor of a list in (time, id) order.
    pub fn after_time_id(&self) -> AppResult<Option<(DateTime<Utc>, Uuid)>> {
        self.after.as_deref().map(parse_time_id).transpose()
    }

    /// How many rows to fetch: one more than the page, to learn whether another page follows.
    pub fn fetch_limit(&self) -> usize {
        self.first + 1
    }
}

/// One page of items with their cursors.
pub struct Page<T> {
    pub edges: Vec<(String, T)>,
    pub has_previous_page: bool,
    pub has_next_page: bool,
}

impl<T> Page<T> {
    /// Builds a page from rows fetched with [`PageArgs::fetch_limit`].
    pub fn from_rows(mut rows: Vec<T>, args: &PageArgs, cursor_of: impl Fn(&T) -> String) -> Self {
        let has_next_page = rows.len() > args.first;
        rows.truncate(args.first);
        Self {
            edges: rows
                .into_iter()
                .map(|row| (encode_cursor(&cursor_of(&row)), row))
                .collect(),
            has_previous_page: args.after.is_some(),
            has_next_page,
        }
    }

    /// The same page with each item converted.
    pub fn map<U>(self, convert: impl Fn(T) -> U) -> Page<U> {
        Page {
            edges: self
                .edges
                .into_iter()
                .map(|(cursor, item)| (cursor, convert(item)))
                .collect(),
            has_previous_page: self.has_previous_page,
            has_next_page: self.has_next_page,
        }
    }
}

pub fn encode_cursor(inner: &str) -> String {
    URL_SAFE_NO_PAD.encode(inner)
}

fn decode_cursor(cursor: &str) -> AppResult<String> {
    URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(malformed_cursor)
}

/// The inner cursor of an item in a list ordered by (time, id).
pub fn time_id(at: DateTime<Utc>, id: Uuid) -> String {
    format!("{}|{id}", at.to_rfc3339_opts(SecondsFormat::Micros, true))
}

pub fn parse_time_id(inner: &str) -> AppResult<(DateTime<Utc>, Uuid)> {
    let (at, id) = inner.split_once('|').ok_or_else(malformed_cursor)?;
    let at = DateTime::parse_from_rfc3339(at).map_err(|_| malformed_cursor())?;
    let id = Uuid::parse_str(id).map_err(|_| malformed_cursor())?;
    Ok((at.with_timezone(&Utc), id))
}

/// An opaque cursor decoded and read as (time, id).
pub fn decode_time_id(cursor: &str) -> AppResult<(DateTime<Utc>, Uuid)> {
    parse_time_id(&decode_cursor(cursor)?)
}

/// The error for a cursor that decodes but does not parse as its domain expects.
pub fn malformed_cursor() -> AppError {
    AppError::bad_input("after", "the cursor is malformed; use one from pageInfo")
}
