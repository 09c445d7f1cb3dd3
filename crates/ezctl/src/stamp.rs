//! UTC time stamps for snapshot and data-directory names: sortable as text,
//! no time-zone database needed.

use std::time::{SystemTime, UNIX_EPOCH};

/// `YYYYMMDDHHMMSS` in UTC.
pub fn utc(at: SystemTime) -> String {
    let secs = at
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}{m:02}{d:02}{:02}{:02}{:02}",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// The current time as [`utc`].
pub fn now() -> String {
    utc(SystemTime::now())
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian
/// (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
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
