//! `cairn mcp list [--json]`: the configured MCP servers, whether each starts, and the
//! tools it offers the model. Each enabled server is started, asked for its tools, and
//! stopped again, so this is also the way to check a new server's configuration.

use std::process::ExitCode;

use serde_json::{Value, json};

use super::CommandError;
use super::common::print_json;
use super::config::config_error;
use super::launch;
use crate::checkpoint::{Store, StoreOptions};
use crate::config::{self, Env, Flags};
use crate::mcp::{ServerReport, Status};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Subcommand,
}

#[derive(Debug, clap::Subcommand)]
enum Subcommand {
    /// Start each configured server, list its tools, and stop it.
    List(ListArgs),
}

#[derive(Debug, clap::Args)]
struct ListArgs {
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> Result<ExitCode, CommandError> {
    match args.command {
        Subcommand::List(args) => list(args),
    }
}

fn list(args: ListArgs) -> Result<ExitCode, CommandError> {
    let cwd = std::env::current_dir()?;
    let project = super::config::project_at(&cwd);
    let env = Env::from_process();
    let config = config::load(project.as_ref(), &env, &Flags::default()).map_err(config_error)?;
    if let Some(notice) = config.project.as_ref().and_then(config::ProjectFile::notice) {
        eprintln!("warning: {notice}");
    }
    // Outside a repository there is no git directory to protect, and the project root (or
    // the current directory) is the workspace.
    let (root, git_dirs) = match Store::discover(&cwd, StoreOptions::default()) {
        Ok(store) => (store.root().to_path_buf(), launch::git_dirs(&store)),
        Err(_) => (project.map_or(cwd, |project| project.root), Vec::new()),
    };
    let servers: Vec<_> = config
        .mcp
        .values()
        .map(|server| {
            let settings = config.sandbox.for_server(&server.sandbox);
            (server.clone(), launch::sandbox_plan(&settings, &env, &root, &git_dirs))
        })
        .collect();
    let runtime = launch::runtime()?;
    runtime.block_on(async {
        let launch = crate::mcp::Launch { root };
        let mut hub = crate::mcp::McpHub::start(servers, launch).await;
        let servers = hub.servers();
        let printed = if args.json {
            print_json(&json!({"servers": servers.iter().map(server_json).collect::<Vec<_>>()}))
        } else {
            print!("{}", to_text(&servers));
            Ok(())
        };
        hub.shutdown().await;
        printed
    })?;
    Ok(ExitCode::SUCCESS)
}

fn to_text(servers: &[ServerReport<'_>]) -> String {
    if servers.is_empty() {
        return "no MCP servers are configured; add an [mcp.<name>] table to your config \
                (see the README's \"MCP servers\")\n"
            .to_owned();
    }
    let mut out = String::new();
    for server in servers {
        let config = server.config;
        let command_line = std::iter::once(&config.command.value)
            .chain(&config.args.value)
            .cloned()
            .collect::<Vec<_>>()
            .join(" ");
        out.push_str(&format!("{}: {}\n", config.name, server.status.describe()));
        out.push_str(&format!("  command: {command_line}\n"));
        if config.enabled.value {
            out.push_str(&format!("  sandbox: {}\n", server.sandbox.describe()));
        }
        if server.status == Status::Started {
            let noun = if server.tools.len() == 1 { "tool" } else { "tools" };
            out.push_str(&format!("  {} {noun}\n", server.tools.len()));
        }
        let width = server.tools.iter().map(|tool| tool.name.len()).max().unwrap_or(0);
        for tool in &server.tools {
            let summary = tool.description.lines().next().unwrap_or_default();
            let summary: String = summary.chars().take(80).collect();
            out.push_str(format!("    {:width$}  {summary}", tool.name).trim_end());
            out.push('\n');
        }
        for note in server.notes {
            out.push_str(&format!("  note: {note}\n"));
        }
    }
    out
}

fn server_json(server: &ServerReport<'_>) -> Value {
    let config = server.config;
    let reason = match &server.status {
        Status::Failed(reason) | Status::Down(reason) => Some(reason.clone()),
        Status::Started | Status::Disabled => None,
    };
    json!({
        "name": config.name,
        "command": config.command.value,
        "args": config.args.value,
        "enabled": config.enabled.value,
        "status": server.status.kind(),
        "sandbox": {
            "confined": server.sandbox.confinement().is_some(),
            "description": server.sandbox.describe(),
        },
        "error": reason,
        "tools": server.tools.iter().map(|tool| json!({
            "name": tool.name,
            "tool": tool.tool,
            "description": tool.description,
            "input_schema": tool.input_schema,
        })).collect::<Vec<_>>(),
        "notes": server.notes,
    })
}
