//! Configuration: TOML files, the environment and command-line flags, merged into one
//! [`Config`] in which every value remembers where it came from.
//!
//! Layers, later ones winning: built-in defaults and providers; the user file
//! (`$XDG_CONFIG_HOME/cairn/config.toml`, else `~/.config/cairn/config.toml`, or the file
//! named by `CAIRN_CONFIG` instead); the project's `cairn.toml` at the repository root;
//! flags. The caller passes the repository root, so this module knows nothing of git.
//! Files are read strictly: an unknown key or a wrong type is an error naming the file,
//! line and column, since a silently ignored typo is worse than a refusal.
//!
//! API keys are never stored here, only the names of the variables holding them; they are
//! read from the environment when a client is built ([`Config::client_settings`]).
//!
//! A project's `cairn.toml` comes with code the user cloned, so until the user runs
//! `cairn trust` ([`trust`]) it may only make cairn more careful: approval stricter than
//! the user's, a `max_new_file_size`, `inject_tokens`, `compact_at` or MCP timeout at most
//! the user's, `summarize = false`, `redact_secrets = true`, `push = false`, disabling a
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
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use toml::Spanned;

use crate::llm::{ClientSettings, ProviderKind};

pub mod trust;

pub use trust::{Project, Trust};

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// cairn's own default.
    Default,
    /// A built-in provider's definition.
    BuiltIn,
    /// The user's configuration file.
    UserFile(PathBuf),
    /// The file named by `CAIRN_CONFIG`, which replaces the user file.
    CairnConfig(PathBuf),
    /// The project's `cairn.toml`.
    ProjectFile(PathBuf),
    /// A command-line flag, e.g. `--model`.
    Flag(&'static str),
    /// Chosen because of the environment, e.g. `$ANTHROPIC_API_KEY is set`.
    Detected(String),
}

impl Source {
    /// A short machine-readable name: `default`, `built-in`, `user-file`, `cairn-config`,
    /// `project-file`, `flag` or `env`.
    pub fn kind(&self) -> &'static str {
        match self {
            Source::Default => "default",
            Source::BuiltIn => "built-in",
            Source::UserFile(_) => "user-file",
            Source::CairnConfig(_) => "cairn-config",
            Source::ProjectFile(_) => "project-file",
            Source::Flag(_) => "flag",
            Source::Detected(_) => "env",
        }
    }

    fn of<T>(&self, value: T) -> Sourced<T> {
        Sourced::new(value, self.clone())
    }

    fn path(&self) -> Option<&Path> {
        match self {
            Source::UserFile(path) | Source::CairnConfig(path) | Source::ProjectFile(path) => {
                Some(path)
            }
            _ => None,
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::BuiltIn => f.write_str("built-in"),
            Source::UserFile(path) => write!(f, "user config {}", path.display()),
            Source::CairnConfig(path) => write!(f, "$CAIRN_CONFIG {}", path.display()),
            Source::ProjectFile(path) => write!(f, "project config {}", path.display()),
            Source::Flag(flag) => write!(f, "flag {flag}"),
            Source::Detected(why) => write!(f, "detected: {why}"),
        }
    }
}

/// A value and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sourced<T> {
    pub value: T,
    pub source: Source,
}

