//! UTC time stamps for snapshot and data-directory names: sortable as text,
//! no time-zone database needed.

use std::time::{SystemTime, UNIX_EPOCH};

use time::macros::format_description;
use time::OffsetDateTime;

/// `YYYYMMDDHHMMSS` in UTC. A time before 1970 (a clock gone wrong) is
/// stamped as 1970: a stamp only orders and names files.
pub fn utc(at: SystemTime) -> String {
    let at = if at < UNIX_EPOCH { UNIX_EPOCH } else { at };
    OffsetDateTime::from(at)
        .format(format_description!(
            "[year][month][day][hour][minute][second]"
        ))
        // Formatting a year 0..=9999 into a String cannot fail; a year past
        // that still gets a name that sorts after every earlier stamp.
        .unwrap_or_else(|_| "99991231235959".to_string())
}

/// The current time as [`utc`].
pub fn now() -> String {
    utc(SystemTime::now())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn stamps_are_utc_and_fixed_width() {
        assert_eq!(utc(UNIX_EPOCH), "19700101000000");
        // 2024-02-29 23:59:59 UTC: a leap day, last second.
        let leap = UNIX_EPOCH + Duration::from_secs(1_709_251_199);
        assert_eq!(utc(leap), "20240229235959");
        assert_eq!(
            utc(leap + Duration::from_secs(1)),
            "20240301000000",
            "the day after a leap day is March 1st"
        );
    }
}
