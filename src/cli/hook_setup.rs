//! `cairn hook install|uninstall|status`: cairn's hooks in the agents' own settings files
//! (the edits themselves are `crate::hooks::install`).
//!
//! `--project` (the default) edits the repository's file (`.claude/settings.json`,
//! `.codex/config.toml`, `.gemini/settings.json`); `--user` the one in the user's home
//! for every project. A project file is written only as a regular file inside the
//! repository: a cloned repository's `.claude` that is a symbolic link to elsewhere is
//! refused. Each write keeps the file as it was in `<file>.cairn-backup`, and goes
//! through a temporary file renamed into place.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::Serialize;

use crate::checkpoint::{Store, StoreOptions};
use crate::config::Env;
use crate::hooks::install::{self, Change};
use crate::hooks::{self, AgentKind};

use super::CommandError;
use super::common::print_json;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Add cairn's recommended hooks to an agent's settings file, keeping what is there.
    Install(InstallArgs),
    /// Take out the hooks `cairn hook install` adds, and nothing else.
    Uninstall(Target),
    /// Per agent: whether cairn's hooks are configured, trusted, and when they last fired.
    Status(StatusArgs),
}

#[derive(Debug, clap::Args)]
pub struct Target {
    /// The agent: claude-code, codex or gemini.
    agent: String,
    /// The repository's settings file (the default).
    #[arg(long, conflicts_with = "user")]
    project: bool,
    /// The settings file in your home directory, for every project.
    #[arg(long)]
    user: bool,
}

#[derive(Debug, clap::Args)]
pub struct InstallArgs {
    #[command(flatten)]
    target: Target,
    /// Print the configuration to add by hand instead of writing anything.
    #[arg(long)]
    print: bool,
}

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// One agent (claude-code, codex or gemini); all three when absent.
    agent: Option<String>,
    /// One JSON object on stdout.
    #[arg(long)]
    json: bool,
}

pub fn run(command: Command) -> Result<(), CommandError> {
    match command {
        Command::Install(args) => install(args),
        Command::Uninstall(target) => uninstall(target),
        Command::Status(args) => status(args),
    }
}

fn agent_named(name: &str) -> Result<AgentKind, CommandError> {
    AgentKind::from_name(name).ok_or_else(|| {
        CommandError::user(format!("unknown agent '{name}'"))
            .with_hint("name claude-code, codex or gemini")
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Scope {
    Project,
    User,
}

/// Where the agent's settings live for this command.
struct Places {
    env: Env,
    /// The repository's top directory, when the command runs inside one.
    root: Option<PathBuf>,
    store: Option<Store>,
}

impl Places {
    fn here() -> Result<Places, CommandError> {
        let cwd = std::env::current_dir()?;
        let store = Store::discover(&cwd, StoreOptions::default()).ok();
        let root = store.as_ref().map(|store| store.root().to_path_buf());
        Ok(Places { env: Env::from_process(), root, store })
    }

    fn home(&self) -> Result<PathBuf, CommandError> {
        self.env.get("HOME").map(PathBuf::from).filter(|home| home.is_absolute()).ok_or_else(|| {
            CommandError::user("HOME is not set to an absolute path, so --user has no file")
        })
    }

    /// The agent's own directory in the home (`CLAUDE_CONFIG_DIR`, `CODEX_HOME` honored).
    fn user_dir(&self, agent: AgentKind) -> Result<PathBuf, CommandError> {
        let (variable, default) = match agent {
            AgentKind::ClaudeCode => (Some("CLAUDE_CONFIG_DIR"), ".claude"),
            AgentKind::Codex => (Some("CODEX_HOME"), ".codex"),
            AgentKind::Gemini => (None, ".gemini"),
        };
        let set = variable.and_then(|var| self.env.get(var)).map(PathBuf::from);
        match set.filter(|dir| dir.is_absolute()) {
            Some(dir) => Ok(dir),
            None => Ok(self.home()?.join(default)),
        }
    }

    fn file(&self, agent: AgentKind, scope: Scope) -> Result<PathBuf, CommandError> {
        let name = settings_name(agent);
        match scope {
            Scope::User => Ok(self.user_dir(agent)?.join(name)),
            Scope::Project => {
                let root = self.root.as_ref().ok_or_else(|| {
                    CommandError::user("not inside a git repository")
                        .with_hint("run it in the repository, or pass --user for every project")
                })?;
                Ok(root.join(project_dir(agent)).join(name))
            }
        }
    }
}

fn project_dir(agent: AgentKind) -> &'static str {
    match agent {
        AgentKind::ClaudeCode => ".claude",
        AgentKind::Codex => ".codex",
        AgentKind::Gemini => ".gemini",
    }
}

fn settings_name(agent: AgentKind) -> &'static str {
    match agent {
        AgentKind::Codex => "config.toml",
        _ => "settings.json",
    }
}

fn scope_of(target: &Target) -> Scope {
    if target.user { Scope::User } else { Scope::Project }
}

/// The largest settings file cairn edits.
const MAX_SETTINGS_BYTES: u64 = 4 * 1024 * 1024;

/// The settings file to edit and its text (`None`: it does not exist yet). A project
/// file must be a regular file under a real directory of the repository; a user file
/// may be a symbolic link (dotfiles), which is followed and the file it names edited.
fn read_settings(path: &Path, scope: Scope) -> Result<(PathBuf, Option<String>), CommandError> {
    let shown = path.display();
    if scope == Scope::Project {
        for link in [path.parent(), Some(path)].into_iter().flatten() {
            if std::fs::symlink_metadata(link).is_ok_and(|meta| meta.file_type().is_symlink()) {
                return Err(CommandError::user(format!(
                    "{} is a symbolic link; cairn writes a project's settings only as a regular file inside the repository",
                    link.display()
                ))
                .with_hint("edit the file it points to by hand, or use --user"));
            }
        }
    }
    let path = match std::fs::canonicalize(path) {
        Ok(target) => target,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok((path.into(), None)),
        Err(err) => {
            return Err(CommandError::user(format!("cannot read {shown}: {err}")));
        }
    };
    let meta = std::fs::metadata(&path)
        .map_err(|err| CommandError::user(format!("cannot read {shown}: {err}")))?;
    if !meta.is_file() {
        return Err(CommandError::user(format!("{shown} is not a regular file")));
    }
    if meta.len() > MAX_SETTINGS_BYTES {
        return Err(CommandError::user(format!(
            "{shown} is larger than 4 MiB; not a settings file"
        )));
    }
    let text = std::fs::read_to_string(&path)
        .map_err(|err| CommandError::user(format!("cannot read {shown}: {err}")))?;
    Ok((path, Some(text)))
}

/// The backup of `path` a write leaves.
fn backup_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".cairn-backup");
    path.with_file_name(name)
}