impl<T> Sourced<T> {
    pub fn new(value: T, source: Source) -> Self {
        Self { value, source }
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
    fn strictness(self) -> u8 {
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

/// The default for `[snapshot] max_new_file_size`: the checkpoint store's own default.
pub use crate::checkpoint::DEFAULT_MAX_NEW_FILE_SIZE;

/// How long auto-detection waits for a local Ollama to answer.
pub const OLLAMA_PROBE_TIMEOUT: Duration = Duration::from_millis(800);

/// One provider, built in or configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provider {
    pub name: String,
    pub kind: Sourced<ProviderKind>,
    pub base_url: Sourced<String>,
    /// The environment variable holding the key; none for servers that need no key.
    pub api_key_env: Option<Sourced<String>>,
    /// The model's context window in tokens, when known.
    pub context_window: Option<Sourced<u64>>,
    /// Extra headers sent with every request.
    pub headers: BTreeMap<String, Sourced<String>>,
    /// The model auto-detection picks for this provider.
    pub default_model: Option<&'static str>,
}

/// How long an MCP server may take to start and list its tools, by default.
pub const DEFAULT_MCP_STARTUP_TIMEOUT_MS: u64 = 10_000;

/// How long one MCP tool call may take, by default.
pub const DEFAULT_MCP_TOOL_TIMEOUT_MS: u64 = 600_000;

/// One MCP server, `[mcp.<name>]`: a command cairn starts and speaks the Model Context
/// Protocol with over its stdin and stdout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct McpServer {
    pub name: String,
    pub command: Sourced<String>,
    pub args: Sourced<Vec<String>>,
    /// Variables set for the server on top of cairn's environment.
    pub env: BTreeMap<String, Sourced<String>>,
    pub enabled: Sourced<bool>,
    /// When set, only these of the server's tools are offered to the model.
    pub tools: Option<Sourced<Vec<String>>>,
    pub startup_timeout_ms: Sourced<u64>,
    pub tool_timeout_ms: Sourced<u64>,
}

/// The effective configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `provider/model`, when one is configured; otherwise [`Config::resolve_model`]
    /// detects one.
    pub model: Option<Sourced<ModelRef>>,
    pub approval: Sourced<Approval>,
    pub providers: BTreeMap<String, Provider>,
    pub max_new_file_size: Sourced<u64>,
    /// `[transcript] redact_secrets`: replace secret-looking strings in the stored
    /// conversation with a marker (default on).
    pub redact_secrets: Sourced<bool>,
    /// `[memory]`: caps and compaction.
    pub memory: MemorySettings,
    /// `[mcp.<name>]`: the MCP servers, by name.
    pub mcp: BTreeMap<String, McpServer>,
    /// The files that were read, in the order they were applied.
    pub files: Vec<Source>,
    /// The project's `cairn.toml`, when there is one: whether it is trusted, and what
    /// became of each key it set.
    pub project: Option<ProjectFile>,
}

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

impl Env {
    pub fn from_process() -> Self {
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
    Ok(config)
}

struct BuiltIn {
    name: &'static str,
    kind: ProviderKind,
    base_url: &'static str,
    api_key_env: Option<&'static str>,
    default_model: Option<&'static str>,
}

/// `openai` speaks the Responses API: it is OpenAI's current protocol, and the one its
/// reasoning models are fully available through. Point a provider of kind `openai-chat`
/// at the same URL to use Chat Completions instead.
const BUILT_INS: [BuiltIn; 4] = [
    BuiltIn {
        name: "anthropic",
        kind: ProviderKind::Anthropic,
        base_url: "https://api.anthropic.com/v1",
        api_key_env: Some("ANTHROPIC_API_KEY"),
        default_model: Some("claude-sonnet-4-5"),
    },
    BuiltIn {
        name: "openai",
        kind: ProviderKind::OpenaiResponses,
        base_url: "https://api.openai.com/v1",
        api_key_env: Some("OPENAI_API_KEY"),
        default_model: Some("gpt-5"),
    },
    BuiltIn {
        name: "ollama",
        kind: ProviderKind::OpenaiChat,
        base_url: "http://localhost:11434/v1",
        api_key_env: None,
        default_model: None,
    },
    BuiltIn {
        name: "openrouter",
        kind: ProviderKind::OpenaiChat,
        base_url: "https://openrouter.ai/api/v1",
        api_key_env: Some("OPENROUTER_API_KEY"),
        default_model: None,
    },
];

// The shapes of a configuration file. `Spanned` keeps positions for errors found after
// parsing.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    model: Option<Spanned<String>>,
    approval: Option<Spanned<Approval>>,
    #[serde(default)]
    provider: BTreeMap<String, Spanned<FileProvider>>,
    snapshot: Option<FileSnapshot>,
    transcript: Option<FileTranscript>,
    memory: Option<FileMemory>,
    #[serde(default)]
    mcp: BTreeMap<String, Spanned<FileMcp>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileMcp {
    command: Option<Spanned<String>>,
    args: Option<Vec<String>>,
    env: Option<BTreeMap<String, String>>,
    enabled: Option<bool>,
    tools: Option<Vec<String>>,
    startup_timeout_ms: Option<Spanned<u64>>,
    tool_timeout_ms: Option<Spanned<u64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileProvider {
    kind: Option<KindName>,
    base_url: Option<Spanned<String>>,
    api_key_env: Option<String>,
    context_window: Option<u64>,
    headers: Option<BTreeMap<String, String>>,
}

/// A provider kind as written in a file, read through `FromStr` so that a wrong type and a
/// wrong name both say what is expected.
#[derive(Deserialize)]
#[serde(try_from = "String")]
struct KindName(ProviderKind);

impl TryFrom<String> for KindName {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        [ProviderKind::OpenaiChat, ProviderKind::Anthropic, ProviderKind::OpenaiResponses]
            .into_iter()
            .find(|kind| kind.as_str() == text)
            .map(KindName)
            .ok_or_else(|| {
                format!(
                    "`{text}` is not a provider kind; expected openai-chat, anthropic or \
                     openai-responses"
                )
            })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileTranscript {
    redact_secrets: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileMemory {
    inject_tokens: Option<u64>,
    compact_at: Option<Spanned<u64>>,
    summarize: Option<bool>,
    push: Option<bool>,
    merge_on_fetch: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSnapshot {
    max_new_file_size: Option<ByteSize>,
}

/// A size in bytes, written as a number (`1000`) or with a unit (`"512KiB"`, `"8MiB"`).
struct ByteSize(u64);

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged, expecting = "a size such as 1000, \"512KiB\" or \"8MiB\"")]
        enum Raw {
            Number(u64),
            Text(String),
        }
        match Raw::deserialize(deserializer)? {
            Raw::Number(bytes) => Ok(ByteSize(bytes)),
            Raw::Text(text) => parse_size(&text).map(ByteSize).map_err(serde::de::Error::custom),
        }
    }
}

/// Parses `1000`, `1000B`, `512KiB`, `8MiB`, `1GiB` (binary) or `500KB`, `8MB`, `1GB`
/// (decimal) into bytes.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let invalid = || format!("`{text}` is not a size; write it like 1000, \"512KiB\" or \"8MiB\"");
    let number: u64 = digits.parse().map_err(|_| invalid())?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        _ => return Err(invalid()),
    };
    number.checked_mul(factor).ok_or_else(|| format!("`{text}` is too large"))
}

