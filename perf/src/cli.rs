//! What every binary of this crate shares on its command line: exit codes, one-line
//! argument errors, the stop flag for SIGINT/SIGTERM, core pinning and TTY detection.
use std::io::IsTerminal;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use clap::Parser;

/// Exit code for a failure while running.
pub const EXIT_FAILURE: i32 = 1;
/// Exit code for bad arguments or a set-up problem found before running.
pub const EXIT_USAGE: i32 = 2;

/// Parses the command line; prints help/version and exits 0 when asked, and turns any
/// other clap error into one line on stderr and exit code 2.
pub fn parse_or_exit<T: Parser>(bin: &str) -> T {
    match T::try_parse() {
        Ok(v) => v,
        Err(e) => {
            use clap::error::ErrorKind;
            match e.kind() {
                ErrorKind::DisplayHelp
                | ErrorKind::DisplayVersion
                | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                    let _ = e.print();
                    std::process::exit(
                        if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                            EXIT_USAGE
                        } else {
                            0
                        },
                    );
                }
                _ => {
                    let text = e.to_string();
                    let line = text
                        .lines()
                        .find(|l| !l.trim().is_empty())
                        .unwrap_or("bad arguments");
                    let line = line.strip_prefix("error: ").unwrap_or(line);
                    eprintln!("{bin}: {line} (see {bin} --help)");
                    std::process::exit(EXIT_USAGE);
                }
            }
        }
    }
}

/// Prints `bin: msg` on stderr and returns [`EXIT_USAGE`].
pub fn usage_error(bin: &str, msg: impl std::fmt::Display) -> i32 {
    eprintln!("{bin}: {msg}");
    EXIT_USAGE
}

/// Prints `bin: msg` on stderr and returns [`EXIT_FAILURE`].
pub fn failure(bin: &str, msg: impl std::fmt::Display) -> i32 {
    eprintln!("{bin}: {msg}");
    EXIT_FAILURE
}

/// A flag that becomes true on SIGINT or SIGTERM.
pub fn stop_flag() -> std::io::Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop))?;
    }
    Ok(stop)
}

/// Pins the calling thread to CPU `core`. Fails when the core does not exist or the
/// affinity mask forbids it.
pub fn pin_to_core(core: usize) -> Result<(), String> {
    let ids = core_affinity::get_core_ids().unwrap_or_default();
    let Some(id) = ids.into_iter().find(|c| c.id == core) else {
        return Err(format!(
            "cannot pin to core {core}: no such core in this process's affinity mask"
        ));
    };
    if core_affinity::set_for_current(id) {
        Ok(())
    } else {
        Err(format!(
            "cannot pin to core {core}: sched_setaffinity failed"
        ))
    }
}

/// CPU time (user + system) this process has used, in seconds, from /proc/self/stat
/// (in clock ticks of 1/100 s, Linux's USER_HZ); `None` where that file is unreadable.
pub fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces) start at the state, field 3;
    // utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / 100.0)
}

/// Whether a live progress line should be drawn (stdout is a terminal).
pub fn stdout_is_tty() -> bool {
    std::io::stdout().is_terminal()
}

/// A rate with an SI prefix, e.g. `12.3 M`.
pub fn si(v: f64) -> String {
    if v >= 1e9 {
        format!("{:.2} G", v / 1e9)
    } else if v >= 1e6 {
        format!("{:.2} M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.1} k", v / 1e3)
    } else {
        format!("{v:.0} ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_is_readable() {
        let t = process_cpu_seconds().expect("/proc/self/stat");
        assert!((0.0..1e6).contains(&t));
    }

    #[test]
    fn si_prefixes() {
        assert_eq!(si(12.0), "12 ");
        assert_eq!(si(12_345.0), "12.3 k");
        assert_eq!(si(12_345_678.0), "12.35 M");
        assert_eq!(si(2.5e9), "2.50 G");
    }
}