/// Writes `text` to `path` through a temporary file renamed into place, keeping the old
/// file (when there is one) as its backup and its permissions; returns the backup.
fn write_settings(path: &Path, text: &str, existed: bool) -> Result<Option<PathBuf>, CommandError> {
    use std::io::Write;
    let failed =
        |err: std::io::Error| CommandError::user(format!("cannot write {}: {err}", path.display()));
    let dir =
        path.parent().ok_or_else(|| CommandError::internal("a settings path has a parent"))?;
    std::fs::create_dir_all(dir).map_err(failed)?;
    let backup = if existed {
        let backup = backup_path(path);
        std::fs::copy(path, &backup).map_err(failed)?;
        Some(backup)
    } else {
        None
    };
    let mut file = tempfile::NamedTempFile::new_in(dir).map_err(failed)?;
    file.write_all(text.as_bytes()).map_err(failed)?;
    let permissions = match std::fs::metadata(path) {
        Ok(meta) => meta.permissions(),
        Err(_) => std::os::unix::fs::PermissionsExt::from_mode(0o644),
    };
    file.as_file().set_permissions(permissions).map_err(failed)?;
    file.as_file().sync_all().map_err(failed)?;
    file.persist(path).map_err(|err| failed(err.error))?;
    Ok(backup)
}

fn edit_error(agent: AgentKind, path: &Path, err: install::InstallError) -> CommandError {
    CommandError::user(format!("cairn does not edit {}: {err}", path.display())).with_hint(format!(
        "fix it, or add the hooks by hand: `cairn hook install {} --print` shows them",
        agent.name()
    ))
}

fn install(args: InstallArgs) -> Result<(), CommandError> {
    let agent = agent_named(&args.target.agent)?;
    if args.print {
        print!("{}", install::snippet(agent));
        return Ok(());
    }
    let places = Places::here()?;
    let scope = scope_of(&args.target);
    let (path, text) = read_settings(&places.file(agent, scope)?, scope)?;
    let change =
        install::install(agent, text.as_deref()).map_err(|err| edit_error(agent, &path, err))?;
    if change.events.is_empty() {
        println!(
            "cairn's {} hooks are already in {}; nothing changed",
            agent.title(),
            path.display()
        );
    } else {
        let backup = write_settings(&path, &change.text, text.is_some())?;
        say_changed("added", &change, &path, backup.as_deref());
    }
    println!("next: {}", next_step(agent, scope, &places, &path));
    Ok(())
}

