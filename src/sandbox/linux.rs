//! The Linux launcher: namespaces for isolation, Landlock for the write boundary.
//!
//! 1. `unshare` a user namespace (the caller's uid and gid mapped to themselves, so files
//!    are created as the user), a mount namespace, a PID namespace and, without network,
//!    a network namespace (only a loopback interface, down: every connection fails).
//! 2. Fork: the child is PID 1 of the new PID namespace. It dies with the launcher
//!    (`PR_SET_PDEATHSIG`), and when it exits the kernel kills everything left inside,
//!    so a confined command leaves no process behind.
//! 3. PID 1 mounts a fresh `/proc` (only the sandbox's processes are in it), bind-mounts
//!    each protected directory (the git directory) read-only, and restricts itself with
//!    Landlock: read and execute everywhere, write only in the workspace (in
//!    `workspace-write`), the private `$TMPDIR`, the configured paths and a few devices;
//!    no TCP without network; no signals to processes outside. Landlock also denies every
//!    later mount and unmount, so the read-only bind cannot be undone from inside, and
//!    `PR_SET_NO_NEW_PRIVS` keeps set-uid programs from regaining anything.
//! 4. PID 1 starts the program, reaps whatever it leaves, and exits with its status.
//!
//! The launcher is a fresh, single-threaded process (the `cairn-sandbox` binary), so
//! forking and allocating afterwards is sound.

use std::ffi::{CString, OsStr};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::ExitCode;

use landlock::{
    ABI, Access, AccessFs, AccessNet, CompatLevel, Compatible, Ruleset, RulesetAttr,
    RulesetCreatedAttr, RulesetStatus, Scope, path_beneath_rules,
};

use super::{Request, SETUP_FAILED, SETUP_FAILED_PREFIX};

/// Devices every program expects to write.
const WRITABLE_DEVICES: &[&str] = &["/dev/null", "/dev/zero", "/dev/full", "/dev/tty"];

pub(super) fn launch(request: Request) -> ExitCode {
    match run(&request) {
        Ok(code) => ExitCode::from(code),
        Err(message) => {
            eprintln!("{SETUP_FAILED_PREFIX}{message}");
            ExitCode::from(SETUP_FAILED)
        }
    }
}

fn run(request: &Request) -> Result<u8, String> {
    // SAFETY: plain system calls without pointers.
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    let mut flags = libc::CLONE_NEWUSER | libc::CLONE_NEWNS | libc::CLONE_NEWPID;
    if !request.network {
        flags |= libc::CLONE_NEWNET;
    }
    // SAFETY: as above.
    if unsafe { libc::unshare(flags) } != 0 {
        return Err(format!(
            "cannot create the sandbox's namespaces (are unprivileged user namespaces disabled?): {}",
            io::Error::last_os_error()
        ));
    }
    let map = |file: &str, text: String| {
        std::fs::write(file, text).map_err(|err| format!("cannot write {file}: {err}"))
    };
    match std::fs::write("/proc/self/setgroups", "deny") {
        Err(err) if err.kind() != io::ErrorKind::NotFound => {
            return Err(format!("cannot write /proc/self/setgroups: {err}"));
        }
        _ => {}
    }
    map("/proc/self/uid_map", format!("{uid} {uid} 1"))?;
    map("/proc/self/gid_map", format!("{gid} {gid} 1"))?;
    // SAFETY: the process is single-threaded (see the module documentation).
    match unsafe { libc::fork() } {
        -1 => Err(format!("cannot fork: {}", io::Error::last_os_error())),
        0 => {
            let code = match init(request) {
                Ok(code) => code,
                Err(message) => {
                    eprintln!("{SETUP_FAILED_PREFIX}{message}");
                    SETUP_FAILED
                }
            };
            // SAFETY: ends the child without running the parent's exit handlers twice.
            unsafe { libc::_exit(code.into()) }
        }
        child => wait_for(child),
    }
}

/// PID 1 of the sandbox: finishes the setup, then runs the program and waits for it.
fn init(request: &Request) -> Result<u8, String> {
    // SAFETY: plain system call; the launcher is this process's parent.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    mount(None, Path::new("/"), None, libc::MS_REC | libc::MS_PRIVATE)
        .map_err(|err| format!("cannot make the mounts private: {err}"))?;
    mount(
        Some(OsStr::new("proc")),
        Path::new("/proc"),
        Some("proc"),
        libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
    )
    .map_err(|err| format!("cannot mount a private /proc: {err}"))?;
    if request.writes_workspace {
        for dir in &request.protected {
            bind_read_only(dir)
                .map_err(|err| format!("cannot make {} read-only: {err}", dir.display()))?;
        }
    }
    restrict(request)?;
    if request.probe {
        return Ok(0);
    }
    let child = std::process::Command::new(&request.program)
        .args(&request.args)
        .env("TMPDIR", &request.tmp)
        .spawn()
        .map_err(|err| format!("cannot run {}: {err}", request.program.to_string_lossy()))?;
    let pid = child.id() as libc::pid_t;
    // Reap everything (orphans are PID 1's) until the program itself ends.
    loop {
        let mut status = 0;
        // SAFETY: `status` is a valid out pointer.
        let reaped = unsafe { libc::waitpid(-1, &mut status, 0) };
        if reaped == pid {
            return Ok(exit_code(status));
        }
        if reaped == -1 && io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            return Err(format!("waiting for the program failed: {}", io::Error::last_os_error()));
        }
    }
}

