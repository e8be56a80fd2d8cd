//! The host's local time zone, which log drivers that print local time need (syslog).
#![allow(unsafe_code)]

/// The local UTC offset in seconds right now (0 when the zone is unknown).
pub fn utc_offset_secs() -> i32 {
    let now: libc::time_t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as libc::time_t);
    // SAFETY: tm is plain old data that localtime_r fills; both pointers outlive the call.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: as above; localtime_r is the thread-safe variant.
    let ok = unsafe { !libc::localtime_r(&now, &mut tm).is_null() };
    if ok { tm.tm_gmtoff as i32 } else { 0 }
}
