//! A project's `cairn.toml`: what an untrusted one may not set (taken out, with the
//! reason), and the report of every key it set and whether it applied.

use std::path::PathBuf;

use super::file::{FileConfig, FileLimits, FileMcp, FileMemory, FileSandbox, parse_file};
use super::{Config, ConfigError, McpServer, SandboxSettings, Source, Trust, format_size, trust};

/// What configuration made of a project's `cairn.toml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectFile {
    pub path: PathBuf,
    pub trust: Trust,
    /// Every key the file sets (dotted, e.g. `mcp.fs.tools`), sorted.
    pub keys: Vec<ProjectKey>,
    /// The keys left out (or cut down) because the file is not trusted.
    pub ignored: Vec<Ignored>,
}

/// One key of a project file and whether it took effect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectKey {
    pub key: String,
    pub applied: bool,
    /// Why it was ignored, or how it was cut down.
    pub note: Option<String>,
}

/// A key (or table) of an untrusted project file that did not apply as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ignored {
    /// Dotted, e.g. `provider.evil` for a whole table, `mcp.fs.command` for one key.
    pub key: String,
    pub reason: String,
    /// Applied in part: `tools` cut down to the names the user's list allows.
    pub partly: bool,
}

impl ProjectFile {
    /// The one notice a session gives about an untrusted project file that tried to set
    /// more than it may: which keys were ignored, from which file, and what to do.
    pub fn notice(&self) -> Option<String> {
        if self.ignored.is_empty() {
            return None;
        }
        let keys: Vec<String> = self
            .ignored
            .iter()
            .map(|ignored| {
                if ignored.partly {
                    format!("{} ({})", ignored.key, ignored.reason)
                } else {
                    ignored.key.clone()
                }
            })
            .collect();
        let why = match &self.trust {
            Trust::OriginChanged { trusted, now } => format!(
                "was trusted while its origin was {}, but its origin is now {}, so that trust \
                 no longer holds",
                trusted.as_deref().map_or("(none)".into(), trust::printable),
                now.as_deref().map_or("(none)".into(), trust::printable)
            ),
            Trust::Trusted | Trust::Untrusted => "is not trusted".to_owned(),
        };
        Some(format!(
            "{} {why}, so cairn ignored: {}. If you trust this repository, run `cairn trust` in \
             it to apply the file in full (`cairn config show` lists every key).",
            self.path.display(),
            keys.join(", ")
        ))
    }
}

impl Config {
    /// Applies a project's `cairn.toml`: in full when `trust` says so, else only the keys
    /// that make cairn more careful ([`Config::restrict`]).
    pub(super) fn apply_project_file(
        &mut self,
        text: &str,
        path: PathBuf,
        trust: Trust,
    ) -> Result<(), ConfigError> {
        let source = Source::ProjectFile(path.clone());
        let mut file = parse_file(text, &source)?;
        let ignored = if trust.is_trusted() { Vec::new() } else { self.restrict(&mut file) };
        // The file parsed as a `FileConfig`, so it parses as a table.
        let table: toml::Table = toml::from_str(text).unwrap_or_default();
        let keys = project_keys(&table, &ignored);
        self.apply_parsed(file, text, source)?;
        self.project = Some(ProjectFile { path, trust, keys, ignored });
        Ok(())
    }

    /// Takes out of an untrusted project file what it may not set, saying what and why.
    fn restrict(&self, file: &mut FileConfig) -> Vec<Ignored> {
        // Named without `..`, so a key added to `FileConfig` does not compile until it is
        // decided here whether a project may set it: the safe answer must be a choice.
        let FileConfig {
            model: _,
            approval: _,
            provider: _,
            snapshot: _,
            transcript: _,
            memory: _,
            mcp: _,
            sandbox: _,
            limits: _,
        } = file;
        let mut ignored = Vec::new();
        restrict_destination(file, &mut ignored);
        self.restrict_safeguards(file, &mut ignored);
        if let Some(sandbox) = &mut file.sandbox {
            restrict_sandbox("sandbox", sandbox.get_mut(), &self.sandbox, &mut ignored);
        }
        if let Some(memory) = &mut file.memory {
            self.restrict_memory(memory, &mut ignored);
        }
        if let Some(limits) = &mut file.limits {
            self.restrict_limits(limits, &mut ignored);
        }
        file.mcp.retain(|name, entry| self.restrict_mcp(name, entry.get_mut(), &mut ignored));
        ignored
    }

