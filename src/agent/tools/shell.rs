//! `shell {command, timeout_ms?}`: runs `sh -c COMMAND` in the workspace root.
//!
//! The command runs without a terminal and with stdin closed, so nothing can stop to ask
//! a question nobody will answer: it starts a new session (`setsid`), which detaches it
//! from cairn's controlling terminal and makes it the leader of its own process group.
//! On timeout or cancellation, and if cairn stops waiting for it, the whole group is
//! killed, so children of the command (a test runner's workers, a pipeline) do not linger.
//!
//! stdout and stderr are read concurrently into [`HeadTail`] buffers, so a command that
//! prints gigabytes costs a few dozen KiB of memory and the model sees the start and the
//! end of each stream with the omitted size stated.

use std::ffi::OsStr;
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::args::Args;
use super::output::HeadTail;
use super::paths::Workspace;
use super::{Access, ToolOutput, ToolSpec};
use crate::sandbox::{self, Confinement};

const DEFAULT_TIMEOUT_MS: u64 = 120_000;
const MAX_TIMEOUT_MS: u64 = 600_000;
/// Bytes kept from the start and from the end of each stream.
const KEEP_BYTES: usize = 16 * 1024;
/// How long to keep reading after the command exited, for output still in the pipes. A
/// background process it started may hold them open for ever; it is not waited for.
const DRAIN_GRACE: Duration = Duration::from_secs(1);

pub(super) fn spec() -> ToolSpec {
    ToolSpec {
        name: "shell",
        description: "Run a shell command (`sh -c`) in the workspace root and return its exit code, \
            stdout and stderr (long output keeps its start and end). There is no terminal and stdin \
            is closed, so use non-interactive commands and flags. The command and everything it \
            started are killed after `timeout_ms` (default 120000, at most 600000).",
        parameters: json!({
            "type": "object",
            "properties": {
                "command": {"type": "string", "description": "The command line, run with `sh -c`"},
                "timeout_ms": {"type": "integer", "minimum": 1, "maximum": MAX_TIMEOUT_MS, "description": "Time limit in milliseconds (default 120000)"}
            },
            "required": ["command"]
        }),
        access: Access::Shell,
    }
}

/// Why the command stopped.
enum Ending {
    Exited(ExitStatus),
    TimedOut,
    Cancelled,
}

/// Runs the command until it exits, times out or is cancelled; its status and output.
pub(super) async fn run(
    args: Args,
    workspace: Workspace,
    sandbox: Option<Confinement>,
    cancel: CancellationToken,
) -> Result<ToolOutput, String> {
    let command = args.string("command")?;
    if command.trim().is_empty() {
        return Err("`command` is empty".to_string());
    }
    let requested = args.opt_u64("timeout_ms")?.unwrap_or(DEFAULT_TIMEOUT_MS);
    if requested == 0 {
        return Err("`timeout_ms` must be at least 1".to_string());
    }
    let timeout_ms = requested.min(MAX_TIMEOUT_MS);

    // The sandbox's private $TMPDIR, removed when the command is done.
    let tmp = match &sandbox {
        Some(_) => Some(
            tempfile::Builder::new()
                .prefix("cairn-sandbox-")
                .tempdir()
                .map_err(|err| format!("cannot make the sandbox's temporary directory: {err}"))?,
        ),
        None => None,
    };
    let confined = sandbox.as_ref().zip(tmp.as_ref().map(tempfile::TempDir::path));
    let mut child = spawn(&command, &workspace, confined)?;
    let pid = child.id().ok_or("the command ended before it could be watched")?;
    let mut group = ProcessGroup { id: pid as libc::pid_t, armed: true };
    let mut stdout = Capture::start(child.stdout.take());
    let mut stderr = Capture::start(child.stderr.take());
    let ending = wait(&mut child, &mut group, timeout_ms, &cancel).await?;
    let drained = tokio::time::timeout(DRAIN_GRACE, async {
        stdout.finish().await;
        stderr.finish().await;
    })
    .await
    .is_ok();

    let mut content = headline(&ending, timeout_ms);
    if requested > MAX_TIMEOUT_MS {
        content.push_str(&format!(" (timeout_ms {requested} was capped at {MAX_TIMEOUT_MS})"));
    }
    content.push('\n');
    content.push_str(&stdout.render("stdout"));
    content.push_str(&stderr.render("stderr"));
    if !drained {
        content.push_str(
            "(the command left a background process holding its output; what it printed after the command exited is not shown)\n",
        );
    }
    let is_error = !matches!(&ending, Ending::Exited(status) if status.success());
    if let Some(confinement) = &sandbox
        && is_error
    {
        content.push_str(&sandbox_note(&ending, &stderr, &content, confinement));
    }
    Ok(ToolOutput { content, is_error, changed_paths: Vec::new(), may_change_anything: true })
}

