//! Configuration: TOML files, the environment and command-line flags, merged into one
//! [`Config`] in which every value remembers where it came from.
//!
//! Layers, later ones winning: built-in defaults and providers; the user file
//! (`$XDG_CONFIG_HOME/cairn/config.toml`, else `~/.config/cairn/config.toml`, or the file
//! named by `CAIRN_CONFIG` instead); the project's `cairn.toml` at the repository root;
//! flags. The caller passes the repository root, so this module knows nothing of git;
//! nor of model clients: the CLI turns an [`Endpoint`] into one and probes Ollama.
//! Files are read strictly: an unknown key or a wrong type is an error naming the file,
//! line and column, since a silently ignored typo is worse than a refusal.
//!
//! API keys are never stored here, only the names of the variables holding them; they are
//! read from the environment when a client is built ([`Config::endpoint`]).
//!
//! A project's `cairn.toml` comes with code the user cloned, so until the user runs
//! `cairn trust` ([`trust`]) it may only make cairn more careful: approval stricter than
//! the user's, a `max_new_file_size`, `inject_tokens`, `compact_at`, MCP timeout or
//! `[limits]` turn limit at most the user's, `summarize = false`, `redact_secrets = true`, `push = false`, disabling a
//! server the user defined or narrowing its `tools` (the intersection). It may not choose
//! the model or any provider key, define MCP servers or change their `command`, `args` or
//! `env`, widen `tools`, re-enable a server, raise a limit above the user's, or set
//! `summarize` or `merge_on_fetch = true`. Those keys are left out and listed in
//! [`Config::project`], which `cairn config show` and a notice at session start report;
//! the file is still read strictly, so a typo is an error either way. A trusted project's
//! file applies in full, except that a key is still only sent to a `base_url` that came
//! from a built-in provider or the user's own configuration.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::OnceLock;

use serde::Deserialize;

use crate::sandbox::Mode;

mod apply;
mod file;
mod mcp;
mod project;
mod providers;
mod source;
pub mod trust;

pub use apply::DEFAULT_MAX_OUTPUT_TOKENS;
pub use file::{format_size, parse_size};
pub use mcp::{DEFAULT_MCP_STARTUP_TIMEOUT_MS, DEFAULT_MCP_TOOL_TIMEOUT_MS, McpSandbox, McpServer};
pub use project::{Ignored, ProjectFile, ProjectKey};
pub use providers::{ApiKey, Endpoint, MaxTokensField, Price, Provider, ProviderApi, Reasoning};
pub use source::{Source, Sourced};
pub use trust::{Project, Trust};

/// `[snapshot] fsmonitor`: where snapshots learn what changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum FsMonitor {
    /// Scan the workspace (incrementally, against the stat cache).
    None,
    /// Ask Watchman, which must be installed; scan whenever it cannot answer.
    Watchman,
    /// Ask Watchman when it is installed, else scan.
    Auto,
}

impl TryFrom<String> for FsMonitor {
    type Error = String;

    fn try_from(name: String) -> Result<Self, Self::Error> {
        match name.as_str() {
            "none" => Ok(FsMonitor::None),
            "watchman" => Ok(FsMonitor::Watchman),
            "auto" => Ok(FsMonitor::Auto),
            _ => Err(format!("fsmonitor = \"{name}\" is none of \"none\", \"watchman\", \"auto\"")),
        }
    }
}

impl FsMonitor {
    pub fn as_str(self) -> &'static str {
        match self {
            FsMonitor::None => "none",
            FsMonitor::Watchman => "watchman",
            FsMonitor::Auto => "auto",
        }
    }
}

/// How much the agent may do without asking.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum Approval {
    /// Ask before `shell` and before writes.
    Ask,
    /// Never ask.
    Auto,
    /// No writes, no shell.
    ReadOnly,
}