/// Formats a byte count the way a user would write it (`8MiB`, `1000B`).
pub fn format_size(bytes: u64) -> String {
    for (unit, factor) in [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
        if bytes >= factor && bytes.is_multiple_of(factor) {
            return format!("{}{unit}", bytes / factor);
        }
    }
    format!("{bytes}B")
}

/// `provider/model` in a user's words; `None` if either part is missing.
fn split_model(text: &str) -> Option<(&str, &str)> {
    let (provider, model) = text.split_once('/')?;
    (!provider.is_empty() && !model.is_empty()).then_some((provider, model))
}

impl Config {
    /// Defaults and built-in providers only, as if no file or flag were given.
    pub fn built_in() -> Self {
        let providers = BUILT_INS
            .iter()
            .map(|built_in| {
                let provider = Provider {
                    name: built_in.name.to_owned(),
                    kind: Sourced::new(built_in.kind, Source::BuiltIn),
                    base_url: Sourced::new(built_in.base_url.to_owned(), Source::BuiltIn),
                    api_key_env: built_in
                        .api_key_env
                        .map(|env| Sourced::new(env.to_owned(), Source::BuiltIn)),
                    context_window: None,
                    headers: BTreeMap::new(),
                    default_model: built_in.default_model,
                };
                (built_in.name.to_owned(), provider)
            })
            .collect();
        Self {
            model: None,
            approval: Sourced::new(Approval::Ask, Source::Default),
            providers,
            max_new_file_size: Sourced::new(DEFAULT_MAX_NEW_FILE_SIZE, Source::Default),
            redact_secrets: Sourced::new(true, Source::Default),
            memory: MemorySettings {
                inject_tokens: Sourced::new(
                    crate::memory::DEFAULT_INJECT_TOKENS as u64,
                    Source::Default,
                ),
                compact_at: Sourced::new(80, Source::Default),
                summarize: Sourced::new(true, Source::Default),
                push: Sourced::new(false, Source::Default),
                merge_on_fetch: Sourced::new(false, Source::Default),
            },
            mcp: BTreeMap::new(),
            files: Vec::new(),
            project: None,
        }
    }

