//! kubeasz-style durations: `876000h`, `438000h`, `240h`, `30d`, `90m`, `1h30m`.

use std::time::Duration;

/// Why a duration string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExpiryError {
    /// Nothing but white space.
    #[error("empty duration")]
    Empty,
    /// A number with no unit after it (`"100"`).
    #[error("duration {input:?}: number without a unit (use s, m, h or d, e.g. \"876000h\")")]
    MissingUnit {
        /// The whole input.
        input: String,
    },
    /// A unit that is not one of `s`, `m`, `h`, `d`.
    #[error("duration {input:?}: unknown unit {unit:?} (use s, m, h or d)")]
    UnknownUnit {
        /// The whole input.
        input: String,
        /// The unit found.
        unit: String,
    },
    /// A character that is neither a digit nor a unit letter (`"1.5h"`, `"5 h"`, `"-1h"`).
    #[error("duration {input:?}: unexpected {ch:?} at byte {at} (whole numbers with a unit only, e.g. \"90m\")")]
    InvalidChar {
        /// The whole input.
        input: String,
        /// Byte offset in the trimmed input.
        at: usize,
        /// The character.
        ch: char,
    },
    /// A unit with no number before it (`"h"`).
    #[error("duration {input:?}: expected a number at byte {at}")]
    ExpectedNumber {
        /// The whole input.
        input: String,
        /// Byte offset of the problem.
        at: usize,
    },
    /// The total is zero.
    #[error("duration {input:?} is zero")]
    Zero {
        /// The whole input.
        input: String,
    },
    /// Larger than this crate accepts (more than 10,000 years).
    #[error("duration {input:?} is too large")]
    TooLarge {
        /// The whole input.
        input: String,
    },
}

/// Upper bound: 10,000 years of 365 days. X.509 GeneralizedTime stops at year 9999 anyway.
const MAX_SECS: u64 = 10_000 * 365 * 86_400;

/// Parses a kubeasz / cfssl style expiry such as `"876000h"` (100 years), `"438000h"`,
/// `"240h"`, `"30d"`, `"90m"`, `"45s"`, or a sum like `"1d12h"`.
///
/// Units: `s`, `m` (minutes), `h`, `d` (24 h). Whole numbers only; surrounding white
/// space is ignored, a zero total is an error.
pub fn parse_expiry(input: &str) -> Result<Duration, ExpiryError> {
    let s = input.trim();
    if s.is_empty() {
        return Err(ExpiryError::Empty);
    }
    let owned = || input.to_string();
    let bytes = s.as_bytes();
    let mut i = 0;
    let mut total: u64 = 0;
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            if i < bytes.len() && !bytes[i].is_ascii_alphabetic() {
                let ch = s[i..].chars().next().unwrap_or('?');
                return Err(ExpiryError::InvalidChar {
                    input: owned(),
                    at: i,
                    ch,
                });
            }
            return Err(ExpiryError::ExpectedNumber {
                input: owned(),
                at: start,
            });
        }
        let number: u64 = s[start..i]
            .parse()
            .map_err(|_| ExpiryError::TooLarge { input: owned() })?;
        let ustart = i;
        while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
            i += 1;
        }
        let unit = &s[ustart..i];
        if unit.is_empty() && i < bytes.len() {
            let ch = s[i..].chars().next().unwrap_or('?');
            return Err(ExpiryError::InvalidChar {
                input: owned(),
                at: i,
                ch,
            });
        }
        let mult: u64 = match unit {
            "" => return Err(ExpiryError::MissingUnit { input: owned() }),
            "s" => 1,
            "m" => 60,
            "h" => 3_600,
            "d" => 86_400,
            other => {
                return Err(ExpiryError::UnknownUnit {
                    input: owned(),
                    unit: other.to_string(),
                })
            }
        };
        let add = number
            .checked_mul(mult)
            .ok_or_else(|| ExpiryError::TooLarge { input: owned() })?;
        total = total
            .checked_add(add)
            .ok_or_else(|| ExpiryError::TooLarge { input: owned() })?;
        if total > MAX_SECS {
            return Err(ExpiryError::TooLarge { input: owned() });
        }
    }
    if total == 0 {
        return Err(ExpiryError::Zero { input: owned() });
    }
    Ok(Duration::from_secs(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubeasz_defaults() {
        assert_eq!(
            parse_expiry("876000h").unwrap(),
            Duration::from_secs(876_000 * 3600)
        );
        assert_eq!(
            parse_expiry("438000h").unwrap(),
            Duration::from_secs(438_000 * 3600)
        );
        assert_eq!(
            parse_expiry("240h").unwrap(),
            Duration::from_secs(240 * 3600)
        );
        assert_eq!(
            parse_expiry("30d").unwrap(),
            Duration::from_secs(30 * 86400)
        );
        assert_eq!(parse_expiry("90m").unwrap(), Duration::from_secs(90 * 60));
        assert_eq!(parse_expiry("45s").unwrap(), Duration::from_secs(45));
        assert_eq!(
            parse_expiry(" 1d12h ").unwrap(),
            Duration::from_secs(36 * 3600)
        );
        assert_eq!(parse_expiry("1h30m").unwrap(), Duration::from_secs(5400));
    }

    #[test]
    fn rejects() {
        assert_eq!(parse_expiry(""), Err(ExpiryError::Empty));
        assert_eq!(parse_expiry("   "), Err(ExpiryError::Empty));
        assert!(matches!(
            parse_expiry("100"),
            Err(ExpiryError::MissingUnit { .. })
        ));
        assert!(
            matches!(parse_expiry("10y"), Err(ExpiryError::UnknownUnit { unit, .. }) if unit == "y")
        );
        assert!(matches!(
            parse_expiry("10hours"),
            Err(ExpiryError::UnknownUnit { .. })
        ));
        assert!(matches!(
            parse_expiry("h"),
            Err(ExpiryError::ExpectedNumber { at: 0, .. })
        ));
        assert!(matches!(
            parse_expiry("-5h"),
            Err(ExpiryError::InvalidChar { ch: '-', at: 0, .. })
        ));
        assert!(matches!(
            parse_expiry("1.5h"),
            Err(ExpiryError::InvalidChar { ch: '.', at: 1, .. })
        ));
        assert!(matches!(parse_expiry("0h"), Err(ExpiryError::Zero { .. })));
        assert!(matches!(
            parse_expiry("0h0m"),
            Err(ExpiryError::Zero { .. })
        ));
        assert!(matches!(
            parse_expiry("99999999999999999999h"),
            Err(ExpiryError::TooLarge { .. })
        ));
        assert!(matches!(
            parse_expiry("100000000h"),
            Err(ExpiryError::TooLarge { .. })
        ));
        assert!(matches!(
            parse_expiry("5 h"),
            Err(ExpiryError::InvalidChar { ch: ' ', .. })
        ));
        assert!(matches!(
            parse_expiry("5h10"),
            Err(ExpiryError::MissingUnit { .. })
        ));
        assert!(matches!(
            parse_expiry("1hé"),
            Err(ExpiryError::InvalidChar { ch: 'é', .. })
        ));
    }

    #[test]
    fn messages_name_the_input() {
        let e = parse_expiry("10y").unwrap_err().to_string();
        assert!(e.contains("10y") && e.contains("unknown unit"), "{e}");
    }
}
