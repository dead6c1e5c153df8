//! Workspace confinement: turns a path the model gave into a path the tools may touch, or
//! a refusal that tells the model why.
//!
//! Every tool path goes through [`Workspace::resolve`]. It refuses absolute paths, `..`
//! that climbs above the root, anything a restore would refuse ([`RepoPath`]: a `.git`
//! directory in any spelling, the reserved top-level `.cairn`, a `\`), and paths whose existing part leads through a symlink to outside the root or
//! into one of those places. The check resolves the deepest existing ancestor with
//! `canonicalize`, so a symlink anywhere along the way is followed exactly as the OS
//! would; the part that does not exist yet can hold no symlink.

use std::io;
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Component, Path, PathBuf};

use crate::checkpoint::RESERVED_DIR;
use crate::git::path::{RepoPath, Rule};

/// The workspace root, canonicalized once per tool call.
#[derive(Debug, Clone)]
pub struct Workspace {
    root: PathBuf,
}

/// A path the tools may touch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// Where to operate: the canonical location (symlinks inside the workspace followed).
    pub abs: PathBuf,
    /// `abs` relative to the workspace root; empty for the root itself.
    pub rel: PathBuf,
}

impl Resolved {
    /// The relative path for messages to the model (`.` for the root).
    pub fn display(&self) -> String {
        if self.rel.as_os_str().is_empty() {
            ".".to_string()
        } else {
            self.rel.display().to_string()
        }
    }
}

impl Workspace {
    pub fn new(root: &Path) -> io::Result<Workspace> {
        Ok(Workspace { root: root.canonicalize()? })
    }

    /// The canonical root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Resolves `requested` (relative to the root; empty or `.` is the root itself).
    pub fn resolve(&self, requested: &str) -> Result<Resolved, String> {
        let path = Path::new(requested);
        if path.has_root() {
            let hint = match path.strip_prefix(&self.root) {
                Ok(rel) if !rel.as_os_str().is_empty() => format!(" (here: `{}`)", rel.display()),
                _ => String::new(),
            };
            return Err(format!(
                "`{requested}` is an absolute path; give a path relative to the workspace root{hint}"
            ));
        }
        let mut lexical = PathBuf::new();
        for component in path.components() {
            match component {
                Component::CurDir => {}
                Component::ParentDir => {
                    if !lexical.pop() {
                        return Err(format!("`{requested}` leads outside the workspace"));
                    }
                }
                Component::Normal(name) => lexical.push(name),
                Component::RootDir | Component::Prefix(_) => {
                    return Err(format!("`{requested}` is not a relative path"));
                }
            }
        }
        check_reserved(requested, &lexical)?;

        let joined = self.root.join(&lexical);
        let (existing, missing) = deepest_existing(&joined);
        let canonical = existing.canonicalize().map_err(|err| {
            format!("`{requested}` cannot be resolved ({err}); it may go through a broken symlink")
        })?;
        let Ok(existing_rel) = canonical.strip_prefix(&self.root) else {
            return Err(format!(
                "`{requested}` resolves through a symlink to `{}`, outside the workspace",
                canonical.display()
            ));
        };
        // `join` of an empty path would add a trailing `/`, which fails on files.
        let rel = if missing.as_os_str().is_empty() {
            existing_rel.to_path_buf()
        } else {
            existing_rel.join(missing)
        };
        if rel != lexical {
            check_reserved(requested, &rel)?;
        }
        Ok(Resolved { abs: self.root.join(&rel), rel })
    }
}

/// Refuses what a restore would refuse ([`RepoPath`]'s rules): paths inside `.git` in any
/// spelling a file system folds onto it (at any depth: nested repositories have one too),
/// the top-level `.cairn`, and names with `\`. A file the tools write must be one a
/// snapshot records and a rewind can write back.
fn check_reserved(requested: &str, rel: &Path) -> Result<(), String> {
    if rel.as_os_str().is_empty() {
        return Ok(());
    }
    let Err(err) = RepoPath::new(rel.as_os_str().as_bytes()) else { return Ok(()) };
    Err(match err.rule {
        Rule::Reserved => {
            format!(
                "`{requested}` is inside `{RESERVED_DIR}`, which cairn reserves for its own data"
            )
        }
        Rule::GitDir
        | Rule::GitDirOtherCase
        | Rule::GitDirShortName
        | Rule::GitDirNtfsSuffix
        | Rule::GitDirHfsIgnorable => format!(
            "`{requested}` is inside a `.git` directory ({}), which the file tools may not touch; use git commands through `shell` instead",
            err.rule
        ),
        rule => format!("`{requested}` is not a path cairn can record: {rule}"),
    })
}

