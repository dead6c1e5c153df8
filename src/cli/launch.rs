//! Starting the agent: configuration, the model and its client, the checkpoint store, the
//! MCP servers, and the agent itself, shared by `cairn`, `cairn run`, `cairn resume` and
//! `cairn demo`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::agent::{
    self, Agent, AgentMemory, AgentSetup, MemorySettings, Policy, Restored, approval,
    instructions::Instructions, prompt,
};
use crate::checkpoint::{Session, Store};
use crate::config::{
    self, Config, ConfigError, Endpoint, Env, Flags, ModelRef, ProviderApi, SandboxSettings,
    Sourced,
};
use crate::llm;
use crate::mcp::{self, McpHub, Status};
use crate::sandbox;

use super::CommandError;
use super::config::config_error;

/// How long auto-detection waits for a local Ollama to answer.
const OLLAMA_PROBE_TIMEOUT: Duration = Duration::from_millis(800);

/// The store and configuration for the current directory.
pub struct Context {
    pub store: Store,
    pub config: Config,
    pub env: Env,
    /// How the session's commands and MCP servers run.
    pub sandbox: sandbox::Plan,
}

impl Context {
    pub fn load(flags: Flags) -> Result<Context, CommandError> {
        let cwd = std::env::current_dir()?;
        let env = Env::from_process();
        let (store, config) = super::common::open_configured(&cwd, &env, &flags)?;
        let config = config.map_err(config_error)?;
        let sandbox = sandbox_plan(&config.sandbox, &env, store.root(), &git_dirs(&store));
        Ok(Context { store, config, env, sandbox })
    }

    /// What to tell the user, once, about the project's `cairn.toml`: the keys it was
    /// not allowed to set.
    pub fn config_notice(&self) -> Option<String> {
        self.config.project.as_ref().and_then(config::ProjectFile::notice)
    }

    /// The configured (or detected) model and a client for it.
    pub async fn model(&self) -> Result<(ModelRef, llm::Client), CommandError> {
        let model = resolve_model(&self.config, &self.env).await.map_err(config_error)?.value;
        let endpoint = self.config.endpoint(&model, &self.env).map_err(config_error)?;
        let settings = client_settings(&endpoint);
        let client = llm::Client::new(settings).map_err(CommandError::user_error)?;
        Ok((model, client))
    }
}

/// How a program runs under `settings`: confined in `workspace` with `git_dirs` kept
/// read-only, where this machine can enforce it.
pub fn sandbox_plan(
    settings: &SandboxSettings,
    env: &Env,
    workspace: &Path,
    git_dirs: &[PathBuf],
) -> sandbox::Plan {
    let protected = if settings.writable_git.value { Vec::new() } else { git_dirs.to_vec() };
    let home = env.get("HOME").map(PathBuf::from);
    let writable = settings
        .writable_paths
        .value
        .iter()
        .filter_map(|path| match path.strip_prefix("~/") {
            Some(rest) => home.as_ref().map(|home| home.join(rest)),
            None => Some(path.into()),
        })
        .collect();
    let confinement = sandbox::Confinement {
        mode: settings.mode.value,
        network: settings.network.value,
        workspace: workspace.to_path_buf(),
        protected,
        writable,
    };
    let explicit = settings.mode.source != config::Source::Default;
    sandbox::Plan::new(confinement, explicit)
}

/// The repository's git directory, and its common directory when that differs (a linked
/// worktree): what the sandbox keeps read-only.
pub fn git_dirs(store: &Store) -> Vec<PathBuf> {
    let repo = store.repo();
    let mut dirs = vec![repo.git_dir().to_path_buf()];
    if repo.common_dir() != repo.git_dir() {
        dirs.push(repo.common_dir().to_path_buf());
    }
    dirs
}

/// The configured model, or one detected from the environment or a running Ollama.
pub async fn resolve_model(config: &Config, env: &Env) -> Result<Sourced<ModelRef>, ConfigError> {
    config.resolve_model(env, probe_ollama).await
}

/// The models a local Ollama at `base_url` serves; `None` when it does not answer in time.
async fn probe_ollama(base_url: String) -> Option<Vec<String>> {
    llm::list_models(&base_url, OLLAMA_PROBE_TIMEOUT).await.ok()
}

