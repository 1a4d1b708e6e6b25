//! Proleptic Gregorian calendar arithmetic on plain integers.
//!
//! The expansion loop touches every candidate day of a period; doing that with plain day numbers
//! (days since 1970-01-01) is far cheaper than going through `jiff` spans, and `jiff` is only
//! needed where time zones enter (local wall clock <-> instant).

/// Earliest and latest years the engine generates; `jiff` timestamps cover roughly -9999..=9999.
pub(crate) const MIN_YEAR: i64 = -9998;
pub(crate) const MAX_YEAR: i64 = 9998;

pub(crate) fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

pub(crate) fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ => {
            if is_leap(y) {
                29
            } else {
                28
            }
        }
    }
}

pub(crate) fn days_in_year(y: i64) -> i64 {
    if is_leap(y) {
        366
    } else {
        365
    }
}

/// Day number (days since 1970-01-01) of a civil date.
pub(crate) fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Civil date `(year, month, day)` of a day number.
pub(crate) fn civil_from_days(n: i64) -> (i64, i64, i64) {
    let z = n + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Weekday of a day number, 0 = Monday .. 6 = Sunday.
pub(crate) fn weekday(n: i64) -> i64 {
    (n + 3).rem_euclid(7)
}

/// Day number of the first day of the week (starting on `wkst`, 0 = Monday) containing `n`.
pub(crate) fn week_start(n: i64, wkst: i64) -> i64 {
    n - (weekday(n) - wkst).rem_euclid(7)
}

/// Day number on which week 1 of `year` starts: the first week beginning on `wkst` that has at
/// least four days in the year (RFC 5545 BYWEEKNO, ISO 8601 when `wkst` is Monday).
pub(crate) fn week1_start(year: i64, wkst: i64) -> i64 {
    let jan1 = days_from_civil(year, 1, 1);
    let offset = (weekday(jan1) - wkst).rem_euclid(7);
    if offset <= 3 {
        jan1 - offset
    } else {
        jan1 + 7 - offset
    }
}

/// A local wall-clock moment split into fields, seconds resolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Civil {
    pub day: i64,
    pub year: i64,
    pub month: i64,
    pub mday: i64,
    pub hour: i64,
    pub minute: i64,
    pub second: i64,
}

impl Civil {
    /// Splits local seconds since the epoch (UTC seconds + UTC offset).
    pub(crate) fn from_local_seconds(s: i64) -> Civil {
        let day = s.div_euclid(86_400);
        let sod = s.rem_euclid(86_400);
        let (year, month, mday) = civil_from_days(day);
        Civil {
            day,
            year,
            month,
            mday,
            hour: sod / 3600,
            minute: sod % 3600 / 60,
            second: sod % 60,
        }
    }
}

/// Week-number context for one year (RFC 5545 BYWEEKNO, weeks start on WKST).
pub(crate) struct Weeks {
    /// Week 1 starts of year-1, year, year+1, year+2 (day numbers).
    starts: [i64; 4],
}

impl Weeks {
    pub(crate) fn new(year: i64, wkst: i64) -> Weeks {
        Weeks {
            starts: [
                week1_start(year - 1, wkst),
                week1_start(year, wkst),
                week1_start(year + 1, wkst),
                week1_start(year + 2, wkst),
            ],
        }
    }

    /// (week number, number of weeks in its week-numbering year).
    pub(crate) fn week_of(&self, dn: i64) -> (i64, i64) {
        let s = &self.starts;
        let i = if dn >= s[2] {
            2
        } else if dn >= s[1] {
            1
        } else {
            0
        };
        ((dn - s[i]) / 7 + 1, (s[i + 1] - s[i]) / 7)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_days() {
        for n in -800_000..800_000 {
            let (y, m, d) = civil_from_days(n);
            assert_eq!(days_from_civil(y, m, d), n);
        }
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(weekday(0), 3);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    }

    #[test]
    fn iso_week1() {
        // 1998-01-01 is a Thursday: week 1 starts Monday 1997-12-29.
        assert_eq!(week1_start(1998, 0), days_from_civil(1997, 12, 29));
        // 1999-01-01 is a Friday: week 1 starts Monday 1999-01-04.
        assert_eq!(week1_start(1999, 0), days_from_civil(1999, 1, 4));
    }
}
