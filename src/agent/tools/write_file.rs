//! `write_file {path, content}`: create or overwrite a file, atomically.
//!
//! [`atomic_write`] (also used by `edit_file`) writes to a temporary file in the target's
//! directory and renames it over the target, so a failure midway (a full disk) leaves the
//! original untouched and no partial file behind. It does not `fsync`: the goal is that
//! the model and the checkpoint store never see half a file, and a rename on a local
//! filesystem gives that; surviving a power cut is not worth a sync on every edit step.

use std::fs::{self, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use serde_json::json;

use super::args::Args;
use super::paths::{Resolved, Workspace};
use super::{Access, ToolOutput, ToolSpec};

pub(super) fn spec() -> ToolSpec {
    ToolSpec {
        name: "write_file",
        description: "Create a file, or overwrite it entirely, with `content`. Parent directories \
            are created. An existing file keeps its permissions. To change part of a file, prefer edit_file.",
        parameters: json!({
            "type": "object",
            "properties": {
                "path": {"type": "string", "description": "File path relative to the workspace root"},
                "content": {"type": "string", "description": "The complete new content of the file"}
            },
            "required": ["path", "content"]
        }),
        access: Access::Write,
    }
}

/// A write checked against the workspace as it is now, not yet done.
pub(super) struct PlannedWrite {
    pub(super) target: Resolved,
    pub(super) content: String,
    /// The size of the file it replaces, if there is one.
    pub(super) existing: Option<u64>,
}

pub(super) fn run(args: &Args, workspace: &Workspace) -> Result<ToolOutput, String> {
    let PlannedWrite { target, content, existing } = plan(args, workspace)?;
    let shown = target.display();
    let bytes = content.len();
    if existing == Some(bytes as u64)
        && fs::read(&target.abs).is_ok_and(|old| old == content.as_bytes())
    {
        return Ok(ToolOutput::text(format!(
            "`{shown}` already has this content ({bytes} bytes); nothing changed"
        )));
    }
    if let Some(parent) = target.abs.parent() {
        fs::create_dir_all(parent)
            .map_err(|err| format!("cannot create the directories of `{shown}`: {err}"))?;
    }
    atomic_write(&target.abs, content.as_bytes())
        .map_err(|err| format!("cannot write `{shown}`: {err}"))?;
    let message = match existing {
        None => format!("created `{shown}` ({bytes} bytes)"),
        Some(old) => format!("overwrote `{shown}` ({bytes} bytes, was {old})"),
    };
    Ok(ToolOutput { changed_paths: vec![target.rel], ..ToolOutput::text(message) })
}

/// Checks the call and what is at its path, writing nothing.
pub(super) fn plan(args: &Args, workspace: &Workspace) -> Result<PlannedWrite, String> {
    let path = args.string("path")?;
    let content = args.string("content")?;
    let target = workspace.resolve(&path)?;
    let shown = target.display();
    let existing = match fs::symlink_metadata(&target.abs) {
        Ok(metadata) if metadata.is_dir() => return Err(format!("`{shown}` is a directory")),
        Ok(metadata) if !metadata.is_file() => {
            return Err(format!("`{shown}` is not a regular file"));
        }
        Ok(metadata) => Some(metadata.len()),
        Err(err) if err.kind() == io::ErrorKind::NotFound => None,
        Err(err) => return Err(format!("cannot write `{shown}`: {err}")),
    };
    Ok(PlannedWrite { target, content, existing })
}

/// Replaces the file at `path` with `bytes` via a temporary file and a rename. An existing
/// file's permission bits are kept; a new file gets the usual `0o666` less the umask.
pub(super) fn atomic_write(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().ok_or_else(|| io::Error::other("the path has no parent directory"))?;
    let kept_mode = match fs::metadata(path) {
        Ok(metadata) => Some(metadata.permissions().mode()),
        Err(err) if err.kind() == io::ErrorKind::NotFound => None,
        Err(err) => return Err(err),
    };
    // Created with 0o666 so the kernel applies the umask, as for any new file.
    let mut temp = tempfile::Builder::new()
        .prefix(&crate::git::temp::prefix())
        .permissions(Permissions::from_mode(0o666))
        .tempfile_in(dir)?;
    // On any error below `temp` is dropped, which removes the temporary file.
    temp.write_all(bytes)?;
    temp.flush()?;
    if let Some(mode) = kept_mode {
        temp.as_file().set_permissions(Permissions::from_mode(mode))?;
    }
    temp.persist(path).map_err(|err| err.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn write(root: &Path, arguments: serde_json::Value) -> Result<ToolOutput, String> {
        run(&Args::parse(&arguments).unwrap(), &Workspace::new(root).unwrap())
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn creates_files_and_their_directories() {
        let dir = tempfile::tempdir().unwrap();
        let out =
            write(dir.path(), json!({"path": "src/deep/new.rs", "content": "fn main() {}\n"}))
                .unwrap();
        assert_eq!(out.content, "created `src/deep/new.rs` (13 bytes)");
        assert_eq!(out.changed_paths, vec![PathBuf::from("src/deep/new.rs")]);
        assert!(!out.is_error && !out.may_change_anything);
        assert_eq!(
            fs::read_to_string(dir.path().join("src/deep/new.rs")).unwrap(),
            "fn main() {}\n"
        );
        assert_eq!(entries(&dir.path().join("src/deep")), ["new.rs"], "no temporary file left");
    }

    #[test]
    fn overwrites_and_keeps_the_executable_bit() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("run.sh");
        fs::write(&script, "#!/bin/sh\n").unwrap();
        fs::set_permissions(&script, Permissions::from_mode(0o751)).unwrap();
        let out = write(dir.path(), json!({"path": "run.sh", "content": "#!/bin/sh\necho hi\n"}))
            .unwrap();
        assert_eq!(out.content, "overwrote `run.sh` (18 bytes, was 10)");
        assert_eq!(fs::metadata(&script).unwrap().permissions().mode() & 0o777, 0o751);
        assert_eq!(fs::read_to_string(&script).unwrap(), "#!/bin/sh\necho hi\n");
    }

    #[test]
    fn new_files_get_ordinary_permissions_not_the_temp_files_0600() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), json!({"path": "a.txt", "content": "x"})).unwrap();
        let mode = fs::metadata(dir.path().join("a.txt")).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode & 0o644, 0o644, "{mode:o}");
    }

    #[test]
    fn identical_content_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("a.txt"), "same").unwrap();
        let out = write(dir.path(), json!({"path": "a.txt", "content": "same"})).unwrap();
        assert!(out.content.contains("nothing changed") && out.changed_paths.is_empty());
    }

    #[test]
    fn writes_through_a_symlink_inside_the_workspace_to_its_target() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("real.txt"), "old").unwrap();
        std::os::unix::fs::symlink("real.txt", dir.path().join("link.txt")).unwrap();
        let out = write(dir.path(), json!({"path": "link.txt", "content": "new"})).unwrap();
        assert_eq!(out.changed_paths, vec![PathBuf::from("real.txt")]);
        assert!(fs::symlink_metadata(dir.path().join("link.txt")).unwrap().is_symlink());
        assert_eq!(fs::read_to_string(dir.path().join("real.txt")).unwrap(), "new");
    }

    #[test]
    fn refusals_create_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        fs::create_dir_all(root.join(".git")).unwrap();
        fs::create_dir(root.join("adir")).unwrap();
        for (path, why) in [
            ("../escape.txt", "outside the workspace"),
            ("/tmp/abs.txt", "absolute path"),
            (".git/hooks/pre-commit", "`.git`"),
            (".cairn/x", "reserves"),
            ("adir", "is a directory"),
        ] {
            let err = write(&root, json!({"path": path, "content": "x"})).unwrap_err();
            assert!(err.contains(why), "{path}: {err}");
        }
        assert_eq!(entries(dir.path()), ["root"]);
        assert_eq!(entries(&root), [".git", "adir"]);
        assert!(entries(&root.join(".git")).is_empty());
    }

    /// Set in the child process of the full-disk test: the file it must fail to replace.
    const FULL_DISK_TARGET: &str = "CAIRN_TEST_FULL_DISK_TARGET";

    #[test]
    fn a_full_disk_leaves_the_original_and_no_temporary_file() {
        // A file size limit (RLIMIT_FSIZE) makes write(2) fail midway as a full disk would.
        // The limit applies to a whole process, so the write runs in a child: this test
        // binary again, running only `write_in_a_process_with_a_file_size_limit`.
        use std::os::unix::process::CommandExt;
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("big.bin");
        fs::write(&target, "original").unwrap();
        let mut child = std::process::Command::new(std::env::current_exe().unwrap());
        child
            .args([
                "--exact",
                "agent::tools::write_file::tests::write_in_a_process_with_a_file_size_limit",
            ])
            .env(FULL_DISK_TARGET, &target);
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            child.pre_exec(|| {
                let limit = libc::rlimit { rlim_cur: 1 << 20, rlim_max: 1 << 20 };
                libc::setrlimit(libc::RLIMIT_FSIZE, &limit);
                // Without this the kernel kills the process with SIGXFSZ instead.
                libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
                Ok(())
            });
        }
        let output = child.output().unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success() && stdout.contains("1 passed"), "{stdout}");
        assert_eq!(fs::read_to_string(&target).unwrap(), "original");
        assert_eq!(entries(dir.path()), ["big.bin"]);
    }

    #[test]
    fn write_in_a_process_with_a_file_size_limit() {
        let Some(target) = std::env::var_os(FULL_DISK_TARGET) else { return };
        let err = atomic_write(Path::new(&target), &vec![b'x'; 4 << 20]).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::FileTooLarge, "{err}");
    }
}
