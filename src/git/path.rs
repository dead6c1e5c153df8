//! [`RepoPath`]: a relative, `/`-separated path that is safe to create in a workspace, and
//! the only way a tree entry's name becomes one.
//!
//! Trees come from outside (a fetched session, a hand-made commit), and git's object
//! format allows names a checkout must never create: `..` and absolute paths write outside
//! the workspace, `.git` writes into the repository (a planted hook runs on the next
//! `git checkout`), and file systems fold other spellings onto `.git`: any case on macOS
//! and Windows, `GIT~1` and `.git::$INDEX_ALLOCATION` on NTFS, `.g\u{200c}it` on HFS+.
//! A session made on Linux is opened on Macs and Windows, so those rules hold on every
//! platform. The root `.cairn` is cairn's own state and never comes from the workspace
//! part of a tree.

use std::ffi::OsStr;
use std::fmt;
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};

use gix::bstr::{BStr, BString, ByteSlice};
use gix::objs::tree::{EntryKind, EntryMode};
use gix_validate::path::component;

/// The name of the reserved directory that holds cairn's state in a step's tree.
const RESERVED_DIR: &[u8] = b".cairn";

/// Why a path or a tree entry is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    Empty,
    Absolute,
    CurrentDir,
    ParentDir,
    Slash,
    Backslash,
    Nul,
    GitDir,
    GitDirOtherCase,
    GitDirShortName,
    GitDirNtfsSuffix,
    GitDirHfsIgnorable,
    SymlinkedGitmodules,
    Reserved,
    /// A mode git does not write (only 100644, 100755, 120000, 160000 and 040000 are).
    UnknownMode(u16),
    /// A tree object that is missing, truncated or does not decode.
    MalformedTree,
    /// A tree whose entries are out of git's order or name one entry twice.
    UnsortedTree,
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rule::Empty => f.write_str("an empty path component"),
            Rule::Absolute => f.write_str("an absolute path"),
            Rule::CurrentDir => f.write_str("a `.` component"),
            Rule::ParentDir => f.write_str("a `..` component, which leads outside"),
            Rule::Slash => f.write_str("a `/` inside one name"),
            Rule::Backslash => f.write_str(r"a `\`, a path separator on Windows"),
            Rule::Nul => f.write_str("a NUL byte"),
            Rule::GitDir => f.write_str("a .git directory"),
            Rule::GitDirOtherCase => {
                f.write_str("a .git directory in another case (the same on macOS and Windows)")
            }
            Rule::GitDirShortName => f.write_str("a .git directory in another spelling (NTFS 8.3)"),
            Rule::GitDirNtfsSuffix => f.write_str(
                "a .git directory in another spelling (NTFS trailing dots, spaces or stream)",
            ),
            Rule::GitDirHfsIgnorable => f.write_str(
                "a .git directory in another spelling (HFS+ ignores its invisible characters)",
            ),
            Rule::SymlinkedGitmodules => f.write_str("a .gitmodules that is a symlink"),
            Rule::Reserved => f.write_str("the reserved .cairn directory"),
            Rule::UnknownMode(mode) => write!(f, "an unknown mode {mode:06o}"),
            Rule::MalformedTree => f.write_str("a tree that is missing, truncated or malformed"),
            Rule::UnsortedTree => f.write_str("a tree whose entries are out of order or repeated"),
        }
    }
}

/// A path refused, and the rule it breaks: `".GIT/hooks/x": a .git directory in another
/// case`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{:?}: {rule}", .path)]
pub struct UnsafePath {
    pub path: BString,
    pub rule: Rule,
}

/// A relative, `/`-separated path of the workspace, every component of it checked.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RepoPath(BString);

/// Whether a component is the last one and a symlink (`.gitmodules` may not be one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leaf {
    Symlink,
    Other,
}

impl RepoPath {
    /// The workspace root (the empty path), the start for [`RepoPath::join`].
    pub fn root() -> RepoPath {
        RepoPath(BString::default())
    }

    /// Checks a whole path given as text (`a/b/c`), not a symlink.
    pub fn new(path: impl Into<BString>) -> Result<RepoPath, UnsafePath> {
        Self::with_leaf(path.into(), Leaf::Other)
    }

