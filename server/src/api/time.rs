//! Timestamps as Go's `time.Time` JSON writes them (RFC 3339 with nanoseconds, trailing
//! zeros of the fraction trimmed), in UTC.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `2023-08-04T19:22:45.499127Z` (Go `time.RFC3339Nano`, UTC).
pub fn rfc3339_nano(t: SystemTime) -> String {
    let (secs, nanos) = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => (d.as_secs() as i64, d.subsec_nanos()),
        Err(e) => {
            // Before 1970: floor to whole seconds below, fraction counted upwards.
            let d = e.duration();
            let mut s = -(d.as_secs() as i64);
            let mut n = d.subsec_nanos();
            if n > 0 {
                s -= 1;
                n = 1_000_000_000 - n;
            }
            (s, n)
        }
    };
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let mut out = format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        sod / 3600,
        (sod / 60) % 60,
        sod % 60
    );
    if nanos > 0 {
        let frac = format!("{nanos:09}");
        out.push('.');
        out.push_str(frac.trim_end_matches('0'));
    }
    out.push('Z');
    out
}

/// Unix seconds of `t` (negative before 1970).
pub fn unix_seconds(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    }
}

/// `now + d`, saturating at a far-future instant instead of overflowing.
pub fn saturating_add(now: SystemTime, d: Duration) -> SystemTime {
    now.checked_add(d).unwrap_or_else(far_future)
}

/// The expiry shown for models kept forever: Go adds `MaxInt64` ns (~292 years) to now.
pub fn far_future() -> SystemTime {
    let now = SystemTime::now();
    now.checked_add(Duration::from_nanos(i64::MAX as u64))
        .unwrap_or(now)
}

/// Howard Hinnant's `civil_from_days`: days since 1970-01-01 → (year, month, day).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_go() {
        let t = UNIX_EPOCH + Duration::new(1_691_176_965, 499_127_000);
        assert_eq!(rfc3339_nano(t), "2023-08-04T19:22:45.499127Z");
        assert_eq!(rfc3339_nano(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let leap = UNIX_EPOCH + Duration::new(951_782_400, 1);
        assert_eq!(rfc3339_nano(leap), "2000-02-29T00:00:00.000000001Z");
        let before = UNIX_EPOCH - Duration::new(1, 500_000_000);
        assert_eq!(rfc3339_nano(before), "1969-12-31T23:59:58.5Z");
        assert_eq!(unix_seconds(t), 1_691_176_965);
    }

    #[test]
    fn far_future_is_centuries_ahead() {
        let s = rfc3339_nano(far_future());
        let year: i64 = s[..4].parse().unwrap();
        assert!(year > 2200, "{s}");
    }
}
