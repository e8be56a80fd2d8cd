//! Dates and times as Docker's drivers print them: RFC 3339 with nanoseconds (json-file's
//! `time`, Go's `time.RFC3339Nano`), RFC 3339 with a UTC offset and a fixed number of
//! fractional digits (syslog's rfc5424 formats), Go's `time.Stamp` (syslog's `Jan _2
//! 15:04:05`), and the proleptic Gregorian calendar under them.
//!
//! Why not a date crate: `time` and `jiff` both build for wasm32-wasip2, but every driver
//! needs only Unix nanoseconds to a civil date and back (Howard Hinnant's two functions
//! below) and Go's exact layouts, which a crate would not spare us writing. Measured on a
//! component formatting json-file's and syslog's three layouts (release, wasm32-wasip2):
//! this module 73.6 KB (45.6 KB of code); `time` 0.3.55 with `formatting` and `macros`
//! 116.7 KB (80.9 KB of code, and five more crates to build); `jiff` 0.2.46 466.8 KB
//! (338.7 KB of code). Every built-in driver would pay that, for thirty lines of arithmetic.

/// Days since 1970-01-01 to (year, month 1..=12, day 1..=31), proleptic Gregorian (Howard
/// Hinnant's `civil_from_days`).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The inverse of [`civil_from_days`].
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// How many fractional digits [`DateTime::rfc3339`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frac {
    /// None: `…T07:49:26Z`.
    None,
    /// Exactly this many digits, truncated (Go's `.000000` is `Fixed(6)`).
    Fixed(u32),
    /// Up to nine digits, trailing zeros trimmed, no dot when the fraction is zero (Go's
    /// `.999999999`, as in `time.RFC3339Nano`).
    Trimmed,
}

/// A broken-down time at a fixed offset from UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateTime {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    pub nanos: u32,
    /// Local time is UTC plus this many seconds.
    pub offset_secs: i32,
}

impl DateTime {
    /// `time_ns` (Unix nanoseconds, as in an entry's `time-ns`) seen at UTC plus
    /// `offset_secs` (the container record's `host.utc-offset-secs` for local time).
    pub fn from_unix_ns(time_ns: u64, offset_secs: i32) -> Self {
        let secs = (time_ns / 1_000_000_000) as i64;
        Self::from_unix_secs(secs, (time_ns % 1_000_000_000) as u32, offset_secs)
    }

    /// Unix seconds (and nanoseconds within the second) at UTC plus `offset_secs`.
    pub fn from_unix_secs(secs: i64, nanos: u32, offset_secs: i32) -> Self {
        let secs = secs.saturating_add(i64::from(offset_secs));
        let days = secs.div_euclid(86_400);
        let sod = secs.rem_euclid(86_400) as u32;
        let (year, month, day) = civil_from_days(days);
        DateTime {
            year,
            month,
            day,
            hour: sod / 3600,
            minute: sod / 60 % 60,
            second: sod % 60,
            nanos,
            offset_secs,
        }
    }

    /// `time_ns` in UTC.
    pub fn utc(time_ns: u64) -> Self {
        Self::from_unix_ns(time_ns, 0)
    }

    /// The month's English abbreviation, "Jan" to "Dec".
    pub fn month_abbrev(&self) -> &'static str {
        MONTHS[(self.month as usize).clamp(1, 12) - 1]
    }

    /// Go's `time.Stamp`, "Jan _2 15:04:05" (the day padded with a space).
    pub fn stamp(&self) -> String {
        format!(
            "{} {:>2} {:02}:{:02}:{:02}",
            self.month_abbrev(),
            self.day,
            self.hour,
            self.minute,
            self.second
        )
    }

    /// RFC 3339 as Go's `2006-01-02T15:04:05Z07:00` writes it with `frac` digits: `Z` at
    /// offset zero, else `+hh:mm` or `-hh:mm`.
    pub fn rfc3339(&self, frac: Frac) -> String {
        let mut s = format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        );
        match frac {
            Frac::None => {}
            Frac::Fixed(0) => {}
            Frac::Fixed(n) => {
                let n = n.min(9);
                let digits = format!("{:09}", self.nanos);
                s.push('.');
                s.push_str(&digits[..n as usize]);
            }
            Frac::Trimmed => {
                let mut out = Vec::new();
                push_trimmed_frac(self.nanos, &mut out);
                s.push_str(&String::from_utf8_lossy(&out));
            }
        }
        if self.offset_secs == 0 {
            s.push('Z');
        } else {
            let sign = if self.offset_secs < 0 { '-' } else { '+' };
            let abs = self.offset_secs.unsigned_abs();
            s.push_str(&format!("{sign}{:02}:{:02}", abs / 3600, abs / 60 % 60));
        }
        s
    }
}