impl Approval {
    /// How much this mode holds the agent back: `auto` least, `read-only` most.
    pub(super) fn strictness(self) -> u8 {
        match self {
            Approval::Auto => 0,
            Approval::Ask => 1,
            Approval::ReadOnly => 2,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Approval::Ask => "ask",
            Approval::Auto => "auto",
            Approval::ReadOnly => "read-only",
        }
    }
}

impl fmt::Display for Approval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl TryFrom<String> for Approval {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

impl FromStr for Approval {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "ask" => Ok(Approval::Ask),
            "auto" => Ok(Approval::Auto),
            "read-only" => Ok(Approval::ReadOnly),
            other => {
                Err(format!("`{other}` is not an approval mode; expected ask, auto or read-only"))
            }
        }
    }
}

/// The default for `[snapshot] max_new_file_size`, which the checkpoint store also uses.
pub const DEFAULT_MAX_NEW_FILE_SIZE: u64 = 8 * 1024 * 1024;

/// The default for `[memory] inject_tokens`: the cap on the memory put in the system
/// prompt, in estimated tokens.
pub const DEFAULT_INJECT_TOKENS: usize = 2000;

/// The effective configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `provider/model`, when one is configured; otherwise [`Config::resolve_model`]
    /// detects one.
    pub model: Option<Sourced<ModelRef>>,
    pub approval: Sourced<Approval>,
    pub providers: BTreeMap<String, Provider>,
    pub max_new_file_size: Sourced<u64>,
    pub fsmonitor: Sourced<FsMonitor>,
    /// `[transcript] redact_secrets`: replace secret-looking strings in the stored
    /// conversation with a marker (default on).
    pub redact_secrets: Sourced<bool>,
    /// `[memory]`: caps and compaction.
    pub memory: MemorySettings,
    /// `[mcp.<name>]`: the MCP servers, by name.
    pub mcp: BTreeMap<String, McpServer>,
    /// `sandbox` / `[sandbox]`: how commands and MCP servers are confined.
    pub sandbox: SandboxSettings,
    /// `[limits]`: what one turn may spend.
    pub limits: LimitSettings,
    /// `--reasoning`: how hard the model is asked to think, whatever its provider says.
    pub reasoning_flag: Option<Sourced<Reasoning>>,
    /// The files that were read, in the order they were applied.
    pub files: Vec<Source>,
    /// The project's `cairn.toml`, when there is one: whether it is trusted, and what
    /// became of each key it set.
    pub project: Option<ProjectFile>,
}

/// `[memory]` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemorySettings {
    /// `inject_tokens`: cap on the memory put in the system prompt at session start.
    pub inject_tokens: Sourced<u64>,
    /// `compact_at`: compact when the conversation passes this percentage of the model's
    /// context window.
    pub compact_at: Sourced<u64>,
    /// `summarize`: at session end, write the session summary and promote facts (two
    /// model calls).
    pub summarize: Sourced<bool>,
    /// `push`: `cairn push` sends project memory along with sessions (as `--memory`).
    pub push: Sourced<bool>,
    /// `merge_on_fetch`: `cairn fetch` merges the remote's memory (as `--merge-memory`).
    pub merge_on_fetch: Sourced<bool>,
}

/// `sandbox = "MODE"` or `[sandbox]` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxSettings {
    /// `mode` (or `sandbox = "…"`, or `--sandbox`): `workspace-write` by default.
    pub mode: Sourced<Mode>,
    /// `network`: confined programs may use the network (default off).
    pub network: Sourced<bool>,
    /// `writable_git`: confined commands may write the git directory (`git commit`).
    pub writable_git: Sourced<bool>,
    /// `writable_paths`: more directories confined commands may write, absolute or
    /// starting with `~/`.
    pub writable_paths: Sourced<Vec<String>>,
}