/// The Landlock ruleset. ABI 3 (Linux 6.2: writes, renames across directories,
/// truncation) is required; newer rights (TCP, device ioctls, scopes) are used where the
/// kernel has them.
fn restrict(request: &Request) -> Result<(), String> {
    let landlock = |err: landlock::RulesetError| format!("cannot set up Landlock: {err}");
    let required = ABI::V3;
    let best = ABI::V6;
    let mut ruleset = Ruleset::default()
        .set_compatibility(CompatLevel::HardRequirement)
        .handle_access(AccessFs::from_all(required))
        .map_err(|err| {
            format!("this kernel lacks Landlock ABI 3 (Linux 6.2), which the sandbox needs: {err}")
        })?
        .set_compatibility(CompatLevel::BestEffort)
        .handle_access(AccessFs::from_all(best))
        .map_err(landlock)?
        .scope(Scope::Signal)
        .map_err(landlock)?;
    if !request.network {
        ruleset = ruleset
            .handle_access(AccessNet::from_all(best))
            .map_err(landlock)?
            .scope(Scope::AbstractUnixSocket)
            .map_err(landlock)?;
    }
    let mut writable = vec![request.tmp.as_path()];
    if request.writes_workspace {
        writable.push(request.workspace.as_path());
        writable.extend(request.writable.iter().map(|dir| dir.as_path()));
    }
    let devices: Vec<&str> =
        WRITABLE_DEVICES.iter().copied().filter(|dev| Path::new(dev).exists()).collect();
    let status = ruleset
        .create()
        .map_err(landlock)?
        .add_rules(path_beneath_rules(["/"], AccessFs::from_read(best)))
        .map_err(landlock)?
        .add_rules(path_beneath_rules(writable, AccessFs::from_all(best)))
        .map_err(landlock)?
        .add_rules(path_beneath_rules(devices, AccessFs::from_file(best)))
        .map_err(landlock)?
        .restrict_self()
        .map_err(landlock)?;
    if status.ruleset == RulesetStatus::NotEnforced {
        return Err("Landlock is not enabled in this kernel".into());
    }
    Ok(())
}

/// Bind-mounts `dir` onto itself read-only, keeping the flags the original mount has
/// (the kernel refuses to drop them from inside a user namespace).
fn bind_read_only(dir: &Path) -> io::Result<()> {
    mount(Some(dir.as_os_str()), dir, None, libc::MS_BIND | libc::MS_REC)?;
    let path = c_path(dir)?;
    // SAFETY: `path` is NUL-terminated and `stat` a valid out pointer.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(path.as_ptr(), &mut stat) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let kept = [
        (libc::ST_NOSUID, libc::MS_NOSUID),
        (libc::ST_NODEV, libc::MS_NODEV),
        (libc::ST_NOEXEC, libc::MS_NOEXEC),
        (libc::ST_NOATIME, libc::MS_NOATIME),
        (libc::ST_NODIRATIME, libc::MS_NODIRATIME),
        (libc::ST_RELATIME, libc::MS_RELATIME),
    ]
    .into_iter()
    .filter(|(st, _)| stat.f_flag & st != 0)
    .fold(0, |flags, (_, ms)| flags | ms);
    mount(None, dir, None, libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY | kept)
}

fn mount(
    source: Option<&OsStr>,
    target: &Path,
    kind: Option<&str>,
    flags: libc::c_ulong,
) -> io::Result<()> {
    let source = source.map(|source| c_path(Path::new(source))).transpose()?;
    let kind = kind.map(CString::new).transpose()?;
    let target = c_path(target)?;
    let ptr = |text: &Option<CString>| text.as_ref().map_or(std::ptr::null(), |c| c.as_ptr());
    // SAFETY: every pointer is NUL-terminated or null, as mount(2) accepts.
    let result =
        unsafe { libc::mount(ptr(&source), target.as_ptr(), ptr(&kind), flags, std::ptr::null()) };
    if result == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes()).map_err(io::Error::other)
}

/// Waits for PID 1 and exits as it did.
fn wait_for(child: libc::pid_t) -> Result<u8, String> {
    loop {
        let mut status = 0;
        // SAFETY: `status` is a valid out pointer.
        if unsafe { libc::waitpid(child, &mut status, 0) } == child {
            return Ok(exit_code(status));
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(format!("waiting for the sandbox failed: {err}"));
        }
    }
}

/// A wait status as an exit code, the shell's way: 128 + the signal for a killed program.
fn exit_code(status: libc::c_int) -> u8 {
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status) as u8
    } else {
        (128 + libc::WTERMSIG(status)) as u8
    }
}
