//! `cairn trust [PATH] [--revoke] [--list]`: let a repository's `cairn.toml` apply in full
//! (providers, the model, MCP servers), or take that back.
//!
//! Trust is the user's own decision, so it is written to their configuration directory
//! (`trusted.toml` next to the user config), by the repository's canonical path and its
//! origin URL; see [`crate::config::trust`].

use std::path::PathBuf;
use std::process::ExitCode;

use serde_json::json;

use super::CommandError;
use super::common::print_json;
use super::config::{config_error, project_at};
use crate::config::Env;
use crate::config::trust::{self, TrustFile};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The repository (any directory in it); by default the current one.
    path: Option<PathBuf>,
    /// Take the trust back: its cairn.toml applies only its harmless keys again.
    #[arg(long, conflicts_with = "list")]
    revoke: bool,
    /// List the trusted repositories.
    #[arg(long)]
    list: bool,
    /// With --list, print JSON.
    #[arg(long, requires = "list")]
    json: bool,
}

pub fn run(args: Args) -> Result<ExitCode, CommandError> {
    let env = Env::from_process();
    let mut file = TrustFile::for_user(&env).map_err(config_error)?.ok_or_else(|| {
        CommandError::user("there is no user configuration directory to record trust in")
            .with_hint("set HOME (or XDG_CONFIG_HOME, or CAIRN_CONFIG)")
    })?;
    if args.list {
        return list(&file, args.json);
    }
    let dir = match args.path {
        Some(path) => path,
        None => std::env::current_dir()?,
    };
    let project = project_at(&dir).ok_or_else(|| {
        CommandError::user(format!("{} is not in a git repository with a work tree", dir.display()))
            .with_hint("name the repository: `cairn trust <path>`")
    })?;
    let shown = trust::canonical(&project.root);
    if args.revoke {
        if file.revoke(&project.root) {
            file.save().map_err(config_error)?;
            println!(
                "Revoked trust in {}: its cairn.toml applies only its harmless keys again.",
                shown.display()
            );
        } else {
            println!("{} was not trusted; nothing changed.", shown.display());
        }
        return Ok(ExitCode::SUCCESS);
    }
    file.trust(&project);
    file.save().map_err(config_error)?;
    let origin = match &project.origin_url {
        Some(url) => format!("origin {}", trust::printable(url)),
        None => "no origin".to_owned(),
    };
    println!(
        "Trusted {} ({origin}): its cairn.toml now applies in full, providers and MCP servers \
         included, while its origin stays the same. `cairn trust --revoke` undoes it.",
        shown.display()
    );
    println!("Recorded in {}.", file.path.display());
    Ok(ExitCode::SUCCESS)
}

fn list(file: &TrustFile, json: bool) -> Result<ExitCode, CommandError> {
    if json {
        let entries: Vec<_> = file
            .entries
            .iter()
            .map(|entry| {
                json!({
                    "path": entry.path.display().to_string(),
                    "origin": entry.origin,
                    "trusted_at": entry.trusted_at,
                })
            })
            .collect();
        print_json(&json!({"file": file.path.display().to_string(), "trusted": entries}))?;
        return Ok(ExitCode::SUCCESS);
    }
    if file.entries.is_empty() {
        println!("No repository is trusted ({}).", file.path.display());
    }
    for entry in &file.entries {
        let origin = entry.origin.as_deref().map_or("(no origin)".into(), trust::printable);
        println!("{}  {origin}  since {}", entry.path.display(), entry.trusted_at);
    }
    Ok(ExitCode::SUCCESS)
}