/// `[limits]` settings; `None` is no limit.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LimitSettings {
    /// `turn_output_tokens`: output tokens over all of one turn's model calls.
    pub turn_output_tokens: Option<Sourced<u64>>,
    /// `turn_seconds`: wall time of one turn, from the prompt on.
    pub turn_seconds: Option<Sourced<u64>>,
}

/// The context window assumed for a model whose provider sets no `context_window`.
pub const DEFAULT_CONTEXT_WINDOW: u64 = 128_000;

/// A model named as `provider/model`. The model part may itself contain `/`
/// (`openrouter/anthropic/claude-sonnet-4.5`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelRef {
    pub provider: String,
    pub model: String,
}

impl fmt::Display for ModelRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.provider, self.model)
    }
}

/// A snapshot of the environment variables configuration reads. Tests build their own
/// instead of changing the process environment.
#[derive(Debug, Clone, Default)]
pub struct Env {
    vars: BTreeMap<String, String>,
}

/// The process environment as it was at start: see [`Env::freeze_process`].
static PROCESS_AT_START: OnceLock<Env> = OnceLock::new();

impl Env {
    /// The process environment, as it was when [`Env::freeze_process`] ran if it did:
    /// variables cairn took out of its environment afterwards (the keys) stay readable to
    /// cairn itself.
    pub fn from_process() -> Self {
        PROCESS_AT_START.get().cloned().unwrap_or_else(Self::read_process)
    }

    /// Fixes what [`Env::from_process`] returns from now on to the environment as it is
    /// now. Called once at start, before cairn removes the keys from its environment.
    pub fn freeze_process() -> &'static Env {
        PROCESS_AT_START.get_or_init(Self::read_process)
    }

    fn read_process() -> Self {
        // Variables that are not UTF-8 cannot be keys, paths cairn reads, or names it
        // knows; they are left out rather than making the whole lookup fail.
        let vars = std::env::vars_os().filter_map(|(name, value)| {
            Some((name.into_string().ok()?, value.into_string().ok()?))
        });
        Self { vars: vars.collect() }
    }

    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Self { vars: pairs.into_iter().map(|(k, v)| (k.into(), v.into())).collect() }
    }

    /// A variable's value; an empty value counts as unset.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str).filter(|value| !value.is_empty())
    }
}

/// Values given on the command line; they win over every file.
#[derive(Debug, Clone, Default)]
pub struct Flags {
    pub model: Option<String>,
    pub approval: Option<Approval>,
    pub sandbox: Option<Mode>,
    pub reasoning: Option<Reasoning>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("could not read {}: {source}", .path.display())]
    Read { path: PathBuf, source: std::io::Error },

    #[error("CAIRN_CONFIG names {}, which does not exist", .path.display())]
    MissingConfigFile { path: PathBuf },

    /// A file's content is wrong: unknown key, wrong type, bad value.
    #[error("{}:{line}:{column}: {message}", .path.display())]
    Invalid { path: PathBuf, line: usize, column: usize, message: String },

    #[error("{what}: {message}")]
    BadModel { what: String, message: String },

    #[error("no model is configured and none was found")]
    NoModel {
        tried: Vec<String>,
        /// Where the user would set one.
        config_file: String,
    },

    #[error("{provider} needs an API key in ${env}, which is not set")]
    MissingKey { provider: String, env: String },

    #[error(
        "{} points provider `{provider}` at {url}, so cairn will not send it your key from ${env}",
        .path.display()
    )]
    UntrustedUrl { path: PathBuf, provider: String, url: String, env: String },
}

