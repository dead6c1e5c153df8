//! Which workspace paths git ignores: `.gitignore` at every level, `info/exclude` and the
//! global excludes file (`core.excludesFile`, else `$XDG_CONFIG_HOME/git/ignore`).
//!
//! Matching uses gix's pattern engine, so semantics are git's. Rules are kept as an
//! immutable chain (each directory's patterns linked to its parent's) rather than gix's
//! push/pop stack, so the parallel walk can share them across threads.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use gix::bstr::{BStr, ByteSlice};
use gix::glob::pattern::Case;
use gix::glob::search::pattern::List;
use gix::ignore::search::Ignore;

/// The patterns that apply everywhere in the workspace.
pub struct GlobalRules {
    search: gix::ignore::Search,
    case: Case,
}

impl GlobalRules {
    /// Loads `info/exclude` and the global excludes file for `repo`.
    pub fn load(repo: &gix::Repository) -> std::io::Result<Self> {
        let config = repo.config_snapshot();
        let excludes_file =
            config.trusted_path("core.excludesFile").ok().flatten().or_else(default_excludes_file);
        let case = if config.boolean("core.ignoreCase").unwrap_or(false) {
            Case::Fold
        } else {
            Case::Sensitive
        };
        let mut buf = Vec::new();
        let search = gix::ignore::Search::from_git_dir(
            repo.common_dir(),
            excludes_file,
            &mut buf,
            Ignore::default(),
        )?;
        Ok(GlobalRules { search, case })
    }

    /// The bytes these rules were built from, for cache invalidation.
    pub fn fingerprint(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for list in &self.search.patterns {
            for mapping in &list.patterns {
                out.extend_from_slice(mapping.pattern.to_string().as_bytes());
                out.push(b'\n');
            }
            out.push(0);
        }
        out.push(matches!(self.case, Case::Fold) as u8);
        out
    }
}

fn default_excludes_file() -> Option<PathBuf> {
    Some(config_home()?.join("git").join("ignore"))
}

/// `$XDG_CONFIG_HOME`, or `~/.config`, where git looks for its global files by default.
pub fn config_home() -> Option<PathBuf> {
    std::env::var_os("XDG_CONFIG_HOME")
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".config")))
}

/// The `.gitignore` patterns of one directory, linked to those of its parents.
#[derive(Default)]
pub struct DirRules {
    parent: Option<Arc<DirRules>>,
    list: Option<List<Ignore>>,
}

impl DirRules {
    /// The rules for a child directory whose `.gitignore` (if any) holds `gitignore`.
    /// `source` is the absolute path of that file and `root` the workspace root.
    pub fn child(
        self: &Arc<Self>,
        gitignore: Option<&[u8]>,
        source: &Path,
        root: &Path,
    ) -> std::io::Result<Arc<DirRules>> {
        match gitignore {
            None => Ok(Arc::clone(self)),
            Some(bytes) => {
                let list =
                    List::from_bytes(bytes, source.to_owned(), Some(root), Ignore::default())?;
                Ok(Arc::new(DirRules { parent: Some(Arc::clone(self)), list: Some(list) }))
            }
        }
    }

    /// Whether `path` (relative to the workspace root, `/`-separated) is ignored. The
    /// innermost `.gitignore` with a matching pattern decides, then the global rules.
    pub fn is_ignored(&self, global: &GlobalRules, path: &BStr, is_dir: bool) -> bool {
        let basename_pos = path.rfind_byte(b'/').map(|pos| pos + 1);
        let mut rules = Some(self);
        while let Some(current) = rules {
            if let Some(list) = &current.list
                && let Some(hit) = gix::ignore::search::pattern_matching_relative_path(
                    list,
                    path,
                    basename_pos,
                    Some(is_dir),
                    global.case,
                )
            {
                return !hit.pattern.is_negative();
            }
            rules = current.parent.as_deref();
        }
        global
            .search
            .pattern_matching_relative_path(path, Some(is_dir), global.case)
            .is_some_and(|hit| !hit.pattern.is_negative())
    }
}
