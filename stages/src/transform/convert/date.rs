//! Dates in every form Orca and its peers send, to RFC 3339 UTC.

use crate::json::Json;
use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta, Timelike};

use super::super::out::Out;
use super::super::path::is_missing;
use super::super::stats::TransformStats;

/// Epoch values at or above this many units are milliseconds: as seconds
/// they would lie past the year 5000. Past 1e14 and 1e17 (the same bound,
/// one unit finer each) they are micro- and nanoseconds.
const MILLIS_FROM: f64 = 100_000_000_000.0;
const MICROS_FROM: f64 = 100_000_000_000_000.0;
const NANOS_FROM: f64 = 100_000_000_000_000_000.0;

/// (units per second, fraction digits) of an epoch value of this size.
fn epoch_unit(n: f64) -> (i128, usize) {
    let n = n.abs();
    if n >= NANOS_FROM {
        (1_000_000_000, 9)
    } else if n >= MICROS_FROM {
        (1_000_000, 6)
    } else if n >= MILLIS_FROM {
        (1_000, 3)
    } else {
        (1, 0)
    }
}

pub fn date<'a, J: Json<'a>>(v: Option<J>, stats: &mut TransformStats) -> Out<'static> {
    let Some(v) = v.filter(|v| !is_missing(*v)) else {
        return Out::Null;
    };
    let parsed = if let Some(s) = v.as_str() {
        parse_date(s)
    } else if v.as_bool().is_some() {
        None
    } else if let Some(i) = v.as_i64() {
        epoch_int(i128::from(i))
    } else if let Some(u) = v.as_u64() {
        epoch_int(i128::from(u))
    } else {
        v.as_f64().and_then(epoch_float)
    };
    match parsed {
        Some(s) => Out::Str(s.into()),
        None => {
            stats.unparseable_dates += 1;
            Out::Null
        }
    }
}

/// RFC 3339 UTC text of a date string, or `None` when it is not a date.
pub fn parse_date(s: &str) -> Option<String> {
    let s = s.trim();
    let digits = s.strip_prefix('-').unwrap_or(s);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        return epoch_int(s.parse::<i128>().ok()?);
    }
    if let Some((int, frac)) = digits.split_once('.') {
        let all_digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
        if !int.is_empty() && !frac.is_empty() && all_digits(int) && all_digits(frac) {
            return epoch_decimal(s.starts_with('-'), int, frac);
        }
    }
    iso(s).or_else(|| {
        // Mail-style dates (`Fri, 29 Mar 2024 12:00:00 GMT`) from HTTP-minded sources.
        let dt = DateTime::parse_from_rfc2822(s).ok()?;
        render(dt.naive_utc(), "")
    })
}

fn epoch_int(n: i128) -> Option<String> {
    let (per_sec, digits) = epoch_unit(n as f64);
    let (secs, part) = (n.div_euclid(per_sec), n.rem_euclid(per_sec));
    let dt = DateTime::from_timestamp(i64::try_from(secs).ok()?, 0)?.naive_utc();
    let frac = if part == 0 {
        String::new()
    } else {
        format!("{part:0digits$}")
    };
    render(dt, &frac)
}

/// An epoch number that arrived as a JSON float. Its shortest decimal
/// text (what `Display` writes, never an exponent) is the number the
/// sender wrote, so `1711713600.123` keeps its `.123`: computing with the
/// binary value instead would give `.122999907`.
fn epoch_float(f: f64) -> Option<String> {
    if !f.is_finite() {
        return None;
    }
    let text = f.abs().to_string();
    let (int, frac) = text.split_once('.').unwrap_or((&text, ""));
    epoch_decimal(f.is_sign_negative(), int, frac)
}