impl ConfigError {
    /// What the user can do about it.
    pub fn hint(&self) -> Option<String> {
        match self {
            ConfigError::MissingConfigFile { .. } => {
                Some("create that file, or unset CAIRN_CONFIG to use the user config".into())
            }
            ConfigError::BadModel { .. } => Some(
                "name a model as <provider>/<model>, e.g. anthropic/claude-sonnet-4-5; \
                 `cairn config show` lists the providers"
                    .into(),
            ),
            ConfigError::NoModel { tried, config_file } => Some(format!(
                "set ANTHROPIC_API_KEY or OPENAI_API_KEY, start Ollama, or set \
                 model = \"<provider>/<model>\" in {config_file} (or pass --model); tried: {}",
                tried.join("; ")
            )),
            ConfigError::MissingKey { env, .. } => {
                Some(format!("export {env}=<your key>, or choose another model with --model"))
            }
            ConfigError::UntrustedUrl { .. } => Some(
                "if you trust this server, define the provider in your user config \
                 (~/.config/cairn/config.toml) instead"
                    .into(),
            ),
            ConfigError::Read { .. } | ConfigError::Invalid { .. } => None,
        }
    }
}

/// The user file's path: `$CAIRN_CONFIG`, `$XDG_CONFIG_HOME/cairn/config.toml` or
/// `~/.config/cairn/config.toml`, with the [`Source`] it will be reported as.
pub fn user_file(env: &Env) -> Option<Source> {
    if let Some(path) = env.get("CAIRN_CONFIG") {
        return Some(Source::CairnConfig(PathBuf::from(path)));
    }
    let base = match env.get("XDG_CONFIG_HOME").map(PathBuf::from) {
        // The XDG spec says relative values are to be ignored.
        Some(dir) if dir.is_absolute() => dir,
        _ => PathBuf::from(env.get("HOME")?).join(".config"),
    };
    Some(Source::UserFile(base.join("cairn").join("config.toml")))
}

/// Loads the configuration for `project` (or for no project).
pub fn load(project: Option<&Project>, env: &Env, flags: &Flags) -> Result<Config, ConfigError> {
    let mut config = Config::built_in();
    if let Some(source) = user_file(env) {
        let path = source.path().map(Path::to_path_buf).unwrap_or_default();
        match std::fs::read_to_string(&path) {
            Ok(text) => config.apply_file(&text, source)?,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                if matches!(source, Source::CairnConfig(_)) {
                    return Err(ConfigError::MissingConfigFile { path });
                }
            }
            Err(source) => return Err(ConfigError::Read { path, source }),
        }
    }
    if let Some(project) = project {
        let path = project.root.join("cairn.toml");
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let trust = match trust::TrustFile::for_user(env)? {
                    Some(file) => file.verdict(project),
                    None => Trust::Untrusted,
                };
                config.apply_project_file(&text, path, trust)?;
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(ConfigError::Read { path, source }),
        }
    }
    if let Some(model) = &flags.model {
        let model = config.parse_model(model).map_err(|message| ConfigError::BadModel {
            what: format!("--model {model}"),
            message,
        })?;
        config.model = Some(Sourced::new(model, Source::Flag("--model")));
    }
    if let Some(approval) = flags.approval {
        config.approval = Sourced::new(approval, Source::Flag("--approval"));
    }
    if let Some(mode) = flags.sandbox {
        config.sandbox.mode = Sourced::new(mode, Source::Flag("--sandbox"));
    }
    config.reasoning_flag = flags.reasoning.map(|r| Sourced::new(r, Source::Flag("--reasoning")));
    Ok(config)
}

impl Config {
    /// Defaults and built-in providers only, as if no file or flag were given.
    pub fn built_in() -> Self {
        let providers = providers::built_in_providers();
        Self {
            model: None,
            approval: Sourced::new(Approval::Ask, Source::Default),
            providers,
            max_new_file_size: Sourced::new(DEFAULT_MAX_NEW_FILE_SIZE, Source::Default),
            fsmonitor: Sourced::new(FsMonitor::None, Source::Default),
            redact_secrets: Sourced::new(true, Source::Default),
            memory: MemorySettings {
                inject_tokens: Sourced::new(DEFAULT_INJECT_TOKENS as u64, Source::Default),
                compact_at: Sourced::new(80, Source::Default),
                summarize: Sourced::new(true, Source::Default),
                push: Sourced::new(false, Source::Default),
                merge_on_fetch: Sourced::new(false, Source::Default),
            },
            mcp: BTreeMap::new(),
            sandbox: SandboxSettings {
                mode: Sourced::new(Mode::WorkspaceWrite, Source::Default),
                network: Sourced::new(false, Source::Default),
                writable_git: Sourced::new(false, Source::Default),
                writable_paths: Sourced::new(Vec::new(), Source::Default),
            },
            limits: LimitSettings::default(),
            reasoning_flag: None,
            files: Vec::new(),
            project: None,
        }
    }

