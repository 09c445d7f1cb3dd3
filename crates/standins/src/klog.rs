//! klog-style log lines on stderr: `I1123 15:39:33.123456   12345 kubelet.go:1] msg`.

use std::sync::atomic::{AtomicU8, Ordering};

static VERBOSITY: AtomicU8 = AtomicU8::new(0);

/// Sets the `--v` level.
pub fn set_verbosity(v: u8) {
    VERBOSITY.store(v, Ordering::Relaxed);
}

/// Whether messages at level `v` are shown.
pub fn enabled(v: u8) -> bool {
    VERBOSITY.load(Ordering::Relaxed) >= v
}

/// Formats one line; `severity` is I, W, E or F.
pub fn format_line(severity: char, file: &str, line: u32, msg: &str) -> String {
    let now = time::OffsetDateTime::now_utc();
    let base = file.rsplit('/').next().unwrap_or(file);
    format!(
        "{severity}{:02}{:02} {:02}:{:02}:{:02}.{:06} {:>7} {base}:{line}] {msg}",
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second(),
        now.microsecond(),
        std::process::id(),
    )
}

/// Writes one line to stderr.
pub fn write(severity: char, file: &str, line: u32, msg: &str) {
    eprintln!("{}", format_line(severity, file, line, msg));
}

/// Info line at verbosity 0.
#[macro_export]
macro_rules! info {
    ($($arg:tt)*) => { $crate::klog::write('I', file!(), line!(), &format!($($arg)*)) };
}

/// Info line shown only at `--v` >= level.
#[macro_export]
macro_rules! vlog {
    ($lvl:expr, $($arg:tt)*) => {
        if $crate::klog::enabled($lvl) { $crate::klog::write('I', file!(), line!(), &format!($($arg)*)) }
    };
}

/// Warning line.
#[macro_export]
macro_rules! warn {
    ($($arg:tt)*) => { $crate::klog::write('W', file!(), line!(), &format!($($arg)*)) };
}

/// Error line.
#[macro_export]
macro_rules! error {
    ($($arg:tt)*) => { $crate::klog::write('E', file!(), line!(), &format!($($arg)*)) };
}

#[cfg(test)]
mod tests {
    #[test]
    fn klog_shape() {
        let l = super::format_line('I', "src/kubelet.rs", 12, "hello");
        assert!(l.starts_with('I'));
        assert!(l.ends_with(" kubelet.rs:12] hello"), "{l}");
        assert_eq!(l.as_bytes()[5], b' ');
    }
}