/// What a failed command's result adds about the sandbox: that it could not start, or
/// the lines that show it refusing something.
fn sandbox_note(
    ending: &Ending,
    stderr: &Capture,
    content: &str,
    confinement: &Confinement,
) -> String {
    let stderr = stderr.render("stderr");
    let setup_failed = matches!(ending, Ending::Exited(status) if status.code() == Some(sandbox::SETUP_FAILED.into()));
    if setup_failed && let Some(at) = stderr.find(sandbox::SETUP_FAILED_PREFIX) {
        let reason = stderr[at + sandbox::SETUP_FAILED_PREFIX.len()..].lines().next().unwrap_or("");
        return format!("the sandbox could not start, so the command did not run: {reason}\n");
    }
    let mut note = sandbox::refusal_notes(content);
    if note.is_empty() {
        return note;
    }
    note.push_str(&format!(
        "(the command ran in a {}; if it needs more, tell the user what and why)\n",
        confinement.describe()
    ));
    note
}

/// Starts `sh -c COMMAND` in the workspace root, in a session of its own, with stdin
/// closed and its output piped, confined when `confined` gives the sandbox and its
/// temporary directory. The API keys are not in its environment: cairn removed them from
/// its own at start (`cli::hardening`).
fn spawn(
    command: &str,
    workspace: &Workspace,
    confined: Option<(&Confinement, &Path)>,
) -> Result<tokio::process::Child, String> {
    let mut child = match confined {
        Some((confinement, tmp)) => Command::from(confinement.command(
            OsStr::new("sh"),
            &["-c".into(), command.into()],
            tmp,
        )),
        None => {
            let mut child = Command::new("sh");
            child.arg("-c").arg(command);
            child
        }
    };
    child
        .current_dir(workspace.root())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: setsid is async-signal-safe, as required between fork and exec.
    unsafe {
        child.pre_exec(
            || if libc::setsid() == -1 { Err(io::Error::last_os_error()) } else { Ok(()) },
        );
    }
    child.spawn().map_err(|err| format!("cannot start `sh`: {err}"))
}

/// Waits for the command to exit; on timeout or cancellation kills its process group
/// first.
async fn wait(
    child: &mut tokio::process::Child,
    group: &mut ProcessGroup,
    timeout_ms: u64,
    cancel: &CancellationToken,
) -> Result<Ending, String> {
    let failed = |err: io::Error| format!("waiting for the command failed: {err}");
    Ok(tokio::select! {
        status = child.wait() => {
            // The leader is reaped: its id may be reused, so the group must not be signalled.
            group.armed = false;
            Ending::Exited(status.map_err(failed)?)
        }
        () = tokio::time::sleep(Duration::from_millis(timeout_ms)) => {
            group.kill();
            child.wait().await.map_err(failed)?;
            Ending::TimedOut
        }
        () = cancel.cancelled() => {
            group.kill();
            child.wait().await.map_err(failed)?;
            Ending::Cancelled
        }
    })
}

/// The first line of the result: how the command ended.
fn headline(ending: &Ending, timeout_ms: u64) -> String {
    match ending {
        Ending::Exited(status) => describe(status),
        Ending::TimedOut => {
            format!(
                "timed out after {}; the command and its process group were killed",
                seconds(timeout_ms)
            )
        }
        Ending::Cancelled => "cancelled; the command and its process group were killed".to_string(),
    }
}

/// The command's process group, killed on drop unless the command was seen to exit (so a
/// shell call abandoned mid-run by a cancelled turn leaves nothing running).
struct ProcessGroup {
    id: libc::pid_t,
    armed: bool,
}