/// The settings of a client for `endpoint`.
fn client_settings(endpoint: &Endpoint<'_>) -> llm::ClientSettings {
    let provider = endpoint.provider;
    let kind = provider_kind(provider.kind.value);
    let mut settings = llm::ClientSettings::new(&provider.name, kind, &provider.base_url.value);
    if let Some(key) = &endpoint.api_key {
        settings.api_key_env = Some(key.env.clone());
        settings.api_key = Some(key.value.clone());
    }
    settings.headers =
        provider.headers.iter().map(|(name, value)| (name.clone(), value.value.clone())).collect();
    if let Some(tokens) = &provider.max_output_tokens {
        settings.max_output_tokens = tokens.value;
    }
    if let Some(seconds) = &provider.idle_timeout {
        settings.idle_timeout = Duration::from_secs(seconds.value);
    }
    if let Some(retries) = &provider.retries {
        settings.retry.max_attempts = retries.value + 1;
    }
    settings.max_tokens_field = match provider.max_tokens_field() {
        config::MaxTokensField::MaxTokens => llm::MaxTokensField::MaxTokens,
        config::MaxTokensField::MaxCompletionTokens => llm::MaxTokensField::MaxCompletionTokens,
    };
    match provider.prompt_cache.as_ref().map(|on| on.value) {
        Some(false) => settings.prompt_cache = false,
        // Said outright, the user vouches that the server takes `prompt_cache_key`.
        Some(true) => settings.send_prompt_cache_key = true,
        None => {}
    }
    settings
}

/// How hard `model` is asked to think, as configured (or as `--reasoning` says).
pub fn reasoning_for(config: &Config, model: &ModelRef) -> Option<llm::Reasoning> {
    config.reasoning_for(&model.provider).and_then(|reasoning| client_reasoning(reasoning.value))
}

/// A reasoning setting as a request takes it; `off` asks for nothing.
pub fn client_reasoning(reasoning: config::Reasoning) -> Option<llm::Reasoning> {
    match reasoning {
        config::Reasoning::Off => None,
        config::Reasoning::Low => Some(llm::Reasoning::Low),
        config::Reasoning::Medium => Some(llm::Reasoning::Medium),
        config::Reasoning::High => Some(llm::Reasoning::High),
        config::Reasoning::ThinkingBudget(tokens) => Some(llm::Reasoning::Budget(tokens)),
    }
}

/// `[limits]` as the agent takes them.
fn turn_limits(limits: &config::LimitSettings) -> agent::TurnLimits {
    agent::TurnLimits {
        output_tokens: limits.turn_output_tokens.as_ref().map(|tokens| tokens.value),
        seconds: limits.turn_seconds.as_ref().map(|seconds| seconds.value),
    }
}

/// The protocol a client speaks for a configured provider API.
fn provider_kind(api: ProviderApi) -> llm::ProviderKind {
    match api {
        ProviderApi::OpenaiChat => llm::ProviderKind::OpenaiChat,
        ProviderApi::Anthropic => llm::ProviderKind::Anthropic,
        ProviderApi::OpenaiResponses => llm::ProviderKind::OpenaiResponses,
    }
}

/// Starts the configured MCP servers in the workspace, each in the sandbox its settings
/// give, saying on stderr which could not start; the session goes on without those.
pub async fn start_mcp(context: &Context) -> McpHub {
    let config = &context.config;
    if config.mcp.is_empty() {
        return McpHub::default();
    }
    let root = context.store.root();
    let git_dirs = git_dirs(&context.store);
    let servers = config.mcp.values().map(|server| {
        let settings = config.sandbox.for_server(&server.sandbox);
        (server.clone(), sandbox_plan(&settings, &context.env, root, &git_dirs))
    });
    let hub = McpHub::start(servers, mcp::Launch { root: root.to_path_buf() }).await;
    for server in hub.servers() {
        let name = &server.config.name;
        match &server.status {
            Status::Failed(reason) => eprintln!(
                "warning: MCP server `{name}` did not start, so the session goes on without it: {reason}"
            ),
            Status::Started | Status::Disabled | Status::Down(_) => {}
        }
        for note in server.notes {
            eprintln!("warning: MCP server `{name}`: {note}");
        }
    }
    hub
}

/// Switches for `benches/agent.rs` only, set in the environment: they let the benchmark
/// measure what the file watcher and checkpointing cost by turning them off. They are not
/// settings (a session run without snapshots has no history to rewind to), and each one
/// set says so on stderr when the agent starts.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BenchSwitches {
    /// `CAIRN_BENCH_NO_SNAPSHOTS=1`: no snapshots, no step commits, no watcher.
    pub no_snapshots: bool,
    /// `CAIRN_BENCH_NO_WATCHER=1`: no file watcher of cairn's own, so user edits and what a
    /// command changed are found by scanning, as where no watcher can run.
    pub no_watcher: bool,
}

impl BenchSwitches {
    pub const NO_SNAPSHOTS: &str = "CAIRN_BENCH_NO_SNAPSHOTS";
    pub const NO_WATCHER: &str = "CAIRN_BENCH_NO_WATCHER";

