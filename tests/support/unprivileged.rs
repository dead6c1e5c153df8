//! Running cairn as an ordinary user. Root reads every process's memory and environment
//! whatever the process does, so a test of what cairn hides from processes of its own user
//! must not run as root (CI does): as root, it hands the test repository to `nobody` and
//! runs the command as `nobody`.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use super::TestRepo;

/// `nobody` on Debian and most other systems; any uid without a login works.
const NOBODY: u32 = 65534;

/// Makes `repo` usable by the uid that [`as_user`] gives a command.
pub fn prepare(repo: &TestRepo) {
    if !is_root() {
        return;
    }
    // The temporary directory holding `home` and `work` is private to its creator.
    let parent = repo.root.parent().expect("the test repository has a parent");
    chmod(parent, 0o755);
    for dir in [&repo.home, &repo.root] {
        let status = Command::new("chown")
            .args(["-R", &format!("{NOBODY}:{NOBODY}")])
            .arg(dir)
            .status()
            .expect("chown runs");
        assert!(status.success(), "chown -R {}", dir.display());
    }
    // The test itself still reads the repository with git, as root: a repository owned by
    // another user is "dubious" to git unless it is declared safe.
    let global = repo.home.join(".gitconfig");
    let mut config = std::fs::read_to_string(&global).unwrap_or_default();
    config.push_str("[safe]\n\tdirectory = *\n");
    std::fs::write(&global, config).expect("write .gitconfig");
}

/// Runs `command` as the unprivileged test user (as it is when the tests do not run as
/// root). Supplementary groups are cleared with the uid change.
pub fn as_user(command: &mut Command) -> &mut Command {
    if is_root() { command.uid(NOBODY).gid(NOBODY) } else { command }
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}