    /// Approval, the new-file size limit and redaction: a project may only tighten them.
    fn restrict_safeguards(&self, file: &mut FileConfig, ignored: &mut Vec<Ignored>) {
        if let Some(approval) = &file.approval
            && approval.get_ref().strictness() < self.approval.value.strictness()
        {
            ignore(
                ignored,
                "approval".into(),
                &format!(
                    "`{}` is looser than `{}`; a project may only make approval stricter",
                    approval.get_ref(),
                    self.approval.value
                ),
            );
            file.approval = None;
        }
        if let Some(snapshot) = &mut file.snapshot
            && let Some(size) = &snapshot.max_new_file_size
            && size.0 > self.max_new_file_size.value
        {
            ignore(
                ignored,
                "snapshot.max_new_file_size".into(),
                &format!(
                    "`{}` is larger than your `{}`; a project may only lower the limit",
                    format_size(size.0),
                    format_size(self.max_new_file_size.value)
                ),
            );
            snapshot.max_new_file_size = None;
        }
        if let Some(snapshot) = &mut file.snapshot
            && snapshot.fsmonitor.is_some_and(|monitor| monitor != super::FsMonitor::None)
        {
            ignore(
                ignored,
                "snapshot.fsmonitor".into(),
                "a project may not start a Watchman watch; it may only turn the monitor off",
            );
            snapshot.fsmonitor = None;
        }
        if let Some(transcript) = &mut file.transcript
            && transcript.redact_secrets == Some(false)
            && self.redact_secrets.value
        {
            transcript.redact_secrets = None;
            ignore(
                ignored,
                "transcript.redact_secrets".into(),
                "a project may not turn redaction off",
            );
        }
    }

    /// `[memory]`: a project may inject less and compact sooner, but not summarize, push or
    /// merge more than the user chose.
    fn restrict_memory(&self, memory: &mut FileMemory, ignored: &mut Vec<Ignored>) {
        // As in `FileConfig` above: a new memory key needs a decision here.
        let FileMemory {
            inject_tokens: _,
            compact_at: _,
            summarize: _,
            push: _,
            merge_on_fetch: _,
        } = memory;
        if memory.summarize == Some(true) && !self.memory.summarize.value {
            memory.summarize = None;
            ignore(ignored, "memory.summarize".into(), "a project may not turn summaries on");
        }
        if let Some(tokens) = memory.inject_tokens
            && tokens > self.memory.inject_tokens.value
        {
            memory.inject_tokens = None;
            ignore(
                ignored,
                "memory.inject_tokens".into(),
                &format!(
                    "{tokens} is more than your {}; a project may only inject less memory",
                    self.memory.inject_tokens.value
                ),
            );
        }
        // An out-of-range value is left for `apply_parsed` to refuse, so it is an error
        // whether or not the project is trusted.
        if let Some(percent) = &memory.compact_at
            && (10..=95).contains(percent.get_ref())
            && *percent.get_ref() > self.memory.compact_at.value
        {
            ignore(
                ignored,
                "memory.compact_at".into(),
                &format!(
                    "{} is more than your {}; a project may only compact sooner",
                    percent.get_ref(),
                    self.memory.compact_at.value
                ),
            );
            memory.compact_at = None;
        }
        if memory.push == Some(true) && !self.memory.push.value {
            memory.push = None;
            ignore(ignored, "memory.push".into(), "a project may not send memory to remotes");
        }
        if memory.merge_on_fetch == Some(true) && !self.memory.merge_on_fetch.value {
            memory.merge_on_fetch = None;
            ignore(
                ignored,
                "memory.merge_on_fetch".into(),
                "a project may not merge remote memory",
            );
        }
    }

