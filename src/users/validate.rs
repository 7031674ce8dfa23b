//! Input rules for accounts. Each failure names the input field it concerns.

use crate::error::{AppError, AppResult};

pub const PASSWORD_CHARS: std::ops::RangeInclusive<usize> = 8..=128;
const NAME_MAX_CHARS: usize = 100;
pub const EMAIL_MAX_BYTES: usize = 254;

/// The longest text `users(filter: {search})` takes: a LIKE pattern's cost grows with it.
pub const SEARCH_MAX_CHARS: usize = 200;

pub fn search(search: Option<&str>) -> AppResult<()> {
    if search.is_some_and(|s| s.chars().count() > SEARCH_MAX_CHARS) {
        return Err(AppError::bad_input(
            "filter.search",
            format!("search must be at most {SEARCH_MAX_CHARS} characters"),
        ));
    }
    Ok(())
}

/// Trims and lower-cases an email address and checks its shape (`local@domain.tld`).
pub fn email(raw: &str) -> AppResult<String> {
    let email = raw.trim().to_lowercase();
    let invalid = || AppError::bad_input("email", "enter a valid email address");
    if email.is_empty() || email.len() > EMAIL_MAX_BYTES {
        return Err(invalid());
    }
    let (local, domain) = email.split_once('@').ok_or_else(invalid)?;
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local
            .chars()
            .all(|c| c.is_alphanumeric() || "!#$%&'*+/=?^_`{|}~.-".contains(c));
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && labels.iter().all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_alphanumeric() || c == '-')
        });
    if local_ok && domain_ok {
        Ok(email)
    } else {
        Err(invalid())
    }
}

pub fn password(password: &str) -> AppResult<()> {
    let chars = password.chars().count();
    if PASSWORD_CHARS.contains(&chars) {
        Ok(())
    } else {
        Err(AppError::bad_input(
            "password",
            format!(
                "the password must be {} to {} characters long",
                PASSWORD_CHARS.start(),
                PASSWORD_CHARS.end()
            ),
        ))
    }
}

pub fn name(raw: &str) -> AppResult<String> {
    let name = raw.trim();
    let chars = name.chars().count();
    if chars == 0 || chars > NAME_MAX_CHARS || name.chars().any(char::is_control) {
        return Err(AppError::bad_input(
            "name",
            format!("the name must be 1 to {NAME_MAX_CHARS} printable characters"),
        ));
    }
    Ok(name.to_owned())
}

/// Keeps a leading `+` and the digits; 7 to 15 digits as E.164 allows.
pub fn phone(raw: &str) -> AppResult<String> {
    let trimmed = raw.trim();
    let (plus, rest) = match trimmed.strip_prefix('+') {
        Some(rest) => ("+", rest),
        None => ("", trimmed),
    };
    let mut digits = String::with_capacity(rest.len());
    for c in rest.chars() {
        match c {
            '0'..='9' => digits.push(c),
            ' ' | '-' | '.' | '(' | ')' => {}
            _ => return Err(invalid_phone()),
        }
    }
    if !(7..=15).contains(&digits.len()) {
        return Err(invalid_phone());
    }
    Ok(format!("{plus}{digits}"))
}

fn invalid_phone() -> AppError {
    AppError::bad_input(
        "phone",
        "enter a phone number of 7 to 15 digits, optionally starting with +",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        assert_eq!(email("  Ann@Example.COM ").unwrap(), "ann@example.com");
        for bad in [
            "",
            "ann",
            "ann@",
            "@example.com",
            "ann@example",
            "a b@example.com",
            "ann@-x.com",
            "ann..b@example.com",
            "ann@exa_mple.com",
        ] {
            assert!(email(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn phones() {
        assert_eq!(phone("+1 (555) 010-9999").unwrap(), "+15550109999");
        assert!(phone("12345").is_err());
        assert!(phone("+1 555 abc 9999").is_err());
    }
}