impl ProcessGroup {
    fn kill(&mut self) {
        if self.armed {
            // SAFETY: a plain system call; the group exists since its leader is not reaped.
            unsafe { libc::killpg(self.id, libc::SIGKILL) };
            self.armed = false;
        }
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One output stream being read in the background.
struct Capture {
    kept: Arc<Mutex<HeadTail>>,
    reader: Option<JoinHandle<()>>,
}

impl Capture {
    fn start(pipe: Option<impl AsyncRead + Unpin + Send + 'static>) -> Capture {
        let kept = Arc::new(Mutex::new(HeadTail::new(KEEP_BYTES)));
        let reader = pipe.map(|mut pipe| {
            let kept = Arc::clone(&kept);
            tokio::spawn(async move {
                let mut buffer = vec![0; 64 * 1024];
                while let Ok(read @ 1..) = pipe.read(&mut buffer).await {
                    kept.lock().unwrap_or_else(PoisonError::into_inner).push(&buffer[..read]);
                }
            })
        });
        Capture { kept, reader }
    }

    /// Waits for the end of the stream.
    async fn finish(&mut self) {
        if let Some(reader) = &mut self.reader {
            // The reader cannot panic; an aborted one has nothing more to give.
            let _ = reader.await;
        }
    }

    fn render(&self, name: &str) -> String {
        let kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        if kept.total() == 0 {
            return format!("{name}: (empty)\n");
        }
        let mut text = kept.render();
        if !text.ends_with('\n') {
            text.push('\n');
        }
        format!("{name}:\n{text}")
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        if let Some(reader) = &self.reader {
            reader.abort();
        }
    }
}

fn describe(status: &ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit code: {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}{}", signal_name(signal)),
        (None, None) => "ended without an exit code".to_string(),
    }
}

fn signal_name(signal: i32) -> &'static str {
    match signal {
        libc::SIGHUP => " (SIGHUP)",
        libc::SIGINT => " (SIGINT)",
        libc::SIGQUIT => " (SIGQUIT)",
        libc::SIGABRT => " (SIGABRT)",
        libc::SIGKILL => " (SIGKILL)",
        libc::SIGSEGV => " (SIGSEGV)",
        libc::SIGPIPE => " (SIGPIPE)",
        libc::SIGTERM => " (SIGTERM)",
        _ => "",
    }
}