fn uninstall(target: Target) -> Result<(), CommandError> {
    let agent = agent_named(&target.agent)?;
    let places = Places::here()?;
    let scope = scope_of(&target);
    let (path, text) = read_settings(&places.file(agent, scope)?, scope)?;
    let Some(text) = text else {
        println!("there is no {}; nothing to remove", path.display());
        return Ok(());
    };
    let change = install::uninstall(agent, &text).map_err(|err| edit_error(agent, &path, err))?;
    if change.events.is_empty() {
        println!("{} holds none of the hooks cairn installs; nothing changed", path.display());
        return Ok(());
    }
    let backup = write_settings(&path, &change.text, true)?;
    say_changed("removed", &change, &path, backup.as_deref());
    Ok(())
}

fn say_changed(verb: &str, change: &Change, path: &Path, backup: Option<&Path>) {
    let backup = backup.map(|b| format!(" (as it was: {})", b.display())).unwrap_or_default();
    println!(
        "{verb} cairn's hooks for {} {} {}{backup}",
        change.events.join(", "),
        if verb == "added" { "to" } else { "from" },
        path.display()
    );
}

/// The one thing the user must still do for the hooks to run.
fn next_step(agent: AgentKind, scope: Scope, places: &Places, path: &Path) -> String {
    match agent {
        AgentKind::ClaudeCode => {
            "Claude Code reads its hooks when a session starts: start a new session (`/hooks` shows them)"
                .into()
        }
        AgentKind::Codex => {
            let mut step = String::from(
                "Codex runs hooks only once you trust them: open `/hooks` in Codex (or answer \"Hooks need review\" with \"Trust all\"); `codex exec` needs --dangerously-bypass-hook-trust",
            );
            if scope == Scope::Project {
                step.push_str(&format!(
                    "; Codex reads {} only in a folder you trust",
                    path.display()
                ));
            }
            step
        }
        AgentKind::Gemini => match (&places.root, gemini_trust(places)) {
            (Some(root), Some(true)) => {
                format!("nothing: Gemini CLI already trusts {}", root.display())
            }
            (root, _) => format!(
                "Gemini CLI loads hooks only in a folder you trust: trust {} when Gemini asks (or with `/permissions`); `gemini -p` exits 55 in an untrusted folder",
                root.as_deref().map_or_else(|| "each project".to_string(), |r| r.display().to_string())
            ),
        },
    }
}

/// Gemini CLI's trust of the repository, from `~/.gemini/trustedFolders.json`.
fn gemini_trust(places: &Places) -> Option<bool> {
    let root = places.root.as_ref()?;
    let file = places.user_dir(AgentKind::Gemini).ok()?.join("trustedFolders.json");
    install::gemini_trusts(&std::fs::read_to_string(file).ok()?, root)
}

#[derive(Debug, Serialize)]
struct AgentStatus {
    agent: &'static str,
    files: Vec<FileStatus>,
    /// Codex: how many of cairn's hooks were reviewed; Gemini: whether the folder is
    /// trusted; `None` where cairn cannot tell.
    #[serde(skip_serializing_if = "Option::is_none")]
    reviewed: Option<Reviewed>,
    /// Gemini: the repository whose folder trust `folder_trusted` is.
    #[serde(skip_serializing_if = "Option::is_none")]
    folder: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    folder_trusted: Option<bool>,
    /// When a hook of this agent last recorded a step in this repository.
    last_recorded_unix: Option<i64>,
}