    /// How hard models of `provider` are asked to think: as `--reasoning` says, else as
    /// the provider's settings do.
    pub fn reasoning_for(&self, provider: &str) -> Option<&Sourced<Reasoning>> {
        let configured = self.providers.get(provider).and_then(|p| p.reasoning.as_ref());
        self.reasoning_flag.as_ref().or(configured)
    }

    /// The environment variables holding API keys: every provider's `api_key_env`, and
    /// the built-in providers' variables even where a file points a provider elsewhere.
    pub fn key_vars(&self) -> Vec<String> {
        let mut names: Vec<String> = providers::built_in_key_vars().map(String::from).collect();
        for provider in self.providers.values() {
            if let Some(name) = &provider.api_key_env
                && !names.contains(&name.value)
            {
                names.push(name.value.clone());
            }
        }
        names
    }
}

/// Shows enough of a secret to recognise it and not enough to use it.
pub fn mask_secret(secret: &str) -> String {
    let chars: Vec<char> = secret.chars().collect();
    if chars.len() < 16 {
        return "****".to_owned();
    }
    let head: String = chars[..4].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}…{tail}")
}

#[cfg(test)]
mod tests {
    use super::file::line_column;
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1000"), Ok(1000));
        assert_eq!(parse_size("8MiB"), Ok(8 << 20));
        assert_eq!(parse_size("512 KiB"), Ok(512 << 10));
        assert_eq!(parse_size("2gb"), Ok(2_000_000_000));
        assert!(parse_size("8 furlongs").unwrap_err().contains("not a size"));
        assert!(parse_size("MiB").is_err());
        assert!(parse_size("99999999999999GiB").unwrap_err().contains("too large"));
        assert_eq!(format_size(8 << 20), "8MiB");
        assert_eq!(format_size(1000), "1000B");
        assert_eq!(parse_size(&format_size(1536 << 10)), Ok(1536 << 10));
    }

    #[test]
    fn masking() {
        assert_eq!(mask_secret("sk-ant-0123456789abcdef"), "sk-a…cdef");
        assert_eq!(mask_secret("short"), "****");
    }

    #[test]
    fn positions() {
        assert_eq!(line_column("a\nbc\né = 1", 8), (3, 3));
        assert_eq!(line_column("x", 0), (1, 1));
    }

    #[test]
    fn user_file_locations() {
        let env = Env::from_pairs([("HOME", "/home/u")]);
        assert_eq!(
            user_file(&env),
            Some(Source::UserFile("/home/u/.config/cairn/config.toml".into()))
        );
        let env = Env::from_pairs([("HOME", "/home/u"), ("XDG_CONFIG_HOME", "/x")]);
        assert_eq!(user_file(&env), Some(Source::UserFile("/x/cairn/config.toml".into())));
        let env = Env::from_pairs([("HOME", "/home/u"), ("XDG_CONFIG_HOME", "relative")]);
        assert_eq!(
            user_file(&env),
            Some(Source::UserFile("/home/u/.config/cairn/config.toml".into()))
        );
        let env = Env::from_pairs([("CAIRN_CONFIG", "/c.toml"), ("XDG_CONFIG_HOME", "/x")]);
        assert_eq!(user_file(&env), Some(Source::CairnConfig("/c.toml".into())));
    }
}
