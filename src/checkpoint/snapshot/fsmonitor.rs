//! Watchman as the change source of snapshots (`[snapshot] fsmonitor`).
//!
//! A snapshot normally scans the workspace: one `lstat` per entry. With Watchman, cairn
//! keeps beside the stat cache the Watchman clock of its last snapshot and that snapshot's
//! tree ([`MonitorState`]); the next one asks Watchman which paths changed since that clock
//! and applies just those to that tree (the fast path of `apply_paths`), so its cost
//! follows what changed, in every process, as a hook needs.
//!
//! Watchman is trusted only when its answer can be complete. The full scan runs instead,
//! with the reason kept for `--verbose`, when: there is no saved state, or its tree is gone;
//! the ignore rules, size limit or the user's index changed since; Watchman is not
//! installed, cannot start or answers with an error; it reports a fresh instance (it
//! restarted, or recrawled and lost track); a `.gitignore`, a nested repository (a path
//! through `.git`) or a directory replaced by a file changed; or more than
//! [`MAX_CHANGED_PATHS`] paths changed, where a scan is cheaper than reading each. The clock
//! a full scan saves is taken before it starts, so nothing changed during the scan is lost.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use gix::ObjectId;
use serde::{Deserialize, Serialize};
use watchman_client::prelude::*;

use super::stat::FileStat;

/// Beyond this many changed paths, the incremental scan is the cheaper way.
pub const MAX_CHANGED_PATHS: usize = 5_000;

/// How long to wait for Watchman, which may have to start and crawl the workspace.
const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// What the last snapshot taken with Watchman was, and what decided it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MonitorState {
    /// The workspace root Watchman was asked about.
    pub root: PathBuf,
    /// Watchman's clock when that snapshot began.
    pub clock: String,
    /// The workspace tree it produced.
    pub tree: String,
    /// The ignore rules and size limit it applied (see `scan::rules_fingerprint`).
    pub rules: String,
    /// The user's index when it was taken: a change to it can change what is tracked.
    pub index: Option<(i64, i64, u64, u64)>,
    /// The Watchman socket cairn found (`watchman get-sockname`), connected to directly
    /// next time: asking the CLI costs a process, about 6 ms, on every snapshot.
    #[serde(default)]
    pub socket: Option<PathBuf>,
}

impl MonitorState {
    pub fn load(path: &Path) -> Option<MonitorState> {
        serde_json::from_slice(&std::fs::read(path).ok()?).ok()
    }

    /// Saves the state; failing costs only a full scan next time.
    pub fn save(&self, path: &Path) {
        let write = || -> std::io::Result<()> {
            let dir = path.parent().ok_or(std::io::ErrorKind::InvalidInput)?;
            let mut file = tempfile::NamedTempFile::new_in(dir)?;
            serde_json::to_writer(&mut file, self)?;
            file.persist(path).map_err(|err| err.error)?;
            Ok(())
        };
        let _ = write();
    }

    pub fn tree_id(&self) -> Option<ObjectId> {
        ObjectId::from_hex(self.tree.as_bytes()).ok()
    }
}

/// The index's identity as the state keeps it.
pub fn index_key(stat: Option<FileStat>) -> Option<(i64, i64, u64, u64)> {
    stat.map(|stat| (stat.mtime.secs, stat.mtime.nanos as i64, stat.size, stat.ino))
}

/// Watchman's answer.
#[derive(Debug)]
pub enum Answer {
    /// Everything that changed since the clock asked about, and the clock now.
    Changed { clock: String, paths: Vec<PathBuf> },
    /// No usable list of changes; the clock now, when Watchman gave one, for the state a
    /// full scan saves.
    Rescan { clock: Option<String>, why: String },
}

query_result_type! {
    struct Change {
        name: NameField,
        exists: ExistsField,
        file_type: FileTypeField,
    }
}

/// The version of the Watchman server that answers (starting one if need be), or why none
/// does: what `cairn config show` reports.
pub fn server_version() -> Result<String, String> {
    on_own_runtime(async {
        let client = Connector::new().connect().await.map_err(|err| err.to_string())?;
        client.version().await.map(|version| version.version).map_err(|err| err.to_string())
    })
    .unwrap_or_else(Err)
}

/// Runs `task` to completion on a runtime of its own, on a thread of its own, so callers
/// inside or outside an async runtime can wait for it; `Err` says why it could not run.
fn on_own_runtime<T: Send>(task: impl std::future::Future<Output = T> + Send) -> Result<T, String> {
    std::thread::scope(|scope| {
        scope
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|err| format!("no runtime: {err}"))?;
                runtime.block_on(async {
                    tokio::time::timeout(TIMEOUT, task)
                        .await
                        .map_err(|_| "Watchman did not answer within 30 s".to_string())
                })
            })
            .join()
            .unwrap_or_else(|_| Err("the Watchman query panicked".into()))
    })
}

/// Asks Watchman what changed under `root` since `since` (none: only the clock), through
/// `socket` when it is still this user's Watchman socket (see [`connect`]). Returns the
/// socket cairn found, to be passed next time. Runs on a thread of its own, so it works
/// whether or not the caller is inside an async runtime.
pub fn ask(root: &Path, since: Option<&str>, socket: Option<&Path>) -> (Answer, Option<PathBuf>) {
    let asked = on_own_runtime(async {
        match connect(socket).await {
            Ok((client, socket)) => (query(&client, root, since).await, socket),
            Err(why) => (Answer::Rescan { clock: None, why }, None),
        }
    });
    asked.unwrap_or_else(|why| (Answer::Rescan { clock: None, why }, None))
}