#[derive(Debug, Serialize)]
struct FileStatus {
    scope: Scope,
    path: PathBuf,
    exists: bool,
    /// The recommended events a cairn hook covers, and those none does.
    configured: Vec<String>,
    missing: Vec<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

#[derive(Debug, Serialize)]
struct Reviewed {
    reviewed: usize,
    of: usize,
}

fn status(args: StatusArgs) -> Result<(), CommandError> {
    let agents = match &args.agent {
        Some(name) => vec![agent_named(name)?],
        None => AgentKind::ALL.to_vec(),
    };
    let places = Places::here()?;
    let all: Vec<AgentStatus> =
        agents.into_iter().map(|agent| agent_status(agent, &places)).collect();
    if args.json {
        return print_json(&serde_json::json!({ "agents": all }));
    }
    let now =
        SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    for (index, status) in all.iter().enumerate() {
        if index > 0 {
            println!();
        }
        print_status(status, now);
    }
    Ok(())
}

fn agent_status(agent: AgentKind, places: &Places) -> AgentStatus {
    let mut files = Vec::new();
    let mut found_in = Vec::new();
    for scope in [Scope::Project, Scope::User] {
        let Ok(path) = places.file(agent, scope) else { continue };
        let read = read_settings(&path, scope);
        let mut file = FileStatus {
            scope,
            path: path.clone(),
            exists: false,
            configured: Vec::new(),
            missing: install::recommended(agent).iter().map(|hook| hook.event).collect(),
            error: None,
        };
        match read {
            Ok((_, None)) => {}
            Ok((_, Some(text))) => {
                file.exists = true;
                match install::find(agent, &text) {
                    Ok(found) => {
                        file.missing = found.missing(agent);
                        let mut events: Vec<String> =
                            found.handlers.iter().map(|(event, _, _)| event.clone()).collect();
                        events.dedup();
                        file.configured = events;
                        found_in.push((path, found));
                    }
                    Err(err) => file.error = Some(err.to_string()),
                }
            }
            Err(err) => {
                file.exists = path.exists();
                file.error = Some(err.to_string());
            }
        }
        files.push(file);
    }
    let reviewed = (agent == AgentKind::Codex && !found_in.is_empty()).then(|| {
        let user_config = places
            .user_dir(agent)
            .ok()
            .and_then(|dir| std::fs::read_to_string(dir.join("config.toml")).ok())
            .unwrap_or_default();
        let keys = install::codex_reviewed(&user_config);
        let handlers: Vec<String> = found_in
            .iter()
            .flat_map(|(path, found)| {
                found.handlers.iter().map(move |(event, group, index)| {
                    install::codex_review_key(path, event, *group, *index)
                })
            })
            .collect();
        Reviewed {
            reviewed: handlers.iter().filter(|key| keys.contains(*key)).count(),
            of: handlers.len(),
        }
    });
    let folder = places.root.clone().filter(|_| agent == AgentKind::Gemini);
    let folder_trusted = folder.as_ref().and_then(|_| gemini_trust(places));
    let last_recorded_unix =
        places.store.as_ref().and_then(|store| hooks::last_recorded(store, agent)).and_then(
            |time| time.duration_since(SystemTime::UNIX_EPOCH).ok().map(|d| d.as_secs() as i64),
        );
    AgentStatus { agent: agent.name(), files, reviewed, folder, folder_trusted, last_recorded_unix }
}

fn print_status(status: &AgentStatus, now: i64) {
    let agent = AgentKind::from_name(status.agent).map_or(status.agent, AgentKind::title);
    println!("{agent}");
    let mut configured = false;
    for file in &status.files {
        let scope = match file.scope {
            Scope::Project => "project",
            Scope::User => "user",
        };
        let state = match (&file.error, file.exists, file.configured.is_empty()) {
            (Some(error), _, _) => format!("unreadable: {error}"),
            (None, false, _) => "no file".to_string(),
            (None, true, true) => "no cairn hooks".to_string(),
            (None, true, false) if file.missing.is_empty() => {
                format!("configured ({})", file.configured.join(", "))
            }
            (None, true, false) => format!(
                "configured ({}), missing {}",
                file.configured.join(", "),
                file.missing.join(", ")
            ),
        };
        configured |= !file.configured.is_empty();
        println!("  {scope:<8} {}: {state}", file.path.display());
    }
    if !configured {
        println!("  not configured: `cairn hook install {}` adds the hooks", status.agent);
    }
    if let Some(Reviewed { reviewed, of }) = status.reviewed {
        let advice = if reviewed < of { "; trust the rest in Codex's `/hooks`" } else { "" };
        println!("  trusted  {reviewed} of {of} reviewed in Codex{advice}");
    }
    if let Some(folder) = &status.folder {
        let trust = match status.folder_trusted {
            Some(true) => "trusted",
            Some(false) => "marked not to trust: Gemini CLI runs no hooks there",
            None => "not trusted yet: trust it when Gemini CLI asks",
        };
        println!("  trusted  {} is {trust}", folder.display());
    }
    let last = match status.last_recorded_unix {
        Some(time) => super::sessions::age(now - time),
        None => "never in this repository".to_string(),
    };
    println!("  last recorded a step: {last}");
}
