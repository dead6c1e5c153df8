//! `cairn init`: create a git repository, as `git init` would.

use std::process::ExitCode;

use super::CommandError;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where to create the repository (default: the current directory).
    path: Option<std::path::PathBuf>,
}

pub fn run(args: Args) -> Result<ExitCode, CommandError> {
    let path = match args.path {
        Some(path) => path,
        None => std::env::current_dir()?,
    };
    if let Ok(repo) = gix::discover(&path)
        && repo.workdir().is_some_and(|dir| same_dir(dir, &path))
    {
        println!("Already a git repository: {}", path.display());
        return Ok(ExitCode::SUCCESS);
    }
    gix::init(&path).map_err(|err| {
        CommandError::user(format!("could not create a repository at {}: {err}", path.display()))
    })?;
    println!("Initialized an empty git repository in {}", path.join(".git").display());
    Ok(ExitCode::SUCCESS)
}

fn same_dir(a: &std::path::Path, b: &std::path::Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}
