//! What a panic looks like to a user, and what a closed pipe does.
//!
//! `println!` panics when stdout is a pipe whose reader has gone (`cairn sessions | head
//! -1`). That is no bug, only the reader being done, so the command ends quietly with
//! status 141, what a shell reports for a process SIGPIPE ended (git's behaviour). cairn
//! keeps SIGPIPE ignored as Rust sets it up: restoring the default would kill it whenever
//! an MCP server or a `shell` command closed its stdin early. Any other panic is a bug in
//! cairn: one line says so and where to report it, and `RUST_BACKTRACE` brings back Rust's
//! own report with the backtrace. An internal failure reported as an error (not a panic)
//! ends with the same request, [`report_request`].

use std::any::Any;
use std::io::Write as _;
use std::panic::AssertUnwindSafe;
use std::process::ExitCode;

/// The status of a command whose output pipe was closed: 128 + SIGPIPE, as a shell
/// reports a process the signal ended.
pub const CLOSED_PIPE_EXIT: u8 = 128 + libc::SIGPIPE as u8;

/// Rust's own status for a panic.
const PANIC_EXIT: u8 = 101;

/// Replaces Rust's panic report: quiet for a closed pipe, one line for a bug.
pub fn install() {
    let rust_report = std::panic::take_hook();
    let backtrace =
        std::env::var_os("RUST_BACKTRACE").is_some_and(|value| !value.is_empty() && value != "0");
    std::panic::set_hook(Box::new(move |info| {
        let message = payload_message(info.payload());
        if is_closed_pipe(message) {
            return;
        }
        if backtrace {
            rust_report(info);
            return;
        }
        let location = info.location().map(|at| format!("{}:{}", at.file(), at.line()));
        // Not `eprintln!`: a second panic inside the hook would abort the process.
        let _ = writeln!(std::io::stderr(), "{}", bug_report(message, location.as_deref()));
    }));
}

/// Runs `command`, turning a panic into an exit status once the hook has reported it
/// (and the stack has unwound, so locks and temporary files were released).
pub fn catch(command: impl FnOnce() -> ExitCode) -> ExitCode {
    match std::panic::catch_unwind(AssertUnwindSafe(command)) {
        Ok(code) => code,
        Err(payload) if is_closed_pipe(payload_message(payload.as_ref())) => {
            ExitCode::from(CLOSED_PIPE_EXIT)
        }
        Err(_) => ExitCode::from(PANIC_EXIT),
    }
}

/// The text a panic was raised with (`panic!` makes a `&str` or a `String`).
fn payload_message(payload: &(dyn Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("")
}

/// Whether a panic is std's report of a write to a closed stdout or stderr, such as
/// `failed printing to stdout: Broken pipe (os error 32)`. The errno is matched rather
/// than its description, which depends on the C library.
fn is_closed_pipe(message: &str) -> bool {
    message.starts_with("failed printing to std")
        && message.contains(&format!("(os error {})", libc::EPIPE))
}

/// The one line a user sees for a bug: what broke and where, and where to report it.
fn bug_report(message: &str, location: Option<&str>) -> String {
    let message: String = message
        .split(|c: char| c.is_control() || c.is_whitespace())
        .filter(|word| !word.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let at = location.map(|location| format!(" at {location}")).unwrap_or_default();
    format!(
        "cairn: internal error{at}: {message}. This is a bug in cairn {}; please report it \
         {} with the command you ran (RUST_BACKTRACE=1 adds a backtrace).",
        env!("CARGO_PKG_VERSION"),
        tracker()
    )
}

/// The line after an internal failure's causes: what it likely is, and where to report
/// it with the version, as `cairn --version` prints it.
pub(super) fn report_request() -> String {
    format!(
        "This is a bug in cairn unless a cause above lies outside it (a full disk, a \
         permission); please report it {} with the command you ran and this output \
         (`cairn --version`: cairn {}).",
        tracker(),
        env!("CARGO_PKG_VERSION")
    )
}

/// Where bugs are reported.
fn tracker() -> String {
    match env!("CARGO_PKG_REPOSITORY") {
        "" => "to the cairn maintainers".to_string(),
        repository => format!("at {repository}/issues"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bug_is_one_line_naming_the_panic_and_where_to_report_it() {
        let report = bug_report("index out of bounds:\n  the len is 3\x1b[2J", Some("src/x.rs:7"));
        assert_eq!(report.lines().count(), 1, "{report}");
        assert!(!report.contains('\x1b'), "{report:?}");
        assert!(
            report.starts_with(
                "cairn: internal error at src/x.rs:7: index out of bounds: the len is 3 [2J. \
                 This is a bug in cairn"
            ),
            "{report}"
        );
        assert!(report.contains("please report it "), "{report}");
        assert!(report.contains(env!("CARGO_PKG_VERSION")), "{report}");
        assert!(bug_report("boom", None).starts_with("cairn: internal error: boom."));
    }

    #[test]
    fn only_std_print_failures_on_a_closed_pipe_are_quiet() {
        assert!(is_closed_pipe("failed printing to stdout: Broken pipe (os error 32)"));
        assert!(is_closed_pipe(
            "failed printing to stderr: Datenübergabe unterbrochen (os error 32)"
        ));
        assert!(!is_closed_pipe(
            "failed printing to stdout: No space left on device (os error 28)"
        ));
        assert!(!is_closed_pipe(
            "called `Result::unwrap()` on an `Err` value: Broken pipe (os error 32)"
        ));
    }

    #[test]
    fn the_payload_text_is_read_from_both_kinds_of_panic() {
        let fixed: Box<dyn Any + Send> = Box::new("fixed");
        let formatted: Box<dyn Any + Send> = Box::new(format!("formatted {}", 1));
        let other: Box<dyn Any + Send> = Box::new(7_u32);
        assert_eq!(payload_message(fixed.as_ref()), "fixed");
        assert_eq!(payload_message(formatted.as_ref()), "formatted 1");
        assert_eq!(payload_message(other.as_ref()), "");
    }
}