    /// Checks a whole path whose last component is `leaf`.
    pub fn with_leaf(path: BString, leaf: Leaf) -> Result<RepoPath, UnsafePath> {
        let refuse = |rule| UnsafePath { path: path.clone(), rule };
        if path.is_empty() {
            return Err(refuse(Rule::Empty));
        }
        if path.starts_with(b"/") {
            return Err(refuse(Rule::Absolute));
        }
        let count = path.split_str("/").count();
        for (at, name) in path.split_str("/").enumerate() {
            let leaf = if at + 1 == count { leaf } else { Leaf::Other };
            check_component(name.as_bstr(), at == 0, leaf).map_err(refuse)?;
        }
        Ok(RepoPath(path))
    }

    /// This directory's entry `name` (one tree entry name: a `/` in it is refused).
    pub fn join(&self, name: &BStr, leaf: Leaf) -> Result<RepoPath, UnsafePath> {
        let mut joined = self.0.clone();
        if !joined.is_empty() {
            joined.push(b'/');
        }
        joined.extend_from_slice(name);
        match check_component(name, self.0.is_empty(), leaf) {
            Ok(()) => Ok(RepoPath(joined)),
            Err(rule) => Err(UnsafePath { path: joined, rule }),
        }
    }

    /// The root `.cairn` of a step's tree: cairn's own state, read but never written to
    /// the workspace (restore refuses any path [`RepoPath::is_reserved`] says is in it).
    pub(crate) fn state_dir() -> RepoPath {
        RepoPath(BString::from(RESERVED_DIR))
    }

    /// Whether the path is in the root `.cairn` (only [`RepoPath::state_dir`] makes one).
    pub fn is_reserved(&self) -> bool {
        self.components().next().is_some_and(|first| first == RESERVED_DIR)
    }

    pub fn as_bstr(&self) -> &BStr {
        self.0.as_bstr()
    }

    /// The path's components, root first.
    pub fn components(&self) -> impl Iterator<Item = &BStr> {
        self.0.split_str("/").filter(|c| !c.is_empty()).map(ByteSlice::as_bstr)
    }

    /// The path under `root` on disk.
    pub fn under(&self, root: &Path) -> PathBuf {
        root.join(OsStr::from_bytes(&self.0))
    }
}

impl fmt::Display for RepoPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.0.as_bstr(), f)
    }
}

impl std::ops::Deref for RepoPath {
    type Target = BStr;

    fn deref(&self) -> &BStr {
        self.as_bstr()
    }
}

/// What gix-validate checks. `protect_hfs` and `protect_ntfs` are on everywhere: a
/// session recorded on Linux is opened on Macs and Windows, whose file systems fold
/// `.GIT`, `GIT~1`, `.git.` and `.g\u{200c}it` onto `.git`. `protect_windows` is off on
/// purpose: it refuses `aux.c`, `con.rs` and `a:b`, ordinary and harmless names on the
/// systems cairn runs on (Unix); of what it adds, the one thing that matters everywhere,
/// `\` (a separator on Windows, so `..\x` climbs there), is refused by [`check_component`]
/// itself, with NUL.
const VALIDATE: component::Options =
    component::Options { protect_windows: false, protect_hfs: true, protect_ntfs: true };

/// Checks one path component (a tree entry's name); `at_root` applies the `.cairn` rule.
pub fn check_component(name: &BStr, at_root: bool, leaf: Leaf) -> Result<(), Rule> {
    if name.contains(&b'\\') {
        return Err(Rule::Backslash);
    }
    if name.contains(&0) {
        return Err(Rule::Nul);
    }
    let mode = (leaf == Leaf::Symlink).then_some(component::Mode::Symlink);
    if let Err(err) = gix_validate::path::component(name, mode, VALIDATE) {
        return Err(match err {
            component::Error::Empty => Rule::Empty,
            component::Error::PathSeparator => Rule::Slash,
            component::Error::Relative if name == "." => Rule::CurrentDir,
            component::Error::Relative => Rule::ParentDir,
            component::Error::SymlinkedGitModules => Rule::SymlinkedGitmodules,
            _ => git_spelling(name),
        });
    }
    if at_root && is_reserved_spelling(name) {
        return Err(Rule::Reserved);
    }
    Ok(())
}

/// Which spelling of `.git` gix-validate refused `name` as.
fn git_spelling(name: &BStr) -> Rule {
    if name == ".git" {
        Rule::GitDir
    } else if name.eq_ignore_ascii_case(b".git") {
        Rule::GitDirOtherCase
    } else if name.get(..5).is_some_and(|prefix| prefix.eq_ignore_ascii_case(b"git~1")) {
        Rule::GitDirShortName
    } else if name.is_ascii() {
        Rule::GitDirNtfsSuffix
    } else {
        Rule::GitDirHfsIgnorable
    }
}