fn seconds(ms: u64) -> String {
    if ms.is_multiple_of(1000) {
        format!("{} s", ms / 1000)
    } else {
        format!("{:.1} s", ms as f64 / 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::super::{ToolContext, run as run_tool};
    use super::*;

    async fn shell(root: &Path, arguments: serde_json::Value) -> ToolOutput {
        let cancel = CancellationToken::new();
        run_tool("shell", &arguments, &ToolContext { root, sandbox: None, cancel: &cancel }).await
    }

    /// Whether a process is gone (or a zombie nobody reaps, as under a container's init).
    fn is_dead(pid: &str) -> bool {
        match std::fs::read_to_string(format!("/proc/{}/stat", pid.trim())) {
            Err(_) => true,
            Ok(stat) => stat.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with('Z')),
        }
    }

    async fn eventually_dead(pid_file: &Path) -> bool {
        let pid = std::fs::read_to_string(pid_file).unwrap();
        for _ in 0..100 {
            if is_dead(&pid) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }

    #[tokio::test]
    async fn reports_exit_code_stdout_and_stderr_in_the_root() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("here.txt"), "").unwrap();
        let out = shell(dir.path(), json!({"command": "ls; echo oops >&2"})).await;
        assert_eq!(out.content, "exit code: 0\nstdout:\nhere.txt\nstderr:\noops\n");
        assert!(!out.is_error && out.may_change_anything && out.changed_paths.is_empty());

        let out = shell(dir.path(), json!({"command": "printf partial; exit 3"})).await;
        assert_eq!(out.content, "exit code: 3\nstdout:\npartial\nstderr: (empty)\n");
        assert!(out.is_error);

        let out = shell(dir.path(), json!({"command": "kill -TERM $$"})).await;
        assert_eq!(
            out.content,
            "killed by signal 15 (SIGTERM)\nstdout: (empty)\nstderr: (empty)\n"
        );
        assert!(out.is_error);
    }

    #[tokio::test]
    async fn stdin_is_closed_and_there_is_no_terminal() {
        let dir = tempfile::tempdir().unwrap();
        let out = shell(
            dir.path(),
            json!({"command": "cat; test -t 0 || echo no-tty-stdin; (: < /dev/tty) 2>/dev/null || echo no-controlling-tty"}),
        )
        .await;
        assert_eq!(
            out.content,
            "exit code: 0\nstdout:\nno-tty-stdin\nno-controlling-tty\nstderr: (empty)\n"
        );
    }

    #[tokio::test]
    async fn a_command_that_never_exits_is_killed_with_its_group_at_the_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let started = Instant::now();
        let out = shell(
            dir.path(),
            json!({"command": "sleep 60 & echo $! > bg.pid; echo started; sleep 60", "timeout_ms": 300}),
        )
        .await;
        assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
        assert!(out.is_error);
        assert_eq!(
            out.content,
            "timed out after 0.3 s; the command and its process group were killed\nstdout:\nstarted\nstderr: (empty)\n"
        );
        assert!(eventually_dead(&dir.path().join("bg.pid")).await, "the background child survived");
    }

    #[tokio::test]
    async fn cancellation_kills_the_group() {
        let dir = tempfile::tempdir().unwrap();
        let cancel = CancellationToken::new();
        let trigger = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            trigger.cancel();
        });
        let arguments = json!({"command": "sleep 60 & echo $! > bg.pid; sleep 60"});
        let out = run_tool(
            "shell",
            &arguments,
            &ToolContext { root: dir.path(), sandbox: None, cancel: &cancel },
        )
        .await;
        assert!(out.is_error);
        assert!(
            out.content.starts_with("cancelled; the command and its process group were killed\n"),
            "{}",
            out.content
        );
        assert!(eventually_dead(&dir.path().join("bg.pid")).await);
    }

    #[tokio::test]
    async fn abandoning_the_call_kills_the_group() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let call =
            async move { shell(&root, json!({"command": "echo $$ > sh.pid; sleep 60"})).await };
        assert!(tokio::time::timeout(Duration::from_millis(500), call).await.is_err());
        assert!(eventually_dead(&dir.path().join("sh.pid")).await);
    }

    #[tokio::test]
    async fn huge_output_stays_bounded_with_head_and_tail() {
        let dir = tempfile::tempdir().unwrap();
        let command = "yes | head -c 50000000; yes err | head -c 3000000 >&2; echo; echo THE-END";
        let out = shell(dir.path(), json!({"command": command, "timeout_ms": 60_000})).await;
        assert!(!out.is_error, "{}", &out.content[..200]);
        assert!(out.content.len() < 4 * KEEP_BYTES + 1024, "{} bytes", out.content.len());
        assert!(out.content.starts_with("exit code: 0\nstdout:\ny\ny\n"));
        assert!(
            out.content.contains(&format!("[… {} bytes omitted …]", 50_000_009 - 2 * KEEP_BYTES))
        );
        assert!(
            out.content.contains(&format!("[… {} bytes omitted …]", 3_000_000 - 2 * KEEP_BYTES))
        );
        let stdout_end = out.content.find("stderr:").unwrap();
        assert!(out.content[..stdout_end].ends_with("y\n\nTHE-END\n"));
    }

    #[tokio::test]
    async fn a_background_process_holding_the_output_does_not_hold_the_call() {
        let dir = tempfile::tempdir().unwrap();
        let started = Instant::now();
        let out =
            shell(dir.path(), json!({"command": "sleep 3 & echo $! > bg.pid; echo done"})).await;
        assert!(started.elapsed() < Duration::from_millis(2900), "{:?}", started.elapsed());
        assert!(!out.is_error);
        assert!(out.content.starts_with("exit code: 0\nstdout:\ndone\n"), "{}", out.content);
        assert!(out.content.ends_with("is not shown)\n"), "{}", out.content);
        let pid = std::fs::read_to_string(dir.path().join("bg.pid")).unwrap();
        // SAFETY: a plain system call; the process is the test's own grandchild.
        unsafe { libc::kill(pid.trim().parse().unwrap(), libc::SIGKILL) };
    }

    #[tokio::test]
    async fn bad_arguments_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let out = shell(dir.path(), json!({"command": "  "})).await;
        assert_eq!((out.is_error, out.content.as_str()), (true, "shell: `command` is empty"));
        let out = shell(dir.path(), json!({"command": "true", "timeout_ms": 0})).await;
        assert_eq!(out.content, "shell: `timeout_ms` must be at least 1");
        let out = shell(dir.path(), json!({"command": "true", "timeout_ms": 10_000_000})).await;
        assert_eq!(
            out.content,
            "exit code: 0 (timeout_ms 10000000 was capped at 600000)\nstdout: (empty)\nstderr: (empty)\n"
        );
    }
}
