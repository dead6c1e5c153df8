//! The sandbox for the commands the model runs and the MCP servers it calls.
//!
//! A confined program is started through the launcher, `cairn-sandbox …` (a small binary
//! installed next to `cairn`), which sets up the confinement in a fresh process and then
//! runs the program: on Linux a new
//! user, mount and PID namespace (and network namespace unless the network is allowed),
//! with its own `/proc`, the repository's git directory bind-mounted read-only, and a
//! Landlock ruleset that allows writes only in the workspace, the program's private
//! temporary directory and configured paths ([`linux`]). The launcher is not cairn, so
//! nothing of cairn's state (its keys above all) is in that process, and a confined
//! command pays for starting a 2 MB program rather than all of cairn.
//!
//! Whether the kernel can enforce it is found once per process by running the launcher
//! for real ([`support`]); cairn never reports a command as sandboxed when it is not.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::str::FromStr;
use std::sync::OnceLock;

#[cfg(target_os = "linux")]
mod linux;

/// The launcher's file name, next to the running `cairn`.
pub const LAUNCHER_NAME: &str = "cairn-sandbox";

/// The launcher's exit code when it could not set the sandbox up (the program never ran);
/// its reason is on stderr, after [`SETUP_FAILED_PREFIX`].
pub const SETUP_FAILED: u8 = 125;

/// How the launcher's own errors start on stderr.
pub const SETUP_FAILED_PREFIX: &str = "cairn sandbox: ";

/// How much a confined program may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(try_from = "String")]
pub enum Mode {
    /// Reads what the user can read; writes only in its private temporary directory.
    ReadOnly,
    /// Also writes in the workspace (except the git directory) and configured paths.
    WorkspaceWrite,
    /// Not confined: the user's explicit choice.
    Off,
}

impl Mode {
    /// How much the mode holds a program back: `off` least, `read-only` most.
    pub fn strictness(self) -> u8 {
        match self {
            Mode::Off => 0,
            Mode::WorkspaceWrite => 1,
            Mode::ReadOnly => 2,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::ReadOnly => "read-only",
            Mode::WorkspaceWrite => "workspace-write",
            Mode::Off => "off",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl TryFrom<String> for Mode {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

impl FromStr for Mode {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "read-only" => Ok(Mode::ReadOnly),
            "workspace-write" => Ok(Mode::WorkspaceWrite),
            "off" => Ok(Mode::Off),
            other => Err(format!(
                "`{other}` is not a sandbox mode; expected read-only, workspace-write or off"
            )),
        }
    }
}

/// How one program is confined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confinement {
    /// [`Mode::ReadOnly`] or [`Mode::WorkspaceWrite`].
    pub mode: Mode,
    /// The program may open network connections (and sees the host's network).
    pub network: bool,
    /// The workspace root, where the program runs.
    pub workspace: PathBuf,
    /// Directories inside the workspace that stay read-only in `workspace-write` (the
    /// repository's git directory, whose refs and objects only cairn writes).
    pub protected: Vec<PathBuf>,
    /// More directories the program may write in `workspace-write`.
    pub writable: Vec<PathBuf>,
}

impl Confinement {
    /// What the program may do, for an approval question or a notice.
    pub fn describe(&self) -> String {
        let network = if self.network { "network allowed" } else { "no network" };
        match self.mode {
            Mode::ReadOnly => format!("read-only sandbox: writes only in its $TMPDIR, {network}"),
            _ => {
                let protected = if self.protected.is_empty() { "" } else { " except .git" };
                let extra = if self.writable.is_empty() { "" } else { ", configured paths" };
                format!(
                    "workspace-write sandbox: writes in the workspace{protected}, its $TMPDIR{extra}; {network}"
                )
            }
        }
    }

    /// A command that runs `program args` under this confinement, in the workspace, with
    /// `tmp` (a directory the caller made and removes) as its private `$TMPDIR`.
    pub fn command(&self, program: &OsStr, args: &[OsString], tmp: &Path) -> Command {
        let mut command = Command::new(launcher_path());
        command.arg("--mode").arg(self.mode.as_str());
        command.arg("--workspace").arg(&self.workspace).arg("--tmp").arg(tmp);
        if self.network {
            command.arg("--network");
        }
        if self.mode == Mode::WorkspaceWrite {
            for dir in &self.protected {
                command.arg("--protect").arg(dir);
            }
            for dir in &self.writable {
                command.arg("--writable").arg(dir);
            }
        }
        command.arg("--").arg(program).args(args).current_dir(&self.workspace);
        command
    }
}

/// How one session's commands run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    Confined(Confinement),
    /// The user chose `off`.
    Off,
    /// The mode asked for cannot be enforced on this machine. `explicit` when the user
    /// asked for it (a flag or a file) rather than getting the default: commands are then
    /// refused, or asked about one by one, instead of run unconfined.
    Unavailable {
        mode: Mode,
        reason: String,
        explicit: bool,
    },
}

