//! The tools the agent offers the model: their specs, and one entry point,
//! [`run`], that executes a call and always answers with a [`ToolOutput`].
//!
//! Nothing a model sends can crash the agent: unknown tools, malformed arguments, paths
//! outside the workspace and panics inside a tool all come back as `is_error` outputs
//! whose text tells the model what went wrong and how to do better. One file per tool;
//! `paths` confines every path to the workspace and `output` bounds what the model sees.

mod args;
mod edit_file;
mod glob;
mod grep;
pub mod output;
pub mod paths;
mod preview;
mod read_file;
mod shell;
mod write_file;

use std::any::Any;
use std::path::{Path, PathBuf};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use args::Args;
use paths::Workspace;
pub use preview::preview;

/// A tool as offered to the model.
#[derive(Debug, Clone)]
pub struct ToolSpec {
    pub name: &'static str,
    pub description: &'static str,
    /// JSON schema of the arguments object.
    pub parameters: serde_json::Value,
    pub access: Access,
}

/// What a tool may do, for approval decisions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Reads the workspace only.
    Read,
    /// Creates or modifies the files it names.
    Write,
    /// Runs a command that may do anything.
    Shell,
}

/// Where a call runs.
#[derive(Debug, Clone, Copy)]
pub struct ToolContext<'a> {
    /// The workspace root; every path argument is relative to it.
    pub root: &'a Path,
    /// How `shell` commands are confined; `None` runs them unconfined.
    pub sandbox: Option<&'a crate::sandbox::Confinement>,
    /// Stops a running `shell` command (killing its process group) and long walks.
    pub cancel: &'a CancellationToken,
}

/// The answer to one call.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ToolOutput {
    /// What the model sees, already bounded in size.
    pub content: String,
    pub is_error: bool,
    /// Workspace-relative paths this call created, modified or deleted.
    pub changed_paths: Vec<PathBuf>,
    /// The call may have changed any file (`shell`): the caller takes a full snapshot.
    pub may_change_anything: bool,
}

impl ToolOutput {
    fn text(content: impl Into<String>) -> ToolOutput {
        ToolOutput { content: content.into(), ..ToolOutput::default() }
    }

    fn error(content: impl Into<String>) -> ToolOutput {
        ToolOutput { content: content.into(), is_error: true, ..ToolOutput::default() }
    }
}

/// A safety net over every tool's own bounds, so no output can flood the context.
pub const MAX_CONTENT_BYTES: usize = 128 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tool {
    ReadFile,
    WriteFile,
    EditFile,
    Glob,
    Grep,
    Shell,
}

const TOOLS: [Tool; 6] =
    [Tool::ReadFile, Tool::WriteFile, Tool::EditFile, Tool::Glob, Tool::Grep, Tool::Shell];

impl Tool {
    fn spec(self) -> ToolSpec {
        match self {
            Tool::ReadFile => read_file::spec(),
            Tool::WriteFile => write_file::spec(),
            Tool::EditFile => edit_file::spec(),
            Tool::Glob => glob::spec(),
            Tool::Grep => grep::spec(),
            Tool::Shell => shell::spec(),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Tool::ReadFile => "read_file",
            Tool::WriteFile => "write_file",
            Tool::EditFile => "edit_file",
            Tool::Glob => "glob",
            Tool::Grep => "grep",
            Tool::Shell => "shell",
        }
    }
}

/// The specs of every tool, in a stable order.
pub fn specs() -> Vec<ToolSpec> {
    TOOLS.iter().map(|tool| tool.spec()).collect()
}

/// Runs one tool call. Never panics and never fails: every problem is an `is_error` output.
pub async fn run(name: &str, arguments: &serde_json::Value, ctx: &ToolContext<'_>) -> ToolOutput {
    let Some(tool) = TOOLS.into_iter().find(|tool| tool.name() == name) else {
        let names: Vec<&str> = TOOLS.iter().map(|tool| tool.name()).collect();
        return ToolOutput::error(format!(
            "unknown tool `{name}`; the tools are: {}",
            names.join(", ")
        ));
    };
    let mut output = dispatch(tool, arguments, ctx)
        .await
        .unwrap_or_else(|message| ToolOutput::error(format!("{name}: {message}")));
    if output.content.len() > MAX_CONTENT_BYTES {
        output.content = output::truncate_middle(&output.content, MAX_CONTENT_BYTES);
    }
    output
}

async fn dispatch(
    tool: Tool,
    arguments: &serde_json::Value,
    ctx: &ToolContext<'_>,
) -> Result<ToolOutput, String> {
    let args = Args::parse(arguments)?;
    let workspace = Workspace::new(ctx.root).map_err(|err| {
        format!("the workspace root {} is not accessible: {err}", ctx.root.display())
    })?;
    let cancel = ctx.cancel.clone();
    let handle = match tool {
        Tool::Shell => {
            let sandbox = ctx.sandbox.cloned();
            AbortOnDrop(tokio::spawn(shell::run(args, workspace, sandbox, cancel)))
        }
        Tool::ReadFile => blocking(move || read_file::run(&args, &workspace)),
        Tool::WriteFile => blocking(move || write_file::run(&args, &workspace)),
        Tool::EditFile => blocking(move || edit_file::run(&args, &workspace)),
        Tool::Glob => blocking(move || glob::run(&args, &workspace, &cancel)),
        Tool::Grep => blocking(move || grep::run(&args, &workspace, &cancel)),
    };
    join(handle).await
}

