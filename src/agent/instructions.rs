//! Project instructions: `AGENTS.md` files from the repository root down to the working
//! directory, read (never written) and put in the system prompt. In a directory without
//! an `AGENTS.md`, a `CLAUDE.md` stands in, so projects set up for other agents work too.
//! The total is capped so a huge file cannot crowd out the conversation.

use std::path::{Path, PathBuf};

/// Default cap on the instructions put in context, in bytes.
pub const DEFAULT_CAP: usize = 32 * 1024;

/// The instruction files that apply, outermost first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Instructions {
    /// (path relative to the root, content) pairs.
    pub files: Vec<(PathBuf, String)>,
    /// Whether the cap cut something off.
    pub truncated: bool,
}

impl Instructions {
    /// Reads the chain for `cwd` inside the workspace `root`, keeping at most `cap` bytes.
    pub fn load(root: &Path, cwd: &Path, cap: usize) -> Instructions {
        let mut dirs = vec![root.to_path_buf()];
        if let Ok(rel) = cwd.strip_prefix(root) {
            let mut dir = root.to_path_buf();
            for component in rel.components() {
                dir.push(component);
                dirs.push(dir.clone());
            }
        }
        let mut out = Instructions::default();
        let mut budget = cap;
        for dir in dirs {
            let Some((path, content)) = ["AGENTS.md", "CLAUDE.md"].iter().find_map(|name| {
                std::fs::read_to_string(dir.join(name)).ok().map(|c| (dir.join(name), c))
            }) else {
                continue;
            };
            let rel = path.strip_prefix(root).unwrap_or(&path).to_path_buf();
            if content.len() > budget {
                let mut cut = budget;
                while !content.is_char_boundary(cut) {
                    cut -= 1;
                }
                out.files.push((rel, content[..cut].to_string()));
                out.truncated = true;
                break;
            }
            budget -= content.len();
            out.files.push((rel, content));
        }
        out
    }

    /// The instructions as a system-prompt section, each marked with its source file.
    pub fn render(&self) -> Option<String> {
        if self.files.is_empty() {
            return None;
        }
        let mut out = String::from(
            "# Project instructions\nThe project's maintainers wrote these for agents working in this repository. Follow them.\n",
        );
        for (path, content) in &self.files {
            out.push_str(&format!("\n## From {}\n{}\n", path.display(), content.trim_end()));
        }
        if self.truncated {
            out.push_str(
                "\n(The instructions were cut at the size cap; read the files for the rest.)\n",
            );
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chain_runs_root_to_cwd_with_claude_md_standing_in() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::fs::write(root.join("AGENTS.md"), "root rules").unwrap();
        std::fs::write(root.join("CLAUDE.md"), "ignored: AGENTS.md exists here").unwrap();
        std::fs::write(root.join("a/CLAUDE.md"), "a rules").unwrap();
        std::fs::write(root.join("a/b/AGENTS.md"), "b rules").unwrap();
        std::fs::write(root.join("a/b/other.md"), "not an instruction file").unwrap();

        let found = Instructions::load(root, &root.join("a/b"), DEFAULT_CAP);
        let names: Vec<_> =
            found.files.iter().map(|(p, _)| p.to_string_lossy().into_owned()).collect();
        assert_eq!(names, ["AGENTS.md", "a/CLAUDE.md", "a/b/AGENTS.md"]);
        let text = found.render().unwrap();
        assert!(text.contains("## From a/CLAUDE.md\na rules"));
        assert!(!text.contains("ignored"));
        // From the root, only the root's file applies.
        assert_eq!(Instructions::load(root, root, DEFAULT_CAP).files.len(), 1);
    }

    #[test]
    fn the_cap_holds_and_says_so() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("AGENTS.md"), "é".repeat(100)).unwrap();
        let found = Instructions::load(dir.path(), dir.path(), 51);
        assert!(found.truncated);
        assert!(found.files[0].1.len() <= 51);
        assert!(found.render().unwrap().contains("cut at the size cap"));
        assert_eq!(Instructions::load(dir.path(), &dir.path().join("missing"), 10).files.len(), 1);
        assert!(Instructions::default().render().is_none());
    }
}