impl Plan {
    /// The plan for `confinement`, checking that this machine can enforce it.
    pub fn new(confinement: Confinement, explicit: bool) -> Plan {
        if confinement.mode == Mode::Off {
            return Plan::Off;
        }
        match support() {
            Ok(()) => Plan::Confined(confinement),
            Err(reason) => {
                Plan::Unavailable { mode: confinement.mode, reason: reason.clone(), explicit }
            }
        }
    }

    pub fn confinement(&self) -> Option<&Confinement> {
        match self {
            Plan::Confined(confinement) => Some(confinement),
            Plan::Off | Plan::Unavailable { .. } => None,
        }
    }

    /// How a command will run, for an approval question or a notice.
    pub fn describe(&self) -> String {
        match self {
            Plan::Confined(confinement) => confinement.describe(),
            Plan::Off => "not sandboxed (sandbox off)".into(),
            Plan::Unavailable { mode, reason, .. } => {
                format!("NOT sandboxed: the {mode} sandbox cannot run here: {reason}")
            }
        }
    }
}

/// The launcher: `cairn-sandbox` next to the running binary (on `PATH` if that cannot be
/// found).
fn launcher_path() -> PathBuf {
    match std::env::current_exe() {
        Ok(exe) => exe.with_file_name(LAUNCHER_NAME),
        Err(_) => PathBuf::from(LAUNCHER_NAME),
    }
}

/// Whether this machine can enforce the sandbox: `Err` says why not. Found once per
/// process by running the launcher with the whole setup and no program.
pub fn support() -> &'static Result<(), String> {
    static SUPPORT: OnceLock<Result<(), String>> = OnceLock::new();
    SUPPORT.get_or_init(probe)
}

#[cfg(target_os = "linux")]
fn probe() -> Result<(), String> {
    let dir = tempfile::Builder::new()
        .prefix("cairn-sandbox-probe-")
        .tempdir()
        .map_err(|err| format!("cannot make a temporary directory: {err}"))?;
    let launcher = launcher_path();
    let out = Command::new(&launcher)
        .arg("--probe")
        .args(["--mode", "workspace-write", "--workspace"])
        .arg(dir.path())
        .arg("--tmp")
        .arg(dir.path())
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|err| match err.kind() {
            std::io::ErrorKind::NotFound => format!(
                "the launcher {} is missing (it is installed with cairn: `cargo install --locked --path .` installs both)",
                launcher.display()
            ),
            _ => format!("cannot start {}: {err}", launcher.display()),
        })?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let reason = stderr.trim().strip_prefix(SETUP_FAILED_PREFIX).unwrap_or(stderr.trim());
    Err(if reason.is_empty() {
        format!("the launcher failed ({})", out.status)
    } else {
        reason.into()
    })
}

#[cfg(not(target_os = "linux"))]
fn probe() -> Result<(), String> {
    Err("the sandbox is implemented on Linux only".into())
}

/// The launcher: `cairn-sandbox [--probe] --mode M --workspace W --tmp T [--network]
/// [--protect DIR]… [--writable DIR]… -- PROGRAM ARGS…`, called with the arguments after
/// the program name, before anything else in the process.
pub fn launcher_main(args: Vec<OsString>) -> ExitCode {
    match Request::parse(args) {
        Ok(request) => launch(request),
        Err(message) => {
            eprintln!("{SETUP_FAILED_PREFIX}{message}");
            ExitCode::from(SETUP_FAILED)
        }
    }
}

#[cfg(target_os = "linux")]
fn launch(request: Request) -> ExitCode {
    linux::launch(request)
}

#[cfg(not(target_os = "linux"))]
fn launch(_: Request) -> ExitCode {
    eprintln!("{SETUP_FAILED_PREFIX}the sandbox is implemented on Linux only");
    ExitCode::from(SETUP_FAILED)
}

/// What the launcher was asked to do.
#[derive(Debug, Default)]
#[cfg_attr(not(target_os = "linux"), allow(dead_code, reason = "read by the Linux launcher"))]
struct Request {
    /// Set up everything, then exit 0 instead of running a program.
    probe: bool,
    writes_workspace: bool,
    network: bool,
    workspace: PathBuf,
    tmp: PathBuf,
    protected: Vec<PathBuf>,
    writable: Vec<PathBuf>,
    program: OsString,
    args: Vec<OsString>,
}

