//! Processes we did not fork (the container's init after `create` returned): liveness by
//! `/proc/PID/stat`, with the start time guarding against pid reuse.

use std::time::{Duration, Instant};

/// `(state, starttime)` from `/proc/PID/stat`.
fn stat(pid: i32) -> Option<(char, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: split after its last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    // Fields 4..=21 follow the state (field 3); starttime is field 22.
    let start = fields.nth(18)?.parse().ok()?;
    Some((state, start))
}

/// Start time of `pid` (clock ticks since boot).
pub fn start_time(pid: i32) -> Option<u64> {
    stat(pid).map(|(_, start)| start)
}

/// Whether `pid` is the process that started at `start_time` and has not exited.
pub fn alive(pid: i32, start_time: u64) -> bool {
    matches!(stat(pid), Some((state, start)) if start == start_time && state != 'Z' && state != 'X')
}

/// Waits until [`alive`] is false, up to `limit`. Returns whether it is gone.
pub fn wait_gone(pid: i32, start_time: u64, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while alive(pid, start_time) {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    true
}

/// `[arg_start, arg_end)` of this process (`/proc/self/stat` fields 48 and 49): where the
/// kernel reads `/proc/PID/cmdline` from.
fn own_arg_area() -> Option<(usize, usize)> {
    let text = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    // Field 3 (state) is the first after the ')'; arg_start is field 48.
    let mut fields = rest.split_whitespace().skip(45);
    let start = fields.next()?.parse().ok()?;
    let end = fields.next()?.parse().ok()?;
    (start < end).then_some((start, end))
}

/// Rewrites this process's command line as `ps` (and `docker top`) show it: `words`,
/// NUL-separated, cut to the original's length (the rest is NULs). Returns whether it
/// could. Only for a process that no longer reads its own arguments (std's `args()`
/// reads this memory).
pub fn set_title(words: &[&str]) -> bool {
    let Some((start, end)) = own_arg_area() else { return false };
    let mut title = Vec::with_capacity(end - start);
    for word in words {
        title.extend_from_slice(word.as_bytes());
        title.push(0);
    }
    title.resize(end - start, 0);
    // SAFETY: [start, end) is this process's argument area as the kernel reports it: the
    // strings exec laid out at the top of the main stack, mapped read-write for the life
    // of the process. The only other readers are the kernel (for /proc) and std's args(),
    // which the callers no longer use; nothing holds a Rust reference into it.
    unsafe { std::ptr::copy_nonoverlapping(title.as_ptr(), start as *mut u8, title.len()) };
    true
}

/// The current time as RFC 3339 UTC with nanoseconds (`2024-05-01T12:00:00.123456789Z`).
pub fn now_rfc3339() -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    rfc3339(now)
}

/// Formats a time since the epoch (civil-from-days, H. Hinnant's algorithm).
pub fn rfc3339(since_epoch: Duration) -> String {
    let secs = since_epoch.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since_epoch.subsec_nanos()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_rfc3339() {
        assert_eq!(rfc3339(Duration::ZERO), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(rfc3339(Duration::new(951_825_600, 5)), "2000-02-29T12:00:00.000000005Z");
        assert_eq!(rfc3339(Duration::new(1_735_689_599, 0)), "2024-12-31T23:59:59.000000000Z");
    }

    #[test]
    fn finds_its_own_argument_area() {
        let (start, end) = own_arg_area().unwrap();
        let cmdline = std::fs::read("/proc/self/cmdline").unwrap();
        assert_eq!(end - start, cmdline.len());
    }

    #[test]
    fn sees_itself_alive_and_reuse_as_dead() {
        let me = std::process::id() as i32;
        let start = start_time(me).unwrap();
        assert!(alive(me, start));
        assert!(!alive(me, start + 1));
        assert!(!alive(i32::MAX, 0));
    }
}