/// `.cairn` as a case-folding, HFS+ or NTFS file system would read `name`.
fn is_reserved_spelling(name: &BStr) -> bool {
    let visible: String = name.chars().filter(|c| !is_hfs_ignorable(*c)).collect();
    let base = visible.split(':').next().unwrap_or_default().trim_end_matches(['.', ' ']);
    let bytes = base.as_bytes();
    // NTFS gives `.cairn` the 8.3 name `CAIRN~1` (`~2` to `~4` when those are taken).
    let short_name = bytes.len() == 7
        && bytes[..6].eq_ignore_ascii_case(b"cairn~")
        && (b'1'..=b'4').contains(&bytes[6]);
    base.eq_ignore_ascii_case(".cairn") || short_name
}

/// Code points HFS+ skips when it compares names (the list git and gix-validate use).
fn is_hfs_ignorable(c: char) -> bool {
    matches!(c as u32, 0x200c..=0x200f | 0x202a..=0x202e | 0x206a..=0x206f | 0xfeff)
}

/// A cheap test that `name` passes [`check_component`] for sure, for the snapshot's hot
/// path: every name the rules refuse starts with `.`, holds `~`, `\` or a non-ASCII byte
/// (the HFS+ invisible characters), or is empty. Names that fail it get the full check.
pub fn is_plainly_safe(name: &[u8]) -> bool {
    !name.is_empty()
        && name[0] != b'.'
        && !name.iter().any(|&b| b == b'~' || b == b'\\' || b == 0 || b >= 0x80)
}

/// The kind of a tree entry whose mode git writes; every other mode is refused.
pub fn check_mode(mode: EntryMode) -> Result<EntryKind, Rule> {
    match mode.value() {
        0o100644 => Ok(EntryKind::Blob),
        0o100755 => Ok(EntryKind::BlobExecutable),
        0o120000 => Ok(EntryKind::Link),
        0o160000 => Ok(EntryKind::Commit),
        0o040000 => Ok(EntryKind::Tree),
        other => Err(Rule::UnknownMode(other)),
    }
}

