//! The process's own facts in Prometheus' conventional names (`process_cpu_seconds_total`,
//! `process_resident_memory_bytes`, `process_virtual_memory_bytes`, `process_open_fds`,
//! `process_max_fds`, `process_start_time_seconds`), read from `/proc` on each scrape. Where
//! `/proc` is missing (not Linux) only the start time is given, as first seen by this module.

use std::fmt::Write as _;
use std::sync::OnceLock;

/// Linux's `USER_HZ`: the unit of `/proc/<pid>/stat` times, 100 on every architecture Linux
/// exports to user space.
const TICKS_PER_SEC: f64 = 100.0;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Facts {
    pub cpu_seconds: Option<f64>,
    pub resident_bytes: Option<u64>,
    pub virtual_bytes: Option<u64>,
    pub open_fds: Option<u64>,
    pub max_fds: Option<u64>,
    /// Seconds since the epoch.
    pub start_time: f64,
}

/// When the process started (seconds since the epoch).
pub fn start_time() -> f64 {
    static START: OnceLock<f64> = OnceLock::new();
    *START.get_or_init(|| from_proc_start().unwrap_or_else(|| crate::now_ms() as f64 / 1000.0))
}

fn from_proc_start() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let ticks: f64 = after_comm(&stat)?.get(19)?.parse().ok()?;
    let boot: f64 = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    Some(boot + ticks / TICKS_PER_SEC)
}

/// The fields of `/proc/self/stat` after the command name (which may hold spaces and
/// parentheses): index 0 is field 3, `state`.
fn after_comm(stat: &str) -> Option<Vec<&str>> {
    let rest = &stat[stat.rfind(')')? + 1..];
    Some(rest.split_whitespace().collect())
}

pub fn facts() -> Facts {
    let mut f = Facts {
        start_time: start_time(),
        ..Facts::default()
    };
    if let Some(fields) = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .as_deref()
        .and_then(after_comm)
    {
        let num = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok());
        // utime and stime are fields 14 and 15.
        if let (Some(u), Some(s)) = (num(11), num(12)) {
            f.cpu_seconds = Some((u + s) / TICKS_PER_SEC);
        }
    }
    if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
        let kb = |key: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse::<u64>().ok())
                .map(|v| v * 1024)
        };
        f.resident_bytes = kb("VmRSS:");
        f.virtual_bytes = kb("VmSize:");
    }
    f.open_fds = std::fs::read_dir("/proc/self/fd")
        .ok()
        .map(|d| d.count() as u64);
    f.max_fds = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|l| {
            l.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3))
                .and_then(|v| v.parse().ok())
        });
    f
}

/// The facts as Prometheus text.
pub fn render(out: &mut String) {
    let f = facts();
    let mut one = |name: &str, kind: &str, help: &str, v: Option<f64>| {
        if let Some(v) = v {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}"
            );
        }
    };
    one(
        "process_cpu_seconds_total",
        "counter",
        "User and system CPU time spent, in seconds.",
        f.cpu_seconds,
    );
    one(
        "process_resident_memory_bytes",
        "gauge",
        "Resident memory size in bytes.",
        f.resident_bytes.map(|v| v as f64),
    );
    one(
        "process_virtual_memory_bytes",
        "gauge",
        "Virtual memory size in bytes.",
        f.virtual_bytes.map(|v| v as f64),
    );
    one(
        "process_open_fds",
        "gauge",
        "Open file descriptors.",
        f.open_fds.map(|v| v as f64),
    );
    one(
        "process_max_fds",
        "gauge",
        "The limit on open file descriptors.",
        f.max_fds.map(|v| v as f64),
    );
    one(
        "process_start_time_seconds",
        "gauge",
        "When the process started, in seconds since the epoch.",
        Some(f.start_time),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_process_reads_itself() {
        let f = facts();
        let now = crate::now_ms() as f64 / 1000.0;
        assert!(f.start_time > 1.6e9 && f.start_time <= now + 1.0, "{f:?}");
        if cfg!(target_os = "linux") {
            assert!(f.resident_bytes.is_some_and(|b| b > 1024 * 1024), "{f:?}");
            assert!(f.open_fds.is_some_and(|n| n >= 3), "{f:?}");
            assert!(
                f.max_fds.is_some_and(|n| n >= f.open_fds.unwrap_or(0)),
                "{f:?}"
            );
            assert!(f.cpu_seconds.is_some(), "{f:?}");
        }
        let mut text = String::new();
        render(&mut text);
        assert!(text.contains("# TYPE process_cpu_seconds_total counter"));
        assert!(text.contains("process_start_time_seconds "));
    }

    #[test]
    fn a_command_name_with_spaces_and_parentheses_does_not_shift_the_fields() {
        let stat =
            "42 (a (b) c) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0 12345 1000 10";
        let f = after_comm(stat).unwrap_or_default();
        assert_eq!(f[0], "S");
        assert_eq!(f[11], "250");
        assert_eq!(f[12], "50");
        assert_eq!(f[19], "12345");
    }
}