    /// The switches `env` sets; only the value `1` turns one on.
    pub fn from_env(env: &Env) -> BenchSwitches {
        let on = |name: &str| env.get(name) == Some("1");
        BenchSwitches { no_snapshots: on(Self::NO_SNAPSHOTS), no_watcher: on(Self::NO_WATCHER) }
    }

    /// Says on stderr which switches are on.
    fn warn(self) {
        if self.no_snapshots {
            eprintln!(
                "warning: {}=1 (a benchmark-only switch): this session takes no snapshots and \
                 records no steps",
                Self::NO_SNAPSHOTS
            );
        }
        if self.no_watcher {
            eprintln!(
                "warning: {}=1 (a benchmark-only switch): no file watcher, every step scans",
                Self::NO_WATCHER
            );
        }
    }
}

/// Builds the agent for `session`, continuing from `restored`, with the MCP servers of `mcp`.
pub fn agent(
    context: Context,
    session: Session,
    restored: Restored,
    model: ModelRef,
    client: llm::Client,
    asker: Box<dyn approval::Asker>,
    mcp: McpHub,
) -> Result<Agent, CommandError> {
    let cwd = std::env::current_dir().unwrap_or_else(|_| context.store.root().to_path_buf());
    let instructions =
        Instructions::load(context.store.root(), &cwd, agent::instructions::DEFAULT_CAP);
    let settings = &context.config.memory;
    let context_window = context
        .config
        .providers
        .get(&model.provider)
        .and_then(|provider| provider.context_window.as_ref())
        .map_or(config::DEFAULT_CONTEXT_WINDOW, |window| window.value);
    let memory = AgentMemory::open(
        &context.store,
        MemorySettings {
            inject_tokens: settings.inject_tokens.value as usize,
            compact_at: settings.compact_at.value,
            context_window,
            summarize: settings.summarize.value,
        },
        instructions.files.clone(),
    )?;
    // Broken memory is reported, and the session goes on without it.
    let guidance = match memory.memory.guidance(memory.settings.inject_tokens) {
        Ok(guidance) => guidance,
        Err(err) => {
            eprintln!("warning: no memory is injected: {err}");
            None
        }
    };
    let branch =
        context.store.repo().head_name().ok().flatten().map(|name| name.shorten().to_string());
    let system = prompt::build(&prompt::PromptParts {
        root: context.store.root(),
        branch,
        date: jiff::Zoned::now().strftime("%Y-%m-%d").to_string(),
        instructions: &instructions,
        memory: guidance.as_ref(),
    });
    let policy = Policy::new(context.config.approval.value, asker);
    let reasoning = reasoning_for(&context.config, &model);
    if let sandbox::Plan::Unavailable { explicit, .. } = &context.sandbox {
        let then = if *explicit {
            "each command is asked about (`--approval ask`) or refused"
        } else {
            "commands and MCP servers run unconfined"
        };
        eprintln!("warning: {}; {then}", context.sandbox.describe());
    }
    let sandbox = context.sandbox.clone();
    let bench = BenchSwitches::from_env(&context.env);
    bench.warn();
    Ok(Agent::new(AgentSetup {
        store: context.store,
        session,
        client,
        model: model.model.clone(),
        model_label: model.to_string(),
        reasoning,
        system,
        restored,
        memory,
        policy,
        turn_limits: turn_limits(&context.config.limits),
        watch: !bench.no_watcher,
        bench_no_snapshots: bench.no_snapshots,
        mcp,
        sandbox,
    }))
}

/// A multi-threaded runtime for the agent: the model stream and the tools run on it.
pub fn runtime() -> Result<tokio::runtime::Runtime, CommandError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|err| CommandError::internal(format!("could not start the runtime: {err}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bench_switches_are_off_unless_set_to_1() {
        let switches = |pairs: &[(&str, &str)]| {
            BenchSwitches::from_env(&Env::from_pairs(pairs.iter().copied()))
        };
        assert_eq!(switches(&[]), BenchSwitches::default());
        assert_eq!(
            switches(&[(BenchSwitches::NO_SNAPSHOTS, "0"), (BenchSwitches::NO_WATCHER, "yes")]),
            BenchSwitches::default()
        );
        assert_eq!(
            switches(&[(BenchSwitches::NO_SNAPSHOTS, "1"), (BenchSwitches::NO_WATCHER, "1")]),
            BenchSwitches { no_snapshots: true, no_watcher: true }
        );
    }

    #[test]
    fn configuration_and_client_agree_on_the_default_output_limit() {
        assert_eq!(config::DEFAULT_MAX_OUTPUT_TOKENS, llm::DEFAULT_MAX_OUTPUT_TOKENS);
    }
}