/// The [`Leaf`] of an entry of `kind`.
pub fn leaf_of(kind: EntryKind) -> Leaf {
    if kind == EntryKind::Link { Leaf::Symlink } else { Leaf::Other }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(path: &str) -> Rule {
        RepoPath::new(path).expect_err(path).rule
    }

    #[test]
    fn ordinary_paths_pass_and_keep_their_bytes() {
        for path in [
            "README.md",
            "src/lib.rs",
            "aux.c",
            "con.rs",
            "nul/prn.txt",
            "a:b",
            "with space/and trailing dot.",
            "ünïcödé/日本語.txt",
            ".github/workflows/ci.yml",
            ".gitignore",
            ".gitmodules",
            "sub/.cairn/not-reserved-below-the-root",
            "git~2",
            ".gitx",
        ] {
            let ok = RepoPath::new(path).unwrap_or_else(|err| panic!("{path}: {err}"));
            assert_eq!(ok.as_bstr(), path);
        }
    }

    #[test]
    fn structural_escapes_are_refused() {
        assert_eq!(rule(""), Rule::Empty);
        assert_eq!(rule("a//b"), Rule::Empty);
        assert_eq!(rule("a/"), Rule::Empty);
        assert_eq!(rule("/etc/passwd"), Rule::Absolute);
        assert_eq!(rule("./a"), Rule::CurrentDir);
        assert_eq!(rule(".."), Rule::ParentDir);
        assert_eq!(rule("a/../../x"), Rule::ParentDir);
        assert_eq!(rule(r"..\x"), Rule::Backslash);
        assert_eq!(rule(r"a\b"), Rule::Backslash);
        assert_eq!(rule("a\0b"), Rule::Nul);
    }

    #[test]
    fn a_slash_inside_one_tree_entry_name_is_refused() {
        let err = RepoPath::root().join(b"a/b".as_bstr(), Leaf::Other).unwrap_err();
        assert_eq!(err.rule, Rule::Slash);
        let err = RepoPath::root().join(b"/etc".as_bstr(), Leaf::Other).unwrap_err();
        assert_eq!(err.rule, Rule::Slash);
    }

    #[test]
    fn every_spelling_of_dot_git_is_refused_at_any_depth() {
        assert_eq!(rule(".git/hooks/post-checkout"), Rule::GitDir);
        assert_eq!(rule("sub/.git"), Rule::GitDir);
        assert_eq!(rule(".GIT/hooks/x"), Rule::GitDirOtherCase);
        assert_eq!(rule("a/.Git/config"), Rule::GitDirOtherCase);
        assert_eq!(rule("GIT~1/config"), Rule::GitDirShortName);
        assert_eq!(rule("git~1"), Rule::GitDirShortName);
        assert_eq!(rule(".git /config"), Rule::GitDirNtfsSuffix);
        assert_eq!(rule(".git./config"), Rule::GitDirNtfsSuffix);
        assert_eq!(rule(".git::$INDEX_ALLOCATION/config"), Rule::GitDirNtfsSuffix);
        assert_eq!(rule(".g\u{200c}it/config"), Rule::GitDirHfsIgnorable);
        assert_eq!(rule("\u{feff}.GIT/config"), Rule::GitDirHfsIgnorable);
    }

    #[test]
    fn a_symlinked_gitmodules_is_refused_but_a_file_is_not() {
        let as_link = |p: &str| RepoPath::with_leaf(p.into(), Leaf::Symlink);
        assert_eq!(as_link(".gitmodules").unwrap_err().rule, Rule::SymlinkedGitmodules);
        assert_eq!(as_link("sub/.GITMODULES").unwrap_err().rule, Rule::SymlinkedGitmodules);
        assert!(as_link("link").is_ok());
        assert!(RepoPath::new(".gitmodules").is_ok());
    }

    #[test]
    fn the_reserved_directory_is_refused_at_the_root_only_in_every_spelling() {
        for path in [".cairn", ".cairn/state", ".CAIRN/x", ".cairn./x", ".cairn::$DATA", "CAIRN~1"]
        {
            assert_eq!(rule(path), Rule::Reserved, "{path}");
        }
        assert_eq!(rule(".c\u{200d}airn/x"), Rule::Reserved);
        assert!(RepoPath::new("src/.cairn/x").is_ok());
        assert!(RepoPath::new("cairn.toml").is_ok());
        assert!(RepoPath::state_dir().is_reserved());
        assert!(!RepoPath::new("src/.cairn").unwrap().is_reserved());
    }

    #[test]
    fn only_the_modes_git_writes_are_accepted() {
        let mode = |bits: u32| EntryMode::try_from(bits).unwrap();
        assert_eq!(check_mode(mode(0o100644)), Ok(EntryKind::Blob));
        assert_eq!(check_mode(mode(0o100755)), Ok(EntryKind::BlobExecutable));
        assert_eq!(check_mode(mode(0o120000)), Ok(EntryKind::Link));
        assert_eq!(check_mode(mode(0o160000)), Ok(EntryKind::Commit));
        assert_eq!(check_mode(mode(0o040000)), Ok(EntryKind::Tree));
        assert_eq!(check_mode(mode(0o100664)), Err(Rule::UnknownMode(0o100664)));
        let zero = EntryMode::from_bytes(b"0 ").unwrap();
        assert_eq!(check_mode(zero), Err(Rule::UnknownMode(0)));
        assert_eq!(Rule::UnknownMode(0o100664).to_string(), "an unknown mode 100664");
    }

    #[test]
    fn the_fast_precheck_never_passes_a_name_the_rules_refuse() {
        let refused = [
            "",
            ".",
            "..",
            ".git",
            ".GIT",
            "GIT~1",
            "git~1",
            ".git ",
            ".git.",
            r"a\b",
            ".git::$INDEX_ALLOCATION",
            ".g\u{200c}it",
            "\u{200c}.git",
            ".cairn",
            "CAIRN~1",
        ];
        for name in refused {
            assert!(!is_plainly_safe(name.as_bytes()), "{name:?}");
            assert!(check_component(name.as_bytes().as_bstr(), true, Leaf::Other).is_err());
        }
        assert!(is_plainly_safe(b"main.rs") && is_plainly_safe(b"aux.c"));
    }

    #[test]
    fn the_error_names_the_path_and_the_rule() {
        let err = RepoPath::new(".GIT/hooks/x").unwrap_err();
        assert_eq!(
            err.to_string(),
            "\".GIT/hooks/x\": a .git directory in another case (the same on macOS and Windows)"
        );
        let hostile = RepoPath::new("a/\x1b[2J../..").unwrap_err().to_string();
        assert!(!hostile.contains('\x1b'), "control bytes are escaped: {hostile}");
    }
}