/// A client of the Watchman server: at `WATCHMAN_SOCK` when that is set (as the client
/// library reads it), else at `remembered` when that is still a socket of this user, else
/// at the socket `watchman get-sockname` names (which starts a server if none runs). The
/// socket comes back when cairn chose it.
async fn connect(remembered: Option<&Path>) -> Result<(Client, Option<PathBuf>), String> {
    let unavailable = |err: &dyn std::fmt::Display| format!("Watchman is not available: {err}");
    if std::env::var_os("WATCHMAN_SOCK").is_some() {
        let client = Connector::new().connect().await.map_err(|err| unavailable(&err))?;
        return Ok((client, None));
    }
    if let Some(socket) = remembered.filter(|socket| is_own_socket(socket))
        && let Ok(client) = Connector::new().unix_domain_socket(socket).connect().await
    {
        return Ok((client, Some(socket.to_owned())));
    }
    let socket = sockname().await.map_err(|err| unavailable(&err))?;
    let client = Connector::new()
        .unix_domain_socket(&socket)
        .connect()
        .await
        .map_err(|err| unavailable(&err))?;
    Ok((client, Some(socket)))
}

/// The socket `watchman get-sockname` names.
async fn sockname() -> Result<PathBuf, String> {
    #[derive(Deserialize)]
    struct SockName {
        sockname: Option<PathBuf>,
        error: Option<String>,
    }
    let output = tokio::process::Command::new("watchman")
        .args(["--output-encoding", "json", "--no-pretty", "get-sockname"])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .await
        .map_err(|err| format!("cannot run watchman: {err}"))?;
    let answer: SockName = serde_json::from_slice(&output.stdout)
        .map_err(|err| format!("watchman get-sockname answered no JSON: {err}"))?;
    match answer {
        SockName { error: Some(error), .. } => Err(format!("watchman get-sockname: {error}")),
        SockName { sockname: Some(socket), .. } if socket.is_absolute() => Ok(socket),
        SockName { .. } => Err("watchman get-sockname named no absolute socket".into()),
    }
}

/// Whether `path` is an absolute path to a socket this user owns: a remembered socket is
/// read from a file, and is connected to only while it is still what Watchman made.
fn is_own_socket(path: &Path) -> bool {
    use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _};
    // SAFETY: getuid has no preconditions and cannot fail.
    let uid = unsafe { libc::getuid() };
    path.is_absolute()
        && std::fs::symlink_metadata(path)
            .is_ok_and(|meta| meta.file_type().is_socket() && meta.uid() == uid)
}

async fn query(client: &Client, root: &Path, since: Option<&str>) -> Answer {
    let rescan = |clock: Option<String>, why: String| Answer::Rescan { clock, why };
    let resolved = match CanonicalPath::canonicalize(root) {
        Ok(path) => client.resolve_root(path).await,
        Err(err) => return rescan(None, format!("cannot resolve {}: {err}", root.display())),
    };
    let resolved = match resolved {
        Ok(resolved) => resolved,
        Err(err) => {
            return rescan(None, format!("Watchman cannot watch {}: {err}", root.display()));
        }
    };
    let Some(since) = since else {
        return match client.clock(&resolved, SyncTimeout::Default).await {
            Ok(clock) => rescan(clock_text(&clock), "no earlier Watchman clock".into()),
            Err(err) => rescan(None, format!("Watchman gave no clock: {err}")),
        };
    };
    let request = QueryRequestCommon {
        since: Some(Clock::Spec(ClockSpec::StringClock(since.to_string()))),
        expression: Some(Expr::Not(Box::new(Expr::Any(vec![
            Expr::Name(NameTerm { paths: vec![".git".into()], wholename: true }),
            Expr::DirName(DirNameTerm { path: ".git".into(), depth: None }),
        ])))),
        empty_on_fresh_instance: true,
        ..Default::default()
    };
    let result = match client.query::<Change>(&resolved, request).await {
        Ok(result) => result,
        Err(err) => return rescan(None, format!("the Watchman query failed: {err}")),
    };
    let clock = match &result.clock {
        Clock::Spec(spec) => clock_text(spec),
        Clock::ScmAware(_) => None,
    };
    let Some(clock) = clock else {
        return rescan(None, "Watchman gave a clock cairn does not read".into());
    };
    if result.is_fresh_instance {
        return rescan(
            Some(clock),
            "Watchman reported a fresh instance (it restarted or lost track)".into(),
        );
    }
    let files = result.files.unwrap_or_default();
    if files.len() > MAX_CHANGED_PATHS {
        return rescan(Some(clock), format!("{} paths changed", files.len()));
    }
    let mut paths = Vec::with_capacity(files.len());
    for change in files {
        let path = change.name.into_inner();
        if let Some(why) = needs_scan(&path) {
            return rescan(Some(clock), why);
        }
        // A directory's own entry says nothing its files do not, except when it became
        // or stopped being a directory where a file was, which a scan sorts out.
        if matches!(change.file_type.into_inner(), FileType::Directory) {
            if change.exists.into_inner() {
                continue;
            }
            return rescan(Some(clock), format!("the directory {} was removed", path.display()));
        }
        paths.push(path);
    }
    Answer::Changed { clock, paths }
}

fn clock_text(spec: &ClockSpec) -> Option<String> {
    match spec {
        ClockSpec::StringClock(text) => Some(text.clone()),
        ClockSpec::UnixTimestamp(_) => None,
    }
}

/// Why a changed `path` needs a full scan, if it does.
fn needs_scan(path: &Path) -> Option<String> {
    if path.file_name() == Some(OsStr::new(".gitignore")) {
        return Some(format!("{} changed", path.display()));
    }
    if path.components().any(|c| c.as_os_str() == ".git") {
        return Some(format!("{} is in a nested repository", path.display()));
    }
    None
}