/// Splits `path` into its deepest ancestor that exists (as an entry, even a dangling
/// symlink, so that one is reported rather than written through) and the rest.
fn deepest_existing(path: &Path) -> (&Path, PathBuf) {
    let mut existing = path;
    let mut missing = Vec::new();
    while existing.symlink_metadata().is_err() {
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                missing.push(name);
                existing = parent;
            }
            _ => break,
        }
    }
    (existing, missing.iter().rev().collect())
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::symlink;

    use super::*;

    fn workspace() -> (tempfile::TempDir, Workspace) {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("root/src")).unwrap();
        fs::write(dir.path().join("root/src/lib.rs"), "").unwrap();
        fs::create_dir_all(dir.path().join("outside")).unwrap();
        let ws = Workspace::new(&dir.path().join("root")).unwrap();
        (dir, ws)
    }

    #[test]
    fn relative_paths_resolve_inside_the_root() {
        let (_dir, ws) = workspace();
        let resolved = ws.resolve("src/lib.rs").unwrap();
        assert_eq!(resolved.rel, Path::new("src/lib.rs"));
        assert_eq!(
            resolved.abs.to_str(),
            ws.root().join("src/lib.rs").to_str(),
            "no trailing slash"
        );
        assert_eq!(
            ws.resolve("./src/../src/new/file.rs").unwrap().rel,
            Path::new("src/new/file.rs")
        );
        for root in ["", ".", "src/.."] {
            let resolved = ws.resolve(root).unwrap();
            assert_eq!((resolved.abs.as_path(), resolved.display().as_str()), (ws.root(), "."));
        }
    }

    #[test]
    fn absolute_paths_are_refused_with_a_hint() {
        let (_dir, ws) = workspace();
        let err = ws.resolve("/etc/passwd").unwrap_err();
        assert!(err.contains("absolute path"), "{err}");
        let inside = ws.root().join("src/lib.rs");
        let err = ws.resolve(inside.to_str().unwrap()).unwrap_err();
        assert!(err.contains("(here: `src/lib.rs`)"), "{err}");
    }

    #[test]
    fn parent_escapes_are_refused() {
        let (_dir, ws) = workspace();
        for path in ["..", "../outside/x", "src/../../outside", "a/../../b"] {
            let err = ws.resolve(path).unwrap_err();
            assert!(err.contains("outside the workspace"), "{path}: {err}");
        }
    }

    #[test]
    fn git_and_reserved_directories_are_refused() {
        let (_dir, ws) = workspace();
        for path in [
            ".git",
            ".git/config",
            "sub/.git/HEAD",
            ".GIT/config",
            "GIT~1/config",
            ".git./hooks/x",
            ".git::$INDEX_ALLOCATION/config",
            ".g\u{200c}it/config",
        ] {
            let err = ws.resolve(path).unwrap_err();
            assert!(err.contains("`.git`"), "{path}: {err}");
        }
        let err = ws.resolve(r"..\x").unwrap_err();
        assert!(err.contains(r"a `\`"), "{err}");
        for legal in ["aux.c", "con.rs", "a:b", ".github/ci.yml", "sp ace/ünï.txt"] {
            assert!(ws.resolve(legal).is_ok(), "{legal}");
        }
        for path in [".cairn", ".cairn/notes.md", "./.cairn"] {
            let err = ws.resolve(path).unwrap_err();
            assert!(err.contains("reserves"), "{path}: {err}");
        }
        assert!(ws.resolve("src/.cairn").is_ok(), "only the top-level .cairn is reserved");
    }

    #[test]
    fn symlinks_leading_outside_are_refused() {
        let (dir, ws) = workspace();
        symlink(dir.path().join("outside"), ws.root().join("out")).unwrap();
        symlink(dir.path().join("outside/missing"), ws.root().join("dangling")).unwrap();
        for path in ["out", "out/new.txt", "out/deeper/new.txt"] {
            let err = ws.resolve(path).unwrap_err();
            assert!(err.contains("outside the workspace"), "{path}: {err}");
        }
        let err = ws.resolve("dangling").unwrap_err();
        assert!(err.contains("broken symlink"), "{err}");
    }

    #[test]
    fn symlinks_inside_resolve_to_their_target() {
        let (_dir, ws) = workspace();
        symlink("src", ws.root().join("alias")).unwrap();
        symlink("src/lib.rs", ws.root().join("lib-link")).unwrap();
        assert_eq!(ws.resolve("alias/lib.rs").unwrap().rel, Path::new("src/lib.rs"));
        assert_eq!(ws.resolve("alias/new.rs").unwrap().rel, Path::new("src/new.rs"));
        assert_eq!(ws.resolve("lib-link").unwrap().rel, Path::new("src/lib.rs"));
    }

    #[test]
    fn symlinks_into_git_are_refused() {
        let (_dir, ws) = workspace();
        fs::create_dir(ws.root().join(".git")).unwrap();
        symlink(".git", ws.root().join("sneaky")).unwrap();
        let err = ws.resolve("sneaky/config").unwrap_err();
        assert!(err.contains("`.git`"), "{err}");
    }
}