impl Request {
    fn parse(args: Vec<OsString>) -> Result<Request, String> {
        let mut request = Request::default();
        let mut mode = None;
        let mut args = args.into_iter();
        let value = |args: &mut std::vec::IntoIter<OsString>, flag: &str| {
            args.next().ok_or_else(|| format!("{flag} needs a value"))
        };
        while let Some(arg) = args.next() {
            match arg.to_str() {
                Some("--probe") => request.probe = true,
                Some("--network") => request.network = true,
                Some("--mode") => {
                    let text = value(&mut args, "--mode")?;
                    mode = Some(text.to_str().unwrap_or_default().parse::<Mode>()?);
                }
                Some("--workspace") => request.workspace = value(&mut args, "--workspace")?.into(),
                Some("--tmp") => request.tmp = value(&mut args, "--tmp")?.into(),
                Some("--protect") => request.protected.push(value(&mut args, "--protect")?.into()),
                Some("--writable") => {
                    request.writable.push(value(&mut args, "--writable")?.into());
                }
                Some("--") => break,
                _ => return Err(format!("unexpected argument {}", arg.to_string_lossy())),
            }
        }
        request.writes_workspace = match mode {
            Some(Mode::WorkspaceWrite) => true,
            Some(Mode::ReadOnly) => false,
            Some(Mode::Off) | None => {
                return Err("--mode read-only|workspace-write is needed".into());
            }
        };
        if request.workspace.as_os_str().is_empty() || request.tmp.as_os_str().is_empty() {
            return Err("--workspace and --tmp are needed".into());
        }
        if !request.probe {
            request.program = args.next().ok_or("no program to run")?;
            request.args = args.collect();
        }
        Ok(request)
    }
}

/// The lines of a confined program's output that show the sandbox refusing something
/// (a write outside what it allows, a connection), for the tool result to point out. A
/// permission error the user's own rights cause reads the same, so these are "probably".
pub fn refusals(output: &str) -> Vec<&str> {
    const SIGNS: &[&str] = &[
        "Permission denied",
        "Read-only file system",
        "Operation not permitted",
        "Network is unreachable",
        "Temporary failure in name resolution",
        "Could not resolve host",
    ];
    output.lines().filter(|line| SIGNS.iter().any(|sign| line.contains(sign))).take(5).collect()
}

/// One `blocked by the sandbox (probably): LINE` line for each of [`refusals`] in
/// `output`; empty when there are none.
pub fn refusal_notes(output: &str) -> String {
    refusals(output)
        .into_iter()
        .map(|line| format!("blocked by the sandbox (probably): {}\n", line.trim()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_and_order_by_strictness() {
        for mode in [Mode::ReadOnly, Mode::WorkspaceWrite, Mode::Off] {
            assert_eq!(mode.as_str().parse::<Mode>(), Ok(mode));
        }
        assert!("workspace".parse::<Mode>().unwrap_err().contains("read-only, workspace-write"));
        assert!(Mode::ReadOnly.strictness() > Mode::WorkspaceWrite.strictness());
        assert!(Mode::WorkspaceWrite.strictness() > Mode::Off.strictness());
    }

    #[test]
    fn the_launcher_request_round_trips_through_its_arguments() {
        let confinement = Confinement {
            mode: Mode::WorkspaceWrite,
            network: false,
            workspace: PathBuf::from("/w"),
            protected: vec![PathBuf::from("/w/.git")],
            writable: vec![PathBuf::from("/cache")],
        };
        let command = confinement.command(
            OsStr::new("sh"),
            &["-c".into(), "echo --mode".into()],
            Path::new("/t"),
        );
        assert_eq!(Path::new(command.get_program()).file_name().unwrap(), LAUNCHER_NAME);
        let args: Vec<OsString> = command.get_args().map(OsStr::to_os_string).collect();
        let request = Request::parse(args).unwrap();
        assert!(request.writes_workspace && !request.network && !request.probe);
        assert_eq!(request.workspace, Path::new("/w"));
        assert_eq!(request.tmp, Path::new("/t"));
        assert_eq!(request.protected, [PathBuf::from("/w/.git")]);
        assert_eq!(request.writable, [PathBuf::from("/cache")]);
        assert_eq!(request.program, "sh");
        assert_eq!(request.args, [OsString::from("-c"), OsString::from("echo --mode")]);
    }

    #[test]
    fn a_request_without_a_mode_or_program_is_refused() {
        let parse = |args: &[&str]| Request::parse(args.iter().map(OsString::from).collect());
        assert!(parse(&["--workspace", "/w", "--tmp", "/t", "--", "sh"]).is_err());
        assert!(parse(&["--mode", "off", "--workspace", "/w", "--tmp", "/t", "--", "sh"]).is_err());
        assert!(parse(&["--mode", "read-only", "--workspace", "/w", "--tmp", "/t"]).is_err());
        assert!(
            parse(&["--mode", "read-only", "--workspace", "/w", "--tmp", "/t", "--probe"]).is_ok()
        );
    }

    #[test]
    fn refusals_pick_the_lines_that_show_a_denial() {
        let output = "building\nsh: 1: cannot create /etc/x: Permission denied\ntouch: cannot touch '.git/hooks/x': Read-only file system\ndone\n";
        assert_eq!(
            refusals(output),
            [
                "sh: 1: cannot create /etc/x: Permission denied",
                "touch: cannot touch '.git/hooks/x': Read-only file system"
            ]
        );
        assert!(refusals("all fine\n").is_empty());
    }
}
