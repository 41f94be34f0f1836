//! The time of day as RFC 3339 text, for the gettime and timeserver examples: the UTC form
//! (`2026-12-01T18:45:03.123Z`) and this machine's local form, with its offset
//! (`2026-12-01T19:45:03.123+01:00`).

use std::time::{SystemTime, UNIX_EPOCH};

/// Now, in UTC: `YYYY-MM-DDTHH:MM:SS.mmmZ`.
#[allow(dead_code)] // each example uses one of the two
pub(crate) fn utc_now() -> String {
    let (secs, millis) = since_epoch();
    format!("{}.{millis:03}Z", civil(secs))
}

/// Now, in this machine's time zone: `YYYY-MM-DDTHH:MM:SS.mmm+HH:MM`.
#[allow(dead_code)]
pub(crate) fn local_now() -> String {
    let (secs, millis) = since_epoch();
    let offset = local_offset(secs);
    let sign = if offset < 0 { '-' } else { '+' };
    let abs = offset.unsigned_abs();
    format!(
        "{}.{millis:03}{sign}{:02}:{:02}",
        civil(secs + offset),
        abs / 3600,
        abs % 3600 / 60
    )
}

fn since_epoch() -> (i64, u32) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    (now.as_secs() as i64, now.subsec_millis())
}

/// Seconds east of UTC at `secs`, as the C library's time zone data says (0 if it cannot).
fn local_offset(secs: i64) -> i64 {
    let t = secs as libc::time_t;
    // SAFETY: an all-zero `tm` is a valid value for localtime_r to overwrite.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are to live locals; localtime_r is the thread-safe form.
    if unsafe { libc::localtime_r(&t, &mut tm) }.is_null() {
        return 0;
    }
    tm.tm_gmtoff
}

/// `secs` since the epoch as `YYYY-MM-DDTHH:MM:SS` (Howard Hinnant's days-to-civil).
fn civil(secs: i64) -> String {
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}