    /// `[limits]`: a project may stop a turn sooner than the user would, never later. An
    /// out-of-range value is left for `apply_parsed` to refuse either way.
    fn restrict_limits(&self, limits: &mut FileLimits, ignored: &mut Vec<Ignored>) {
        // As in `FileConfig` above: a new limit needs a decision here.
        let FileLimits { turn_output_tokens: _, turn_seconds: _ } = limits;
        let yours = &self.limits;
        for (key, value, yours) in [
            ("turn_output_tokens", &mut limits.turn_output_tokens, &yours.turn_output_tokens),
            ("turn_seconds", &mut limits.turn_seconds, &yours.turn_seconds),
        ] {
            if let (Some(asked), Some(yours)) = (value.as_ref(), yours)
                && u64::try_from(*asked.get_ref()).is_ok_and(|asked| asked > yours.value)
            {
                ignore(
                    ignored,
                    format!("limits.{key}"),
                    &format!(
                        "{} is more than your {}; a project may only lower a limit",
                        asked.get_ref(),
                        yours.value
                    ),
                );
                *value = None;
            }
        }
    }

    /// One `[mcp.<name>]` table: a project may only narrow a server the user defined.
    /// Returns whether anything of the table is kept.
    fn restrict_mcp(&self, name: &str, entry: &mut FileMcp, ignored: &mut Vec<Ignored>) -> bool {
        let table = format!("mcp.{}", key_part(name));
        let Some(existing) = self.mcp.get(name) else {
            ignore(ignored, table, "a project may not define MCP servers");
            return false;
        };
        // As in `FileConfig` above: a new server key needs a decision here.
        let FileMcp {
            command: _,
            args: _,
            env: _,
            enabled: _,
            tools: _,
            startup_timeout_ms: _,
            tool_timeout_ms: _,
            sandbox: _,
        } = entry;
        let runs = "a project may not change the command a server runs";
        if entry.command.take().is_some() {
            ignore(ignored, format!("{table}.command"), runs);
        }
        if entry.args.take().is_some() {
            ignore(ignored, format!("{table}.args"), runs);
        }
        if entry.env.take().is_some() {
            ignore(ignored, format!("{table}.env"), runs);
        }
        if entry.enabled == Some(true) && !existing.enabled.value {
            entry.enabled = None;
            ignore(
                ignored,
                format!("{table}.enabled"),
                "a project may not enable a disabled server",
            );
        }
        restrict_timeouts(&table, entry, existing, ignored);
        if let Some(sandbox) = &mut entry.sandbox {
            let yours = self.sandbox.for_server(&existing.sandbox);
            restrict_sandbox(&format!("{table}.sandbox"), sandbox.get_mut(), &yours, ignored);
        }
        if let (Some(tools), Some(allowed)) = (&mut entry.tools, &existing.tools) {
            narrow_tools(&table, tools, &allowed.value, ignored);
        }
        true
    }
}

/// `sandbox` (or one server's): a project may confine commands and servers more, never
/// less, than `yours`.
fn restrict_sandbox(
    table: &str,
    sandbox: &mut FileSandbox,
    yours: &SandboxSettings,
    ignored: &mut Vec<Ignored>,
) {
    // As in `FileConfig` above: a new sandbox key needs a decision here.
    let FileSandbox { mode: _, network: _, writable_git: _, writable_paths: _ } = sandbox;
    if let Some(mode) = sandbox.mode
        && mode.strictness() < yours.mode.value.strictness()
    {
        sandbox.mode = None;
        ignore(
            ignored,
            format!("{table}.mode"),
            &format!(
                "`{mode}` is looser than `{}`; a project may only make the sandbox stricter",
                yours.mode.value
            ),
        );
    }
    if sandbox.network == Some(true) && !yours.network.value {
        sandbox.network = None;
        ignore(ignored, format!("{table}.network"), "a project may not allow the network");
    }
    if sandbox.writable_git == Some(true) && !yours.writable_git.value {
        sandbox.writable_git = None;
        ignore(
            ignored,
            format!("{table}.writable_git"),
            "a project may not let the sandbox write the git directory",
        );
    }
    if sandbox.writable_paths.take().is_some() {
        ignore(
            ignored,
            format!("{table}.writable_paths"),
            "a project may not add paths the sandbox can write",
        );
    }
}