    /// Applies one file's text on top of what is there.
    fn apply_file(&mut self, text: &str, source: Source) -> Result<(), ConfigError> {
        let file = parse_file(text, &source)?;
        self.apply_parsed(file, text, source)
    }

    /// Applies a project's `cairn.toml`: in full when `trust` says so, else only the keys
    /// that make cairn more careful ([`Config::restrict`]).
    fn apply_project_file(
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
        } = file;
        let mut ignored = Vec::new();
        fn ignore(ignored: &mut Vec<Ignored>, key: String, reason: &str) {
            ignored.push(Ignored { key, reason: reason.to_owned(), partly: false });
        }
        if file.model.take().is_some() {
            ignore(
                &mut ignored,
                "model".into(),
                "the model decides where your conversation is sent",
            );
        }
        for name in std::mem::take(&mut file.provider).into_keys() {
            ignore(
                &mut ignored,
                format!("provider.{}", key_part(&name)),
                "a provider decides where your conversation is sent",
            );
        }
        if let Some(approval) = &file.approval
            && approval.get_ref().strictness() < self.approval.value.strictness()
        {
            ignore(
                &mut ignored,
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
                &mut ignored,
                "snapshot.max_new_file_size".into(),
                &format!(
                    "`{}` is larger than your `{}`; a project may only lower the limit",
                    format_size(size.0),
                    format_size(self.max_new_file_size.value)
                ),
            );
            snapshot.max_new_file_size = None;
        }
        if let Some(transcript) = &mut file.transcript
            && transcript.redact_secrets == Some(false)
            && self.redact_secrets.value
        {
            transcript.redact_secrets = None;
            ignore(
                &mut ignored,
                "transcript.redact_secrets".into(),
                "a project may not turn redaction off",
            );
        }
        if let Some(memory) = &mut file.memory {
            let FileMemory {
                inject_tokens: _,
                compact_at: _,
                summarize: _,
                push: _,
                merge_on_fetch: _,
            } = memory;
            if memory.summarize == Some(true) && !self.memory.summarize.value {
                memory.summarize = None;
                ignore(
                    &mut ignored,
                    "memory.summarize".into(),
                    "a project may not turn summaries on",
                );
            }
            if let Some(tokens) = memory.inject_tokens
                && tokens > self.memory.inject_tokens.value
            {
                memory.inject_tokens = None;
                ignore(
                    &mut ignored,
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
                    &mut ignored,
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
                ignore(
                    &mut ignored,
                    "memory.push".into(),
                    "a project may not send memory to remotes",
                );
            }
            if memory.merge_on_fetch == Some(true) && !self.memory.merge_on_fetch.value {
                memory.merge_on_fetch = None;
                ignore(
                    &mut ignored,
                    "memory.merge_on_fetch".into(),
                    "a project may not merge remote memory",
                );
            }
        }
        file.mcp.retain(|name, entry| {
            let table = format!("mcp.{}", key_part(name));
            let Some(existing) = self.mcp.get(name) else {
                ignore(&mut ignored, table, "a project may not define MCP servers");
                return false;
            };
            let entry = entry.get_mut();
            // As in `FileConfig` above: a new server key needs a decision here.
            let FileMcp {
                command: _,
                args: _,
                env: _,
                enabled: _,
                tools: _,
                startup_timeout_ms: _,
                tool_timeout_ms: _,
            } = entry;
            let runs = "a project may not change the command a server runs";
            if entry.command.take().is_some() {
                ignore(&mut ignored, format!("{table}.command"), runs);
            }
            if entry.args.take().is_some() {
                ignore(&mut ignored, format!("{table}.args"), runs);
            }
            if entry.env.take().is_some() {
                ignore(&mut ignored, format!("{table}.env"), runs);
            }
            if entry.enabled == Some(true) && !existing.enabled.value {
                entry.enabled = None;
                ignore(
                    &mut ignored,
                    format!("{table}.enabled"),
                    "a project may not enable a disabled server",
                );
            }
            // A longer timeout lets a hostile server hang cairn longer, so only a shorter one
            // applies. Zero is left for `apply_mcp` to refuse either way.
            for (key, value, yours) in [
                ("startup_timeout_ms", &mut entry.startup_timeout_ms, &existing.startup_timeout_ms),
                ("tool_timeout_ms", &mut entry.tool_timeout_ms, &existing.tool_timeout_ms),
            ] {
                if let Some(ms) = value
                    && *ms.get_ref() > yours.value
                {
                    ignore(
                        &mut ignored,
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
            if let (Some(tools), Some(allowed)) = (&mut entry.tools, &existing.tools) {
                let (kept, dropped): (Vec<String>, Vec<String>) =
                    tools.drain(..).partition(|tool| allowed.value.contains(tool));
                *tools = kept;
                if !dropped.is_empty() {
                    ignored.push(Ignored {
                        key: format!("{table}.tools"),
                        reason: format!(
                            "only tools your list allows apply; left out: {}",
                            dropped
                                .iter()
                                .map(|tool| key_part(tool))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                        partly: true,
                    });
                }
            }
            true
        });
        ignored
    }

    /// Applies a parsed file on top of what is there.
    fn apply_parsed(
        &mut self,
        file: FileConfig,
        text: &str,
        source: Source,
    ) -> Result<(), ConfigError> {
        let path = source.path().map(Path::to_path_buf).unwrap_or_default();
        let at = |span: Option<Range<usize>>, message: String| {
            let (line, column) = line_column(text, span.map_or(0, |span| span.start));
            ConfigError::Invalid { path: path.clone(), line, column, message }
        };

        for (name, spanned) in file.provider {
            let span = spanned.span();
            let entry = spanned.into_inner();
            let existing = self.providers.get(&name).cloned();
            let kind = match (entry.kind, existing.as_ref()) {
                (Some(KindName(kind)), _) => source.of(kind),
                (None, Some(provider)) => provider.kind.clone(),
                (None, None) => {
                    return Err(at(
                        Some(span),
                        format!(
                            "provider `{name}` needs `kind` (openai-chat, anthropic or openai-responses)"
                        ),
                    ));
                }
            };
            let base_url = match (entry.base_url, existing.as_ref()) {
                (Some(url), _) => {
                    let url_span = url.span();
                    let url = url.into_inner();
                    if !(url.starts_with("http://") || url.starts_with("https://")) {
                        return Err(at(
                            Some(url_span),
                            format!("base_url `{url}` must start with http:// or https://"),
                        ));
                    }
                    source.of(url)
                }
                (None, Some(provider)) => provider.base_url.clone(),
                (None, None) => {
                    return Err(at(
                        Some(span),
                        format!(
                            "provider `{name}` needs `base_url`, the API root including its version, \
                         e.g. \"http://127.0.0.1:8080/v1\""
                        ),
                    ));
                }
            };
            let mut headers = existing.as_ref().map(|p| p.headers.clone()).unwrap_or_default();
            for (header, value) in entry.headers.unwrap_or_default() {
                headers.insert(header, source.of(value));
            }
            let provider = Provider {
                name: name.clone(),
                kind,
                base_url,
                api_key_env: entry
                    .api_key_env
                    .map(|value| source.of(value))
                    .or_else(|| existing.as_ref().and_then(|p| p.api_key_env.clone())),
                context_window: entry
                    .context_window
                    .map(|value| source.of(value))
                    .or_else(|| existing.as_ref().and_then(|p| p.context_window.clone())),
                headers,
                default_model: existing.and_then(|p| p.default_model),
            };
            self.providers.insert(name, provider);
        }

        for (name, spanned) in file.mcp {
            let span = spanned.span();
            let server = self
                .apply_mcp(&name, spanned.into_inner(), &source)
                .map_err(|(inner, message)| at(Some(inner.unwrap_or(span)), message))?;
            self.mcp.insert(name, server);
        }

        if let Some(model) = file.model {
            let span = model.span();
            let parsed =
                self.parse_model(model.get_ref()).map_err(|message| at(Some(span), message))?;
            self.model = Some(source.of(parsed));
        }
        if let Some(approval) = file.approval {
            self.approval = source.of(approval.into_inner());
        }
        if let Some(size) = file.snapshot.and_then(|snapshot| snapshot.max_new_file_size) {
            self.max_new_file_size = source.of(size.0);
        }
        if let Some(redact) = file.transcript.and_then(|transcript| transcript.redact_secrets) {
            self.redact_secrets = source.of(redact);
        }
        if let Some(memory) = file.memory {
            if let Some(tokens) = memory.inject_tokens {
                self.memory.inject_tokens = source.of(tokens);
            }
            if let Some(percent) = memory.compact_at {
                let span = percent.span();
                let percent = percent.into_inner();
                if !(10..=95).contains(&percent) {
                    return Err(at(
                        Some(span),
                        format!(
                            "compact_at = {percent} is out of range; give a percentage from 10 to 95"
                        ),
                    ));
                }
                self.memory.compact_at = source.of(percent);
            }
            if let Some(summarize) = memory.summarize {
                self.memory.summarize = source.of(summarize);
            }
            if let Some(push) = memory.push {
                self.memory.push = source.of(push);
            }
            if let Some(merge) = memory.merge_on_fetch {
                self.memory.merge_on_fetch = source.of(merge);
            }
        }
        self.files.push(source);
        Ok(())
    }

    /// One `[mcp.<name>]` table on top of what earlier files said about that server. An
    /// error carries the span of the value at fault, if it is not the whole table.
    fn apply_mcp(
        &self,
        name: &str,
        entry: FileMcp,
        source: &Source,
    ) -> Result<McpServer, (Option<Range<usize>>, String)> {
        if let Err(message) = check_mcp_name(name) {
            return Err((None, message));
        }
        let existing = self.mcp.get(name);
        let command = match (entry.command, existing) {
            (Some(command), _) => {
                if command.get_ref().trim().is_empty() {
                    return Err((
                        Some(command.span()),
                        format!("mcp server `{name}` has an empty `command`"),
                    ));
                }
                source.of(command.into_inner())
            }
            (None, Some(server)) => server.command.clone(),
            (None, None) => {
                return Err((
                    None,
                    format!(
                        "mcp server `{name}` needs `command`, the program to start, e.g. \
                         command = \"npx\", args = [\"-y\", \"@modelcontextprotocol/server-memory\"]"
                    ),
                ));
            }
        };
        let timeout = |value: Option<Spanned<u64>>,
                       key: &str,
                       default: Option<&Sourced<u64>>,
                       fallback: u64| {
            match value {
                Some(ms) if *ms.get_ref() == 0 => {
                    Err((Some(ms.span()), format!("`{key}` must be at least 1 (milliseconds)")))
                }
                Some(ms) => Ok(source.of(ms.into_inner())),
                None => {
                    Ok(default.cloned().unwrap_or_else(|| Sourced::new(fallback, Source::Default)))
                }
            }
        };
        let mut env = existing.map(|server| server.env.clone()).unwrap_or_default();
        for (variable, value) in entry.env.unwrap_or_default() {
            env.insert(variable, source.of(value));
        }
        Ok(McpServer {
            name: name.to_owned(),
            command,
            args: entry.args.map(|args| source.of(args)).unwrap_or_else(|| {
                existing
                    .map_or_else(|| Sourced::new(Vec::new(), Source::Default), |s| s.args.clone())
            }),
            env,
            enabled: entry.enabled.map(|enabled| source.of(enabled)).unwrap_or_else(|| {
                existing.map_or_else(|| Sourced::new(true, Source::Default), |s| s.enabled.clone())
            }),
            tools: entry
                .tools
                .map(|tools| source.of(tools))
                .or_else(|| existing.and_then(|s| s.tools.clone())),
            startup_timeout_ms: timeout(
                entry.startup_timeout_ms,
                "startup_timeout_ms",
                existing.map(|s| &s.startup_timeout_ms),
                DEFAULT_MCP_STARTUP_TIMEOUT_MS,
            )?,
            tool_timeout_ms: timeout(
                entry.tool_timeout_ms,
                "tool_timeout_ms",
                existing.map(|s| &s.tool_timeout_ms),
                DEFAULT_MCP_TOOL_TIMEOUT_MS,
            )?,
        })
    }

    fn parse_model(&self, text: &str) -> Result<ModelRef, String> {
        let Some((provider, model)) = split_model(text) else {
            return Err(format!("`{text}` is not of the form <provider>/<model>"));
        };
        if !self.providers.contains_key(provider) {
            let known: Vec<&str> = self.providers.keys().map(String::as_str).collect();
            return Err(format!(
                "`{text}` names an unknown provider `{provider}`; known providers: {}",
                known.join(", ")
            ));
        }
        Ok(ModelRef { provider: provider.to_owned(), model: model.to_owned() })
    }

    /// The model to use: the configured one, or else the first available of
    /// `$ANTHROPIC_API_KEY`, `$OPENAI_API_KEY` and a running Ollama (asked at the
    /// `ollama` provider's `base_url`, waiting at most `probe_timeout`).
    pub async fn resolve_model(
        &self,
        env: &Env,
        probe_timeout: Duration,
    ) -> Result<Sourced<ModelRef>, ConfigError> {
        if let Some(model) = &self.model {
            return Ok(model.clone());
        }
        let mut tried = Vec::new();
        for name in ["anthropic", "openai"] {
            let Some(provider) = self.providers.get(name) else { continue };
            let (Some(env_name), Some(model)) = (&provider.api_key_env, provider.default_model)
            else {
                continue;
            };
            if env.get(&env_name.value).is_some() {
                let why = format!("${} is set", env_name.value);
                let choice = ModelRef { provider: name.to_owned(), model: model.to_owned() };
                return Ok(Sourced::new(choice, Source::Detected(why)));
            }
            tried.push(format!("${} is not set", env_name.value));
        }
        if let Some(ollama) = self.providers.get("ollama") {
            let url = &ollama.base_url.value;
            match crate::llm::list_models(url, probe_timeout).await {
                Ok(models) => match models.into_iter().next() {
                    Some(model) => {
                        let why = format!("Ollama is running at {url}");
                        let choice = ModelRef { provider: "ollama".to_owned(), model };
                        return Ok(Sourced::new(choice, Source::Detected(why)));
                    }
                    None => tried.push(format!(
                        "Ollama at {url} has no models (pull one with `ollama pull <model>`)"
                    )),
                },
                Err(_) => tried.push(format!("no Ollama answered at {url}")),
            }
        }
        let config_file = match user_file(env) {
            Some(Source::UserFile(path) | Source::CairnConfig(path)) => path.display().to_string(),
            _ => "~/.config/cairn/config.toml".to_owned(),
        };
        Err(ConfigError::NoModel { tried, config_file })
    }

    /// Client settings for `model`, with its key read from the environment.
    pub fn client_settings(
        &self,
        model: &ModelRef,
        env: &Env,
    ) -> Result<ClientSettings, ConfigError> {
        let provider =
            self.providers.get(&model.provider).ok_or_else(|| ConfigError::BadModel {
                what: model.to_string(),
                message: format!("unknown provider `{}`", model.provider),
            })?;
        let mut settings =
            ClientSettings::new(&provider.name, provider.kind.value, &provider.base_url.value);
        if let Some(env_name) = &provider.api_key_env {
            if let Source::ProjectFile(path) = &provider.base_url.source {
                return Err(ConfigError::UntrustedUrl {
                    path: path.clone(),
                    provider: provider.name.clone(),
                    url: provider.base_url.value.clone(),
                    env: env_name.value.clone(),
                });
            }
            let key = env.get(&env_name.value).ok_or_else(|| ConfigError::MissingKey {
                provider: provider.name.clone(),
                env: env_name.value.clone(),
            })?;
            settings.api_key_env = Some(env_name.value.clone());
            settings.api_key = Some(key.to_owned());
        }
        settings.headers = provider
            .headers
            .iter()
            .map(|(name, value)| (name.clone(), value.value.clone()))
            .collect();
        Ok(settings)
    }
}

/// Reads a configuration file's text strictly.
fn parse_file(text: &str, source: &Source) -> Result<FileConfig, ConfigError> {
    toml::from_str(text).map_err(|err| {
        let (line, column) = line_column(text, err.span().map_or(0, |span| span.start));
        ConfigError::Invalid {
            path: source.path().map(Path::to_path_buf).unwrap_or_default(),
            line,
            column,
            message: err.message().to_owned(),
        }
    })
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

/// An MCP server's name becomes the prefix of its tools' names (`<server>__<tool>`), which
/// model APIs restrict to letters, digits, `_` and `-`; `__` is the separator.
fn check_mcp_name(name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.len() <= 32
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && !name.contains("__");
    if valid {
        Ok(())
    } else {
        Err(format!(
            "`{name}` cannot name an mcp server: use up to 32 letters, digits, `_` or `-`, \
             without `__` (it separates server and tool in tool names)"
        ))
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

/// 1-based line and column (in characters) of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |at| at + 1);
    (line, before[line_start..].chars().count() + 1)
}

#[cfg(test)]
mod tests {
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