/// The file tools do blocking I/O, so they run on tokio's blocking pool.
fn blocking<F>(tool: F) -> AbortOnDrop<Result<ToolOutput, String>>
where
    F: FnOnce() -> Result<ToolOutput, String> + Send + 'static,
{
    AbortOnDrop(tokio::task::spawn_blocking(tool))
}

/// Aborts the task when the caller stops waiting for it (its future was dropped), so a
/// `shell` command is killed rather than left running unobserved. Blocking tasks cannot
/// be aborted and simply finish.
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Waits for a tool's task, turning a panic inside it into an error for the model.
async fn join(mut handle: AbortOnDrop<Result<ToolOutput, String>>) -> Result<ToolOutput, String> {
    match (&mut handle.0).await {
        Ok(result) => result,
        Err(err) if err.is_panic() => Err(format!(
            "the tool failed with an internal error ({}); this is a bug in cairn, not in the call",
            panic_message(err.into_panic())
        )),
        Err(_) => Err("the tool was cancelled".to_string()),
    }
}

fn panic_message(payload: Box<dyn Any + Send>) -> String {
    match payload.downcast::<String>() {
        Ok(message) => *message,
        Err(payload) => {
            payload.downcast_ref::<&str>().map_or("panic".to_string(), |s| s.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    async fn call(root: &Path, name: &str, arguments: serde_json::Value) -> ToolOutput {
        let cancel = CancellationToken::new();
        run(name, &arguments, &ToolContext { root, sandbox: None, cancel: &cancel }).await
    }

    #[test]
    fn specs_have_the_spec_names_and_required_arguments() {
        let specs = specs();
        let summary: Vec<(&str, serde_json::Value, Access)> =
            specs.iter().map(|s| (s.name, s.parameters["required"].clone(), s.access)).collect();
        assert_eq!(
            summary,
            vec![
                ("read_file", json!(["path"]), Access::Read),
                ("write_file", json!(["path", "content"]), Access::Write),
                ("edit_file", json!(["path", "old_string", "new_string"]), Access::Write),
                ("glob", json!(["pattern"]), Access::Read),
                ("grep", json!(["pattern"]), Access::Read),
                ("shell", json!(["command"]), Access::Shell),
            ]
        );
        let optional: Vec<Vec<&String>> = specs
            .iter()
            .map(|s| s.parameters["properties"].as_object().unwrap().keys().collect())
            .collect();
        assert_eq!(optional[0], ["limit", "offset", "path"]);
        assert_eq!(optional[2], ["new_string", "old_string", "path", "replace_all"]);
        assert_eq!(optional[4], ["glob", "path", "pattern"]);
        assert_eq!(optional[5], ["command", "timeout_ms"]);
        for spec in &specs {
            assert_eq!(spec.parameters["type"], "object", "{}", spec.name);
            assert!(!spec.description.is_empty());
        }
    }

    #[tokio::test]
    async fn unknown_tools_and_malformed_arguments_are_errors_naming_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let out = call(dir.path(), "delete_everything", json!({})).await;
        assert!(out.is_error);
        assert!(
            out.content.starts_with("unknown tool `delete_everything`; the tools are: read_file, "),
            "{}",
            out.content
        );

        let out = call(dir.path(), "read_file", json!([1])).await;
        assert!(out.is_error);
        assert_eq!(out.content, "read_file: arguments must be a JSON object, got an array ([1])");

        let out = call(dir.path(), "write_file", json!({"path": "a.txt"})).await;
        assert!(out.is_error);
        assert_eq!(out.content, "write_file: missing required field `content` (a string)");
        assert!(!dir.path().join("a.txt").exists());

        let out = call(dir.path(), "shell", json!({"command": ["ls"]})).await;
        assert_eq!(out.content, "shell: `command` must be a string, got an array ([\"ls\"])");
    }

    #[tokio::test]
    async fn a_missing_workspace_root_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let out = call(&dir.path().join("gone"), "read_file", json!({"path": "a"})).await;
        assert!(out.is_error && out.content.contains("is not accessible"), "{}", out.content);
    }

    #[tokio::test]
    async fn a_panic_inside_a_tool_is_reported_not_propagated() {
        let handle = tokio::task::spawn_blocking(|| -> Result<ToolOutput, String> {
            panic!("index out of bounds")
        });
        let err = join(AbortOnDrop(handle)).await.unwrap_err();
        assert!(err.contains("internal error (index out of bounds)"), "{err}");
    }
}
