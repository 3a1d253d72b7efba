//! Proleptic Gregorian calendar arithmetic for the RTC (days since the Unix
//! epoch to and from year/month/day), and the RTC's BCD encoding.
//!
//! Guests may write nonsense (month 0, hour 0x99); the arithmetic accepts any
//! field values and normalises them, so nothing here can panic or overflow on
//! register-sized inputs.

pub const SECS_PER_DAY: i64 = 86_400;

/// A broken-down UTC time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DateTime {
    pub year: i64,
    /// 1-12
    pub month: i64,
    /// 1-31
    pub day: i64,
    pub hour: i64,
    pub minute: i64,
    pub second: i64,
    /// 0 = Sunday
    pub weekday: i64,
}

/// Days from 1970-01-01 to `y-m-d`.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date `z` days after 1970-01-01.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

impl DateTime {
    /// The time `secs` seconds after the Unix epoch.
    pub fn from_unix(secs: i64) -> Self {
        let days = secs.div_euclid(SECS_PER_DAY);
        let tod = secs.rem_euclid(SECS_PER_DAY);
        let (year, month, day) = civil_from_days(days);
        Self {
            year,
            month,
            day,
            hour: tod / 3600,
            minute: tod / 60 % 60,
            second: tod % 60,
            // 1970-01-01 was a Thursday.
            weekday: (days + 4).rem_euclid(7),
        }
    }

    /// Seconds since the Unix epoch; out-of-range fields carry over.
    pub fn to_unix(self) -> i64 {
        days_from_civil(self.year, self.month, self.day) * SECS_PER_DAY
            + self.hour * 3600
            + self.minute * 60
            + self.second
    }
}

/// `v` (0-99) in packed BCD.
pub fn to_bcd(v: u8) -> u8 {
    ((v / 10) << 4) | (v % 10)
}

/// Packed BCD to binary, without validation (0xFF reads as 165).
pub fn from_bcd(b: u8) -> u8 {
    (b >> 4) * 10 + (b & 0x0F)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_across_leap_years_and_the_epoch() {
        for secs in [0, -1, 951_782_400, 1_709_214_307, 4_107_542_400, -62_167_219_200] {
            assert_eq!(DateTime::from_unix(secs).to_unix(), secs);
        }
        let leap = DateTime::from_unix(1_709_214_307);
        assert_eq!((leap.year, leap.month, leap.day), (2024, 2, 29));
        assert_eq!((leap.hour, leap.minute, leap.second, leap.weekday), (13, 45, 7, 4));
        let y2k = DateTime::from_unix(951_782_400);
        assert_eq!((y2k.year, y2k.month, y2k.day), (2000, 2, 29));
    }

    #[test]
    fn nonsense_fields_normalise() {
        let mut t = DateTime::from_unix(0);
        t.month = 13;
        assert_eq!(DateTime::from_unix(t.to_unix()).year, 1971);
        t.month = 0;
        t.day = 0;
        t.hour = 165;
        let _ = DateTime::from_unix(t.to_unix());
    }

    #[test]
    fn bcd() {
        assert_eq!(to_bcd(59), 0x59);
        assert_eq!(from_bcd(0x59), 59);
        assert_eq!(from_bcd(0xFF), 165);
    }
}
