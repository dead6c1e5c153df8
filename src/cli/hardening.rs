//! What cairn does first, while it is still one thread, so that nothing it runs can read
//! the providers' API keys: the model's commands, MCP servers, `$EDITOR`, git.
//!
//! Two holes, two fixes. A child inherits the environment, so the keys leave the
//! environment (cairn keeps its own copy, [`Env::freeze_process`]). And any process of the
//! same user can read `/proc/<cairn>/environ` (the environment as it was at `exec`, keys
//! included), `/proc/<cairn>/mem`, or attach a debugger, so cairn makes itself
//! non-dumpable (Linux) or refuses debuggers (macOS), as codex-rs's `process-hardening`
//! does. Root can still read everything; no process can hide from it.

use crate::config::{self, Env, Flags};

/// Hardens the process and takes the key variables out of its environment. Must run
/// before any thread starts: changing the environment is only sound while nothing else
/// reads it.
pub fn harden() {
    if let Err(err) = deny_inspection() {
        eprintln!(
            "warning: cairn could not hide its memory from other processes of this user \
             ({err}); a command it runs could read the API keys from it"
        );
    }
    let env = Env::freeze_process();
    for name in key_vars(env) {
        // SAFETY: cairn is single-threaded here (the caller's contract), so nothing reads
        // the environment while it changes.
        unsafe { std::env::remove_var(name) };
    }
}

/// The key variables to remove: the ones the configuration names (a user's own provider
/// may read its key from any variable), or the built-in ones when the configuration does
/// not load, which the command itself then reports.
fn key_vars(env: &Env) -> Vec<String> {
    let project = std::env::current_dir().ok().and_then(|cwd| super::config::project_at(&cwd));
    let config = config::load(project.as_ref(), env, &Flags::default())
        .unwrap_or_else(|_| config::Config::built_in());
    config.key_vars()
}

/// Makes the process unreadable through `/proc` and `ptrace` to other processes of the
/// same user, and keeps it from dumping core (a core file would hold the keys).
fn deny_inspection() -> std::io::Result<()> {
    // The soft limit only: children inherit it, and keeping the hard limit lets the
    // user's own programs raise theirs again.
    let mut core = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit and setrlimit touch only the struct they are given.
    if unsafe { libc::getrlimit(libc::RLIMIT_CORE, &mut core) } != 0
        || unsafe { libc::setrlimit(libc::RLIMIT_CORE, &libc::rlimit { rlim_cur: 0, ..core }) } != 0
    {
        return Err(std::io::Error::last_os_error());
    }
    #[cfg(target_os = "linux")]
    {
        // SAFETY: PR_SET_DUMPABLE takes an integer argument and touches no memory.
        if unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    #[cfg(target_os = "macos")]
    {
        // SAFETY: PT_DENY_ATTACH takes no address or data.
        if unsafe { libc::ptrace(libc::PT_DENY_ATTACH, 0, std::ptr::null_mut(), 0) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}
