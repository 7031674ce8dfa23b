//! Documents are measured before they are parsed. async-graphql's parser recurses once per
//! nested list, object, argument list, list type and selection set without a bound of its own,
//! so a few KiB of `[[[[…` overflow a worker's stack and abort the whole process; its depth and
//! complexity limits only apply to a document that parsed. One linear pass over the text,
//! outside strings and comments, refuses what nests deeper than [`MAX_NESTING`] or is longer
//! than the configured size, on every path that parses.

use async_graphql::{ErrorExtensionValues, Response, ServerError};

use crate::error::ErrorCode;

/// Brackets (`[`, `{`, `(`) open at once. The selection depth limit (16 by default) with an
/// argument list and a few levels of input objects at the deepest field stays well under it;
/// the parser is far from the stack's end at it, even unoptimised.
pub const MAX_NESTING: usize = 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    TooLong { limit: usize },
    TooDeep,
}

impl Refusal {
    pub fn message(self) -> String {
        match self {
            Self::TooLong { limit } => {
                format!("the query document is longer than {limit} bytes")
            }
            Self::TooDeep => {
                format!("the query document nests brackets deeper than {MAX_NESTING} levels")
            }
        }
    }

    /// The BAD_USER_INPUT response that refuses the document.
    pub fn response(self) -> Response {
        let mut extensions = ErrorExtensionValues::default();
        extensions.set("code", ErrorCode::BadUserInput.as_str());
        let mut error = ServerError::new(self.message(), None);
        error.extensions = Some(extensions);
        Response::from_errors(vec![error])
    }
}

/// Whether `document` may be given to the parser.
pub fn check(document: &str, max_bytes: usize) -> Result<(), Refusal> {
    if document.len() > max_bytes {
        return Err(Refusal::TooLong { limit: max_bytes });
    }
    check_nesting(document)
}

/// Counts open brackets outside strings, block strings and comments. Where the text is not
/// valid GraphQL (an unterminated string) it errs towards counting: a one-line string ends at
/// the line's end, as it does for the parser, which never reads brackets inside a string.
pub fn check_nesting(document: &str) -> Result<(), Refusal> {
    let bytes = document.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'[' | b'{' | b'(' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(Refusal::TooDeep);
                }
            }
            b']' | b'}' | b')' => depth = depth.saturating_sub(1),
            b'#' => i = line_end(bytes, i),
            b'"' if bytes[i..].starts_with(b"\"\"\"") => i = block_string_end(bytes, i + 3),
            b'"' => i = string_end(bytes, i + 1),
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

/// The index of the line break ending the comment at `i` (or the last byte).
fn line_end(bytes: &[u8], i: usize) -> usize {
    bytes[i..]
        .iter()
        .position(|&b| b == b'\n' || b == b'\r')
        .map_or(bytes.len(), |n| i + n)
}

/// The index of the quote closing a string whose text starts at `i`, or of the line break
/// that cuts it short.
fn string_end(bytes: &[u8], mut i: usize) -> usize {
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 1,
            b'"' | b'\n' | b'\r' => return i,
            _ => {}
        }
        i += 1;
    }
    bytes.len()
}

/// The index of the last quote of the `"""` closing a block string whose text starts at `i`;
/// `\"""` is an escaped quote inside it.
fn block_string_end(bytes: &[u8], mut i: usize) -> usize {
    while i < bytes.len() {
        if bytes[i..].starts_with(b"\\\"\"\"") {
            i += 4;
        } else if bytes[i..].starts_with(b"\"\"\"") {
            return i + 2;
        } else {
            i += 1;
        }
    }
    bytes.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(open: &str, close: &str, levels: usize) -> String {
        format!("{}{}", open.repeat(levels), close.repeat(levels))
    }

    #[test]
    fn counts_every_kind_of_bracket() {
        assert_eq!(check_nesting(&nested("[", "]", MAX_NESTING)), Ok(()));
        for (open, close) in [("[", "]"), ("{", "}"), ("(", ")"), ("{a:", "}")] {
            let deep = nested(open, close, MAX_NESTING + 1);
            assert_eq!(check_nesting(&deep), Err(Refusal::TooDeep), "{open}");
        }
        let mixed = "{(a:[{b:".repeat(17);
        assert_eq!(check_nesting(&mixed), Err(Refusal::TooDeep));
    }

    #[test]
    fn brackets_in_strings_and_comments_do_not_count() {
        let brackets = "[".repeat(1000);
        for quoted in [
            format!("\"{brackets}\""),
            format!("\"\"\"{brackets}\"\"\""),
            format!("\"\"\" \\\"\"\" {brackets}\"\"\""),
            format!("\"\\\"{brackets}\""),
            format!("# {brackets}\n"),
        ] {
            assert_eq!(
                check_nesting(&format!("{{a(b: {quoted})}}")),
                Ok(()),
                "{quoted}"
            );
        }
    }

    #[test]
    fn a_string_cut_by_a_line_break_ends_there() {
        let text = format!("\"abc\n{}", "[".repeat(MAX_NESTING + 1));
        assert_eq!(check_nesting(&text), Err(Refusal::TooDeep));
    }

    #[test]
    fn closing_brackets_never_buy_depth() {
        let text = format!("{}{}", "]".repeat(1000), "[".repeat(MAX_NESTING + 1));
        assert_eq!(check_nesting(&text), Err(Refusal::TooDeep));
    }

    #[test]
    fn length_is_checked_in_bytes() {
        assert_eq!(check("{a}", 3), Ok(()));
        assert_eq!(check("{ab}", 3), Err(Refusal::TooLong { limit: 3 }));
    }
}