/// The model and providers decide where the conversation is sent: a project sets neither.
fn restrict_destination(file: &mut FileConfig, ignored: &mut Vec<Ignored>) {
    if file.model.take().is_some() {
        ignore(ignored, "model".into(), "the model decides where your conversation is sent");
    }
    for name in std::mem::take(&mut file.provider).into_keys() {
        ignore(
            ignored,
            format!("provider.{}", key_part(&name)),
            "a provider decides where your conversation is sent",
        );
    }
}

/// A longer timeout lets a hostile server hang cairn longer, so only a shorter one
/// applies. Zero is left for `apply_mcp` to refuse either way.
fn restrict_timeouts(
    table: &str,
    entry: &mut FileMcp,
    existing: &McpServer,
    ignored: &mut Vec<Ignored>,
) {
    for (key, value, yours) in [
        ("startup_timeout_ms", &mut entry.startup_timeout_ms, &existing.startup_timeout_ms),
        ("tool_timeout_ms", &mut entry.tool_timeout_ms, &existing.tool_timeout_ms),
    ] {
        if let Some(ms) = value
            && *ms.get_ref() > yours.value
        {
            ignore(
                ignored,
                format!("{table}.{key}"),
                &format!(
                    "{} is longer than your {}; a project may only shorten a timeout",
                    ms.get_ref(),
                    yours.value
                ),
            );
            *value = None;
        }
    }
}

/// Cuts a project's `tools` down to the intersection with the user's list.
fn narrow_tools(
    table: &str,
    tools: &mut Vec<String>,
    allowed: &[String],
    ignored: &mut Vec<Ignored>,
) {
    let (kept, dropped): (Vec<String>, Vec<String>) =
        tools.drain(..).partition(|tool| allowed.contains(tool));
    *tools = kept;
    if !dropped.is_empty() {
        ignored.push(Ignored {
            key: format!("{table}.tools"),
            reason: format!(
                "only tools your list allows apply; left out: {}",
                dropped.iter().map(|tool| key_part(tool)).collect::<Vec<_>>().join(", ")
            ),
            partly: true,
        });
    }
}

fn ignore(ignored: &mut Vec<Ignored>, key: String, reason: &str) {
    ignored.push(Ignored { key, reason: reason.to_owned(), partly: false });
}

/// One part of a dotted key as TOML writes it: bare when it can be, else quoted with
/// control characters escaped, so a hostile name cannot reach a terminal raw.
fn key_part(name: &str) -> String {
    let bare =
        !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare { name.to_owned() } else { serde_json::Value::String(name.to_owned()).to_string() }
}

/// Every leaf key of a project file, dotted, with whether it applied.
fn project_keys(table: &toml::Table, ignored: &[Ignored]) -> Vec<ProjectKey> {
    fn walk(prefix: &str, table: &toml::Table, out: &mut Vec<String>) {
        for (name, value) in table {
            let key = if prefix.is_empty() {
                key_part(name)
            } else {
                format!("{prefix}.{}", key_part(name))
            };
            match value {
                toml::Value::Table(inner) if !inner.is_empty() => walk(&key, inner, out),
                _ => out.push(key),
            }
        }
    }
    let mut leaves = Vec::new();
    walk("", table, &mut leaves);
    leaves
        .into_iter()
        .map(|key| {
            let hit = ignored.iter().find(|ignored| {
                key == ignored.key || key.starts_with(&format!("{}.", ignored.key))
            });
            match hit {
                None => ProjectKey { key, applied: true, note: None },
                Some(hit) => {
                    ProjectKey { key, applied: hit.partly, note: Some(hit.reason.clone()) }
                }
            }
        })
        .collect()
}
