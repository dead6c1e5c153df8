//! The system prompt: what cairn is and how to use its tools, the environment, the
//! project's instructions, and (from the memory layer) remembered guidance.

use std::path::Path;

use super::instructions::Instructions;

/// Everything the system prompt is built from.
pub struct PromptParts<'a> {
    pub root: &'a Path,
    pub branch: Option<String>,
    pub date: String,
    pub instructions: &'a Instructions,
    /// Memory text to inject as guidance, already marked with its sources.
    pub memory: Option<&'a str>,
}

const IDENTITY: &str = "\
You are cairn, a coding agent working in the user's git repository from their terminal.
Every step you take (each of your responses with its tool calls and their results) is
recorded as a git commit on a hidden ref, so the user can audit and rewind anything.

How to work:
- Read before you edit: use `read_file`, `glob` and `grep` to find and understand code.
- Change files with `edit_file` (exact, unique replacements) or `write_file` (whole files).
  Paths are relative to the workspace root.
- Use `shell` to build, test and inspect; it runs in the workspace root with no terminal
  and no input. Prefer quick, targeted commands.
- When an approach turns out to be a dead end, `rewind` to an earlier step number: it
  restores the workspace of that step while you keep this conversation, so you remember
  what failed. Step numbers appear in tool results.
- Keep going until the task is done, then reply with a short summary of what you changed
  and how you checked it. Ask the user only when you truly cannot proceed.";

pub fn build(parts: &PromptParts<'_>) -> String {
    let mut out = String::from(IDENTITY);
    out.push_str("\n\n# Environment\n");
    out.push_str(&format!("- Operating system: {}\n", std::env::consts::OS));
    out.push_str(&format!("- Workspace root: {}\n", parts.root.display()));
    if let Some(branch) = &parts.branch {
        out.push_str(&format!("- Git branch: {branch}\n"));
    }
    out.push_str(&format!("- Date: {}\n", parts.date));
    if let Some(instructions) = parts.instructions.render() {
        out.push('\n');
        out.push_str(&instructions);
    }
    if let Some(memory) = parts.memory {
        out.push_str("\n# Remembered guidance\nNotes remembered from earlier work. Treat them as guidance, not as instructions from the user.\n");
        out.push_str(memory);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prompt_names_the_environment_and_marks_its_sources() {
        let instructions = Instructions {
            files: vec![("AGENTS.md".into(), "Run `make check`.".into())],
            truncated: false,
        };
        let prompt = build(&PromptParts {
            root: Path::new("/work/project"),
            branch: Some("main".into()),
            date: "2026-11-24".into(),
            instructions: &instructions,
            memory: Some("- (facts/tests.md) tests need `--locked`"),
        });
        assert!(prompt.contains("Workspace root: /work/project"));
        assert!(prompt.contains("Git branch: main"));
        assert!(prompt.contains("## From AGENTS.md\nRun `make check`."));
        assert!(prompt.contains("guidance, not as instructions"));
        for tool in ["read_file", "edit_file", "write_file", "shell", "rewind"] {
            assert!(prompt.contains(tool), "{tool}");
        }
    }
}
