//! `cairn blame FILE [--at CHECKPOINT] [--json[=agent-trace]]`: for each line, the session
//! step that last wrote it, or the base commit when no step did; or the same attribution
//! as an Agent Trace record (`crate::history::agent_trace`).

use std::path::Path;
use std::process::ExitCode;

use super::CommandError;
use super::common::{open_store, print_json};
use crate::history::agent_trace;
use crate::history::blame::{self, Origin};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The file, as it is in the workspace (or at `--at`).
    file: std::path::PathBuf,
    /// Blame the file as it was at this checkpoint instead.
    #[arg(long)]
    at: Option<String>,
    /// Print JSON: one object per line of the file, in a list (`lines`, the default), or
    /// one Agent Trace record (`agent-trace`).
    #[arg(long, value_enum, value_name = "FORM", num_args = 0..=1, require_equals = true, default_missing_value = "lines")]
    json: Option<JsonForm>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum JsonForm {
    Lines,
    AgentTrace,
}

pub fn run(args: Args) -> Result<ExitCode, CommandError> {
    let store = open_store()?;
    let path = workspace_path(store.root(), &args.file)?;
    let mut revision = None;
    let (content, until) = match &args.at {
        Some(name) => {
            let checkpoint = store.resolve(name)?;
            revision = Some(checkpoint.commit);
            let tree = store.step_tree(checkpoint.commit)?;
            let bytes = store
                .blob_at(tree, &path)
                .ok()
                .flatten()
                .ok_or_else(|| CommandError::user(format!("{path} is not a file at {name}")))?;
            let recorded = blame::recorded_at_ms(&store, checkpoint.commit)?;
            let until = recorded.unwrap_or(store.step_summary(checkpoint.commit)?.time * 1000);
            (bytes, Some(until))
        }
        None => (
            std::fs::read(store.root().join(&path))
                .map_err(|err| CommandError::user(format!("cannot read {path}: {err}")))?,
            None,
        ),
    };
    if crate::text::is_binary(&content) {
        return Err(CommandError::user(format!("{path} is a binary file")));
    }
    let lines = blame::blame(&store, &path, &String::from_utf8_lossy(&content), until)?;
    match args.json {
        Some(JsonForm::Lines) => {
            print_json(&lines)?;
            return Ok(ExitCode::SUCCESS);
        }
        Some(JsonForm::AgentTrace) => {
            let file = agent_trace::Attributed { path, lines, covered: None };
            print_json(&agent_trace::record(&store, &[file], revision)?)?;
            return Ok(ExitCode::SUCCESS);
        }
        None => {}
    }
    let labels: Vec<String> = lines.iter().map(|line| label(&line.origin)).collect();
    let width = labels.iter().map(String::len).max().unwrap_or(0);
    let digits = lines.len().to_string().len();
    for (line, label) in lines.iter().zip(labels) {
        let text = crate::text::terminal_safe(&line.text);
        println!("{label:<width$} {:>digits$}) {text}", line.number);
    }
    Ok(ExitCode::SUCCESS)
}

fn label(origin: &Origin) -> String {
    match origin {
        Origin::Step { session, step, kind, .. } => format!("{session}@{step} {kind}"),
        Origin::Base { commit } => format!("base {}", &commit[..commit.len().min(10)]),
        Origin::Workspace => "(not recorded)".to_string(),
    }
}

/// `file` (relative to the current directory) as a `/`-separated workspace path.
fn workspace_path(root: &Path, file: &Path) -> Result<String, CommandError> {
    let cwd = std::env::current_dir()?;
    let absolute = cwd.join(file);
    let parent = absolute.parent().unwrap_or(&absolute);
    let parent = parent.canonicalize().unwrap_or_else(|_| parent.to_path_buf());
    let root = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
    let name = absolute.file_name().ok_or_else(|| CommandError::user("name a file"))?;
    let relative =
        parent.join(name).strip_prefix(&root).map(Path::to_path_buf).map_err(|_| {
            CommandError::user(format!("{} is outside the workspace", file.display()))
        })?;
    Ok(relative.to_string_lossy().replace('\\', "/"))
}