/// Go's `time.RFC3339Nano` in UTC, as Docker writes json-file's `time`:
/// `2026-11-22T07:48:58.969041395Z`, trailing zeros of the fraction trimmed.
pub fn rfc3339_nano(time_ns: u64) -> String {
    let mut out = Vec::with_capacity(30);
    Rfc3339Nano::default().write(time_ns, &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// Writes [`rfc3339_nano`] timestamps into a buffer, keeping the `YYYY-MM-DDTHH:MM:SS` of the
/// last second seen, so that a line costs no allocation (lines come in bursts within a
/// second).
#[derive(Debug, Default, Clone)]
pub struct Rfc3339Nano {
    secs: Option<u64>,
    date: [u8; 19],
}

impl Rfc3339Nano {
    pub fn write(&mut self, time_ns: u64, out: &mut Vec<u8>) {
        let secs = time_ns / 1_000_000_000;
        let frac = (time_ns % 1_000_000_000) as u32;
        if self.secs != Some(secs) {
            self.date = format_date(secs);
            self.secs = Some(secs);
        }
        out.extend_from_slice(&self.date);
        push_trimmed_frac(frac, out);
        out.push(b'Z');
    }
}

/// `.d…` with trailing zeros trimmed; nothing for zero.
fn push_trimmed_frac(frac: u32, out: &mut Vec<u8>) {
    if frac == 0 {
        return;
    }
    let mut digits = [0u8; 9];
    let mut f = frac;
    for d in digits.iter_mut().rev() {
        *d = b'0' + (f % 10) as u8;
        f /= 10;
    }
    let mut len = 9;
    while digits[len - 1] == b'0' {
        len -= 1;
    }
    out.push(b'.');
    out.extend_from_slice(&digits[..len]);
}

fn format_date(secs: u64) -> [u8; 19] {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    let mut b = *b"0000-00-00T00:00:00";
    put2(&mut b[0..2], (y / 100) as u32);
    put2(&mut b[2..4], (y % 100) as u32);
    put2(&mut b[5..7], m);
    put2(&mut b[8..10], d);
    put2(&mut b[11..13], (rem / 3600) as u32);
    put2(&mut b[14..16], (rem / 60 % 60) as u32);
    put2(&mut b[17..19], (rem % 60) as u32);
    b
}

fn put2(dst: &mut [u8], v: u32) {
    dst[0] = b'0' + (v / 10 % 10) as u8;
    dst[1] = b'0' + (v % 10) as u8;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-22T07:48:58.969041395Z, the first json-file capture's time (dockerd 20.10.24).
    const T0: u64 = 1_795_333_738_969_041_395;

    #[test]
    fn civil_dates_across_leap_years() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(civil_from_days(20_513), (2026, 3, 1));
        assert_eq!(civil_from_days(20_779), (2026, 11, 22));
    }

    #[test]
    fn civil_round_trip() {
        for days in [-800_000i64, -1, 0, 1, 10_957, 20_779, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
        }
    }

    #[test]
    fn rfc3339_nano_trims_trailing_zeros_like_go() {
        let s = T0 / 1_000_000_000 * 1_000_000_000;
        assert_eq!(rfc3339_nano(s), "2026-11-22T07:48:58Z");
        assert_eq!(rfc3339_nano(s + 900_000_000), "2026-11-22T07:48:58.9Z");
        assert_eq!(rfc3339_nano(s + 10), "2026-11-22T07:48:58.00000001Z");
        assert_eq!(rfc3339_nano(T0), "2026-11-22T07:48:58.969041395Z");
        assert_eq!(rfc3339_nano(0), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339_nano(951_782_400_000_000_000),
            "2000-02-29T00:00:00Z"
        );
    }

    #[test]
    fn the_cache_never_leaks_one_seconds_date_into_the_next() {
        let s = T0 / 1_000_000_000 * 1_000_000_000;
        let mut c = Rfc3339Nano::default();
        let mut out = Vec::new();
        c.write(s + 999_999_999, &mut out);
        c.write(s + 1_000_000_000, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "2026-11-22T07:48:58.999999999Z2026-11-22T07:48:59Z"
        );
    }

    #[test]
    fn syslog_layouts() {
        // The syslog captures' instants (dockerd 20.10.24, TZ=UTC).
        let t = DateTime::utc(1_795_333_767_058_287_912);
        assert_eq!(t.stamp(), "Nov 22 07:49:27");
        assert_eq!(t.rfc3339(Frac::Fixed(6)), "2026-11-22T07:49:27.058287Z");
        assert_eq!(t.rfc3339(Frac::None), "2026-11-22T07:49:27Z");
        assert_eq!(t.rfc3339(Frac::Trimmed), "2026-11-22T07:49:27.058287912Z");
        assert_eq!(
            DateTime::utc(1_795_333_767_000_000_000).rfc3339(Frac::Trimmed),
            "2026-11-22T07:49:27Z"
        );
    }

    #[test]
    fn local_offsets_and_the_padded_day() {
        // 2026-03-05T23:30:00Z seen from UTC+01:00 and UTC-05:30.
        let t = 1_772_753_400_000_000_000;
        assert_eq!(
            DateTime::from_unix_ns(t, 3600).rfc3339(Frac::None),
            "2026-03-06T00:30:00+01:00"
        );
        let west = DateTime::from_unix_ns(t, -(5 * 3600 + 1800));
        assert_eq!(west.rfc3339(Frac::None), "2026-03-05T18:00:00-05:30");
        assert_eq!(west.stamp(), "Mar  5 18:00:00");
    }
}
