//! edXML timestamps: `yyyy/MM/dd HH:mm:ss` in Vietnam time (UTC+7), as DMSs write them,
//! to and from lienthong's [`UnixMillis`].

use lienthong_core::UnixMillis;

/// Vietnam's offset from UTC, which edXML timestamps without an offset are in.
pub const VIETNAM_OFFSET_SECONDS: i64 = 7 * 3600;

/// Days from 1970-01-01 to the given civil date (proleptic Gregorian).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

/// Parses `yyyy/MM/dd HH:mm:ss` (also with `-` between date parts, `T` before the time,
/// no seconds, fractional seconds, and a `Z` or `±hh:mm` offset; without an offset the
/// time is Vietnam time). A date alone is midnight. `None` for anything else.
pub fn parse_timestamp(text: &str) -> Option<UnixMillis> {
    let t = text.trim();
    let num = |s: &str| -> Option<i64> {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    let (date, rest) = match t.find([' ', 'T']) {
        Some(i) => (&t[..i], t[i + 1..].trim()),
        None => (t, ""),
    };
    let mut dp = date.split(['/', '-']);
    let (y, mo, d) = (num(dp.next()?)?, num(dp.next()?)?, num(dp.next()?)?);
    if dp.next().is_some() || !(1..=12).contains(&mo) || !(1..=31).contains(&d) {
        return None;
    }
    let (time, offset) = if let Some(s) = rest.strip_suffix('Z') {
        (s, 0)
    } else if let Some(i) = rest.rfind(['+', '-']) {
        let (sign, off) = (&rest[i..i + 1], &rest[i + 1..]);
        let (oh, om) = off.split_once(':').unwrap_or((off, "0"));
        let secs = num(oh)? * 3600 + num(om)? * 60;
        (&rest[..i], if sign == "-" { -secs } else { secs })
    } else {
        (rest, VIETNAM_OFFSET_SECONDS)
    };
    let (mut h, mut mi, mut s, mut ms) = (0, 0, 0, 0);
    if !time.is_empty() {
        let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
        let mut tp = hms.split(':');
        h = num(tp.next()?)?;
        mi = num(tp.next()?)?;
        s = tp.next().map(num).unwrap_or(Some(0))?;
        if tp.next().is_some() || h > 23 || mi > 59 || s > 60 {
            return None;
        }
        if !frac.is_empty() {
            let digits: String = frac.chars().take(3).collect();
            ms = num(&format!("{digits:0<3}"))?;
        }
    }
    let days = days_from_civil(y, mo, d);
    Some(((days * 86_400 + h * 3600 + mi * 60 + s - offset) * 1000) + ms)
}

/// Formats `at` as `yyyy/MM/dd HH:mm:ss` in Vietnam time.
pub fn format_timestamp(at: UnixMillis) -> String {
    let secs = at.div_euclid(1000) + VIETNAM_OFFSET_SECONDS;
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    format!(
        "{y:04}/{m:02}/{d:02} {:02}:{:02}:{:02}",
        sod / 3600,
        sod / 60 % 60,
        sod % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_vietnam_time_and_offsets() {
        // 2015/09/20 11:08:36 in Hà Nội is 04:08:36 UTC.
        let utc = parse_timestamp("2015-09-20T04:08:36Z").unwrap();
        assert_eq!(parse_timestamp("2015/09/20 11:08:36"), Some(utc));
        assert_eq!(parse_timestamp(" 2015-09-20T11:08:36+07:00 "), Some(utc));
        assert_eq!(parse_timestamp("2015/09/20 11:08:36.250"), Some(utc + 250));
        assert_eq!(parse_timestamp("2015/09/20 11:08"), Some(utc - 36_000));
        assert_eq!(format_timestamp(utc), "2015/09/20 11:08:36");
        assert!(parse_timestamp("2015/13/20 11:08:36").is_none());
        assert!(parse_timestamp("hôm qua").is_none());
        assert!(parse_timestamp("").is_none());
    }

    #[test]
    fn formats_and_parses_back_across_dates() {
        for at in [
            0,
            1_000,
            951_782_400_000,
            1_700_000_000_000,
            4_102_444_800_000,
        ] {
            assert_eq!(parse_timestamp(&format_timestamp(at)), Some(at));
        }
    }
}
