//! The signed `timestamp`: Java `SimpleDateFormat("ddMMyyyy'T'HHmmss+SSSS")` in the
//! client's local time zone, e.g. `05122026T075731+0423` for 5 Dec 2026 07:57:31.423.
//! `+SSSS` is the milliseconds padded to four digits, not a zone offset, so the string
//! carries no zone: a reader must assume one (Vietnam's +07:00 by default).
//!
//! The SDK takes it once, when a service object is built, and never refreshes it, so a
//! server can enforce freshness only loosely ([`check_freshness`] with a generous window,
//! off by default in the gateway).

use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

use crate::error::{Result, VxpError};

/// Vietnam's offset, the default zone of VXP timestamps.
pub const VIETNAM: UtcOffset = match UtcOffset::from_hms(7, 0, 0) {
    Ok(o) => o,
    Err(_) => panic!("+07:00 is a valid offset"),
};

/// Formats a local date-time as the SDK does.
pub fn format_timestamp(t: PrimitiveDateTime) -> String {
    format!(
        "{:02}{:02}{:04}T{:02}{:02}{:02}+{:04}",
        t.day(),
        u8::from(t.month()),
        t.year(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// The timestamp for now, in the zone `offset`.
pub fn timestamp_now(offset: UtcOffset) -> String {
    let now = OffsetDateTime::now_utc().to_offset(offset);
    format_timestamp(PrimitiveDateTime::new(now.date(), now.time()))
}

/// Reads a timestamp written by [`format_timestamp`] (or the SDK).
pub fn parse_timestamp(text: &str) -> Result<PrimitiveDateTime> {
    let bad = || VxpError::InvalidInput {
        key: "timestamp",
        value: text.to_string(),
        expected: "ddMMyyyy'T'HHmmss+SSSS with a real date and time, e.g. 05122026T075731+0423",
    };
    let b = text.as_bytes();
    if b.len() != 20 || b[8] != b'T' || b[15] != b'+' {
        return Err(bad());
    }
    let num = |range: std::ops::Range<usize>| -> Result<u32> {
        let part = &text[range];
        if !part.bytes().all(|c| c.is_ascii_digit()) {
            return Err(bad());
        }
        part.parse().map_err(|_| bad())
    };
    let (day, month, year) = (num(0..2)?, num(2..4)?, num(4..8)?);
    let (hour, minute, second, milli) = (num(9..11)?, num(11..13)?, num(13..15)?, num(16..20)?);
    let month = Month::try_from(month as u8).map_err(|_| bad())?;
    let date = Date::from_calendar_date(year as i32, month, day as u8).map_err(|_| bad())?;
    let time = Time::from_hms_milli(hour as u8, minute as u8, second as u8, milli as u16)
        .map_err(|_| bad())?;
    Ok(PrimitiveDateTime::new(date, time))
}

/// Refuses a timestamp (read in zone `offset`) further than `window` from `now`, in
/// either direction.
pub fn check_freshness(
    text: &str,
    offset: UtcOffset,
    window: std::time::Duration,
    now: OffsetDateTime,
) -> Result<()> {
    let stale = |reason: String| VxpError::StaleTimestamp {
        timestamp: text.to_string(),
        reason,
    };
    let t = parse_timestamp(text)
        .map_err(|_| stale("is not in the form ddMMyyyy'T'HHmmss+SSSS".into()))?
        .assume_offset(offset);
    let skew = (now - t).abs();
    if skew > window {
        return Err(stale(format!(
            "is {} s away from the gateway's clock, more than the {} s allowed",
            skew.whole_seconds(),
            window.as_secs()
        )));
    }
    Ok(())
}