/// An epoch value written in decimal (`int`.`frac`, digits only), in the
/// unit its size tells, to the nanosecond (rounded half up), computed on
/// the digits so no fraction is lost to binary floating point.
fn epoch_decimal(negative: bool, int: &str, frac: &str) -> Option<String> {
    // Past 30 digits even nanoseconds lie beyond the year 9999.
    let int = int.trim_start_matches('0');
    if int.len() > 30 {
        return None;
    }
    let whole: i128 = if int.is_empty() { 0 } else { int.parse().ok()? };
    let (per_sec, _) = epoch_unit(whole as f64);
    // Nanoseconds per unit: 10^(9 - digits of the unit).
    let unit_digits = 9 - per_sec.ilog10() as usize;
    let ns_per_unit = 10i128.pow(unit_digits as u32);
    let mut part: i128 = 0;
    for i in 0..unit_digits {
        let d = frac.as_bytes().get(i).map_or(0, |b| i128::from(b - b'0'));
        part = part * 10 + d;
    }
    if frac.as_bytes().get(unit_digits).is_some_and(|b| *b >= b'5') {
        part += 1;
    }
    let mut ns = whole.checked_mul(ns_per_unit)?.checked_add(part)?;
    if negative {
        ns = -ns;
    }
    let (secs, nanos) = (ns.div_euclid(1_000_000_000), ns.rem_euclid(1_000_000_000));
    let dt = DateTime::from_timestamp(i64::try_from(secs).ok()?, 0)?.naive_utc();
    let frac = if nanos == 0 {
        String::new()
    } else {
        format!("{nanos:09}").trim_end_matches('0').to_owned()
    };
    render(dt, &frac)
}

/// `YYYY-MM-DD[(T|t| )HH:MM[:SS[(.|,)F{1,9}]]][Z|z|±HH[:MM]|±HHMM| UTC]`.
fn iso(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut p = Cursor { b, i: 0 };
    let year = p.num(4)?;
    p.lit(b'-')?;
    let month = p.num(2)?;
    p.lit(b'-')?;
    let day = p.num(2)?;
    let date = NaiveDate::from_ymd_opt(i32::try_from(year).ok()?, month, day)?;
    if p.done() {
        return render(date.and_time(NaiveTime::MIN), "");
    }
    match p.next()? {
        b'T' | b't' | b' ' => {}
        _ => return None,
    }
    let hour = p.num(2)?;
    p.lit(b':')?;
    let minute = p.num(2)?;
    let mut second = 0;
    let mut frac = "";
    if p.peek() == Some(b':') {
        p.i += 1;
        second = p.num(2)?;
        if matches!(p.peek(), Some(b'.' | b',')) {
            p.i += 1;
            let start = p.i;
            while p.peek().is_some_and(|c| c.is_ascii_digit()) {
                p.i += 1;
            }
            if !(1..=9).contains(&(p.i - start)) {
                return None;
            }
            frac = &s[start..p.i];
        }
    }
    let time = NaiveTime::from_hms_opt(hour, minute, second)?;
    let local = date.and_time(time);
    let offset_secs = offset(s[p.i..].trim_start())?;
    let utc = local.checked_sub_signed(TimeDelta::seconds(offset_secs))?;
    render(utc, frac)
}

/// Seconds east of UTC of a zone suffix; an absent zone is UTC.
fn offset(z: &str) -> Option<i64> {
    if z.is_empty()
        || z == "Z"
        || z == "z"
        || z.eq_ignore_ascii_case("UTC")
        || z.eq_ignore_ascii_case("GMT")
    {
        return Some(0);
    }
    let (sign, rest) = match z.as_bytes().first()? {
        b'+' => (1, &z[1..]),
        b'-' => (-1, &z[1..]),
        _ => return None,
    };
    let rest = rest.as_bytes();
    let two = |d: &[u8]| -> Option<i64> {
        (d.len() == 2 && d.iter().all(u8::is_ascii_digit))
            .then(|| i64::from((d[0] - b'0') * 10 + (d[1] - b'0')))
    };
    let (h, m) = match rest.len() {
        2 => (two(rest)?, 0),
        4 => (two(&rest[..2])?, two(&rest[2..])?),
        5 if rest[2] == b':' => (two(&rest[..2])?, two(&rest[3..])?),
        _ => return None,
    };
    if h > 23 || m > 59 {
        return None;
    }
    Some(sign * (h * 3600 + m * 60))
}

fn render(dt: NaiveDateTime, frac: &str) -> Option<String> {
    // RFC 3339 has four-digit years only.
    if !(0..=9999).contains(&dt.year()) {
        return None;
    }
    let dot = if frac.is_empty() { "" } else { "." };
    Some(format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{dot}{frac}Z",
        dt.year(),
        dt.month(),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second()
    ))
}

struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn num(&mut self, width: usize) -> Option<u32> {
        let d = self.b.get(self.i..self.i + width)?;
        if !d.iter().all(u8::is_ascii_digit) {
            return None;
        }
        self.i += width;
        Some(d.iter().fold(0, |n, c| n * 10 + u32::from(c - b'0')))
    }

    fn lit(&mut self, c: u8) -> Option<()> {
        (self.next()? == c).then_some(())
    }

    fn next(&mut self) -> Option<u8> {
        let c = *self.b.get(self.i)?;
        self.i += 1;
        Some(c)
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn done(&self) -> bool {
        self.i >= self.b.len()
    }
}

#[cfg(test)]
mod tests {
    use super::parse_date;

    #[test]
    fn forms() {
        let want = Some("2024-03-29T12:00:00Z".to_owned());
        for s in [
            "2024-03-29T12:00:00+00:00",
            "2024-03-29T12:00:00Z",
            "2024-03-29T12:00:00z",
            "2024-03-29 12:00:00",
            "2024-03-29T12:00:00",
            "2024-03-29T14:00:00+02:00",
            "2024-03-29T07:30:00-0430",
            "2024-03-29T13:00:00+01",
            "2024-03-29T12:00",
            "1711713600",
            "1711713600000",
            " 2024-03-29T12:00:00Z ",
        ] {
            assert_eq!(parse_date(s), want, "{s}");
        }
        assert_eq!(
            parse_date("2024-03-29T12:00:00.123456789Z").as_deref(),
            Some("2024-03-29T12:00:00.123456789Z")
        );
        assert_eq!(
            parse_date("2024-03-29T14:00:00.5+02:00").as_deref(),
            Some("2024-03-29T12:00:00.5Z")
        );
        assert_eq!(
            parse_date("2024-03-29T12:00:00.120Z").as_deref(),
            Some("2024-03-29T12:00:00.120Z")
        );
        assert_eq!(
            parse_date("1711713600123").as_deref(),
            Some("2024-03-29T12:00:00.123Z")
        );
        assert_eq!(
            parse_date("1711713600.5").as_deref(),
            Some("2024-03-29T12:00:00.5Z")
        );
        assert_eq!(
            parse_date("2025-11-20").as_deref(),
            Some("2025-11-20T00:00:00Z")
        );
        // Epoch values with a fraction keep exactly the digits written,
        // whatever the unit (binary floating point would turn .123 into
        // .122999907).
        for (s, want) in [
            ("1711713600.123", "2024-03-29T12:00:00.123Z"),
            ("1711713600123.0", "2024-03-29T12:00:00.123Z"),
            ("1711713600000.5", "2024-03-29T12:00:00.0005Z"),
            ("1711713600.1234567894", "2024-03-29T12:00:00.123456789Z"),
            ("1711713600.9999999996", "2024-03-29T12:00:01Z"),
            ("-0.5", "1969-12-31T23:59:59.5Z"),
        ] {
            assert_eq!(parse_date(s).as_deref(), Some(want), "{s}");
        }
        assert_eq!(
            parse_date("1711713600123456").as_deref(),
            Some("2024-03-29T12:00:00.123456Z")
        );
        assert_eq!(
            parse_date("1711713600000000000").as_deref(),
            Some("2024-03-29T12:00:00Z")
        );
        assert_eq!(
            parse_date("Fri, 29 Mar 2024 12:00:00 GMT").as_deref(),
            Some("2024-03-29T12:00:00Z")
        );
        assert_eq!(
            parse_date("Fri, 29 Mar 2024 14:00:00 +0200").as_deref(),
            Some("2024-03-29T12:00:00Z")
        );
        assert_eq!(
            parse_date("2024-03-29T00:30:00+01:00").as_deref(),
            Some("2024-03-28T23:30:00Z")
        );
        for bad in [
            "not a date",
            "",
            "2024-13-01",
            "2024-02-30T00:00:00Z",
            "2024-03-29T25:00:00Z",
            "2024-03-29T12:00:00.Z",
            "2024-03-29T12:00:00.1234567890Z",
            "2024-03-29T12:00:00+2:00",
            "2024-03-29X12:00:00",
            "99999999999999999999999999",
            "1.2.3",
            "-",
        ] {
            assert_eq!(parse_date(bad), None, "{bad}");
        }
    }
}
