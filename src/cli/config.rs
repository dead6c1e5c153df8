//! `cairn config show`: the effective configuration and where each value came from.
//!
//! Useful when a setting does not take: it shows which file (or flag, or environment
//! variable) won, and for a project's `cairn.toml` whether it is trusted and which of its
//! keys applied. Keys are never printed in full, and header values and MCP servers'
//! environment values, which may carry credentials, are masked as well.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;

use serde_json::{Value, json};

use super::CommandError;
use crate::config::{
    self, Approval, Config, ConfigError, Env, Flags, McpServer, ModelRef, Price, ProjectFile,
    Provider, ProviderApi, Reasoning, Source, Sourced, Trust, format_size, mask_secret, trust,
};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Subcommand,
}

#[derive(Debug, clap::Subcommand)]
enum Subcommand {
    /// Print the effective configuration and the source of each value.
    Show(ShowArgs),
}

#[derive(Debug, clap::Args)]
struct ShowArgs {
    /// Print JSON instead of annotated TOML.
    #[arg(long)]
    json: bool,
    /// Show the configuration as it would be with this model (`provider/model`).
    #[arg(long)]
    model: Option<String>,
    /// Show the configuration as it would be with this approval mode.
    #[arg(long, value_parser = str::parse::<Approval>)]
    approval: Option<Approval>,
}

pub fn run(args: Args) -> Result<ExitCode, CommandError> {
    match args.command {
        Subcommand::Show(args) => show(args),
    }
}

fn show(args: ShowArgs) -> Result<ExitCode, CommandError> {
    let env = Env::from_process();
    let flags =
        Flags { model: args.model, approval: args.approval, sandbox: None, reasoning: None };
    let project = std::env::current_dir().ok().and_then(|cwd| project_at(&cwd));
    let config = config::load(project.as_ref(), &env, &flags).map_err(config_error)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|err| CommandError::internal(format!("could not start the runtime: {err}")))?;
    let model = runtime.block_on(super::launch::resolve_model(&config, &env));
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&to_json(&config, &model, &env)).unwrap_or_default()
        );
    } else {
        print!("{}", to_text(&config, &model, &env));
    }
    Ok(ExitCode::SUCCESS)
}

/// The repository holding `dir`, as configuration needs to know it: its top directory and
/// its origin URL (trust is void when that changes). Configuration itself knows nothing
/// of git.
pub(crate) fn project_at(dir: &Path) -> Option<config::Project> {
    let repo = gix::discover(dir).ok()?;
    let root = repo.workdir().map(Path::to_path_buf)?;
    let origin_url = repo.config_snapshot().string("remote.origin.url").map(|url| url.to_string());
    Some(config::Project { root, origin_url })
}

pub(crate) fn config_error(err: ConfigError) -> CommandError {
    let hint = err.hint();
    let error = CommandError::user_error(err);
    match hint {
        Some(hint) => error.with_hint(hint),
        None => error,
    }
}

/// What `api_key_env` currently holds, masked.
fn key_status(env: &Env, var: &str) -> String {
    match env.get(var) {
        Some(key) => format!("${var} is set: {}", mask_secret(key)),
        None => format!("${var} is not set"),
    }
}

fn quote(text: &str) -> String {
    Value::String(text.to_owned()).to_string()
}

/// The settings `cairn config show` lists, each with a note (its source) aligned after it.
#[derive(Default)]
struct Listing(Vec<(String, String)>);

impl Listing {
    fn line(&mut self, setting: String, note: String) {
        self.0.push((setting, note));
    }

    /// A blank line and a table's header, e.g. `[memory]`.
    fn table(&mut self, header: String) {
        self.line(String::new(), String::new());
        self.line(header, String::new());
    }
}

fn to_text(config: &Config, model: &Result<Sourced<ModelRef>, ConfigError>, env: &Env) -> String {
    let mut listing = Listing::default();
    match model {
        Ok(model) => listing
            .line(format!("model = {}", quote(&model.value.to_string())), model.source.to_string()),
        Err(err) => {
            let mut note = err.to_string();
            if let Some(hint) = err.hint() {
                note = format!("{note}; {hint}");
            }
            listing.line("# model = (none)".into(), note);
        }
    }
    listing.line(
        format!("approval = {}", quote(config.approval.value.as_str())),
        config.approval.source.to_string(),
    );
    settings_text(&mut listing, config);
    for provider in config.providers.values() {
        provider_text(&mut listing, provider, env);
    }
    for server in config.mcp.values() {
        mcp_text(&mut listing, server);
    }
    render(config, listing)
}

/// Whether the Watchman that `[snapshot] fsmonitor` asks for answers (`None`: it asks for
/// none).
fn watchman_status(config: &Config) -> Option<String> {
    (config.fsmonitor.value != crate::config::FsMonitor::None).then(|| {
        match crate::checkpoint::watchman_version() {
            Ok(version) => format!("in use: Watchman {version} answers"),
            Err(why) => format!("not in use, snapshots scan: {why}"),
        }
    })
}

/// `[snapshot]`, `[transcript]`, `[memory]` and `[limits]`.
fn settings_text(listing: &mut Listing, config: &Config) {
    listing.table("[snapshot]".into());
    let size = &config.max_new_file_size;
    listing.line(
        format!("max_new_file_size = {}", quote(&format_size(size.value))),
        size.source.to_string(),
    );
    listing.line(
        format!("fsmonitor = {}", quote(config.fsmonitor.value.as_str())),
        match watchman_status(config) {
            Some(status) => format!("{}; {status}", config.fsmonitor.source),
            None => config.fsmonitor.source.to_string(),
        },
    );
    listing.table("[transcript]".into());
    listing.line(
        format!("redact_secrets = {}", config.redact_secrets.value),
        config.redact_secrets.source.to_string(),
    );
    listing.table("[memory]".into());
    let memory = &config.memory;
    for (key, value) in
        [("inject_tokens", &memory.inject_tokens), ("compact_at", &memory.compact_at)]
    {
        listing.line(format!("{key} = {}", value.value), value.source.to_string());
    }
    for (key, value) in [
        ("summarize", &memory.summarize),
        ("push", &memory.push),
        ("merge_on_fetch", &memory.merge_on_fetch),
    ] {
        listing.line(format!("{key} = {}", value.value), value.source.to_string());
    }
    listing.table("[limits]".into());
    let limits = &config.limits;
    for (key, value) in
        [("turn_output_tokens", &limits.turn_output_tokens), ("turn_seconds", &limits.turn_seconds)]
    {
        match value {
            Some(value) => {
                listing.line(format!("{key} = {}", value.value), value.source.to_string())
            }
            None => listing.line(format!("# {key}: no limit"), "default".into()),
        }
    }
}

/// One `[provider.<name>]` table, with the key's state and header values masked.
fn provider_text(listing: &mut Listing, provider: &Provider, env: &Env) {
    listing.table(format!("[provider.{}]", provider.name));
    listing.line(
        format!("kind = {}", quote(provider.kind.value.as_str())),
        provider.kind.source.to_string(),
    );
    listing.line(
        format!("base_url = {}", quote(&provider.base_url.value)),
        provider.base_url.source.to_string(),
    );
    match &provider.api_key_env {
        Some(var) => listing.line(
            format!("api_key_env = {}", quote(&var.value)),
            format!("{}; {}", var.source, key_status(env, &var.value)),
        ),
        None => listing.line("# api_key_env: none, no key is sent".into(), String::new()),
    }
    if let Some(window) = &provider.context_window {
        listing.line(format!("context_window = {}", window.value), window.source.to_string());
    }
    if let Some(tokens) = &provider.max_output_tokens {
        listing.line(format!("max_output_tokens = {}", tokens.value), tokens.source.to_string());
    }
    if let Some(seconds) = &provider.idle_timeout {
        listing.line(format!("idle_timeout = {}", seconds.value), seconds.source.to_string());
    }
    if let Some(retries) = &provider.retries {
        listing.line(format!("retries = {}", retries.value), retries.source.to_string());
    }
    if let Some(field) = &provider.max_tokens_field {
        listing.line(
            format!("max_tokens_field = {}", quote(field.value.as_str())),
            field.source.to_string(),
        );
    }
    if let Some(on) = &provider.prompt_cache {
        listing.line(format!("prompt_cache = {}", on.value), on.source.to_string());
    }
    if let Some(price) = &provider.price {
        listing.line(format!("price = {}", price_text(&price.value)), price.source.to_string());
    }
    if let Some(reasoning) = &provider.reasoning {
        let setting = match reasoning.value {
            Reasoning::ThinkingBudget(tokens) => format!("thinking_budget = {tokens}"),
            level => format!("reasoning = {}", quote(&level.to_string())),
        };
        listing.line(setting, reasoning.source.to_string());
    }
    for (name, value) in &provider.headers {
        listing.line(
            format!("headers.{} = {}", quote(name), quote(&mask_secret(&value.value))),
            value.source.to_string(),
        );
    }
}

/// A price table as a file writes it: `{ input = 3, output = 15 }`.
fn price_text(price: &Price) -> String {
    let mut keys = vec![format!("input = {}", price.input), format!("output = {}", price.output)];
    keys.extend(price.cached_input.map(|value| format!("cached_input = {value}")));
    keys.extend(price.cache_write.map(|value| format!("cache_write = {value}")));
    format!("{{ {} }}", keys.join(", "))
}

/// One `[mcp.<name>]` table, with `env` values masked.
fn mcp_text(listing: &mut Listing, server: &McpServer) {
    listing.table(format!("[mcp.{}]", server.name));
    listing.line(
        format!("command = {}", quote(&server.command.value)),
        server.command.source.to_string(),
    );
    listing.line(format!("args = {}", json!(server.args.value)), server.args.source.to_string());
    for (name, value) in &server.env {
        listing.line(
            format!("env.{} = {}", quote(name), quote(&mask_secret(&value.value))),
            value.source.to_string(),
        );
    }
    listing.line(format!("enabled = {}", server.enabled.value), server.enabled.source.to_string());
    if let Some(tools) = &server.tools {
        listing.line(format!("tools = {}", json!(tools.value)), tools.source.to_string());
    }
    for (key, value) in [
        ("startup_timeout_ms", &server.startup_timeout_ms),
        ("tool_timeout_ms", &server.tool_timeout_ms),
    ] {
        listing.line(format!("{key} = {}", value.value), value.source.to_string());
    }
}

/// The files read, the project file's report, then the listing with its notes aligned.
fn render(config: &Config, listing: Listing) -> String {
    let width = listing
        .0
        .iter()
        .filter(|(_, note)| !note.is_empty())
        .map(|(setting, _)| setting.chars().count())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    if config.files.is_empty() {
        out.push_str("# no configuration files; built-in defaults only\n");
    } else {
        for file in &config.files {
            out.push_str(&format!("# read {file}\n"));
        }
    }
    if let Some(project) = &config.project {
        out.push_str(&project_text(project));
    }
    for (setting, note) in listing.0 {
        if note.is_empty() {
            out.push_str(&setting);
        } else {
            out.push_str(&format!("{setting:width$}  # {note}"));
        }
        out.push('\n');
    }
    out
}

/// The project file's trust and, key by key, whether it applied.
fn project_text(project: &ProjectFile) -> String {
    let trust = match &project.trust {
        Trust::Trusted => "trusted (`cairn trust --revoke` undoes it): applied in full".to_owned(),
        Trust::Untrusted => "not trusted (`cairn trust` applies it in full)".to_owned(),
        Trust::OriginChanged { trusted, now } => format!(
            "not trusted: trusted while origin was {}, but origin is now {} \
             (`cairn trust` trusts it again)",
            trusted.as_deref().map_or("(none)".into(), trust::printable),
            now.as_deref().map_or("(none)".into(), trust::printable)
        ),
    };
    let mut out = format!("# project config {}: {trust}\n", project.path.display());
    for key in &project.keys {
        let state = if key.applied { "applied" } else { "ignored" };
        match &key.note {
            Some(note) => out.push_str(&format!("#   {state} {}: {note}\n", key.key)),
            None => out.push_str(&format!("#   {state} {}\n", key.key)),
        }
    }
    out
}

fn project_json(project: &ProjectFile) -> Value {
    let (trusted_origin, origin) = match &project.trust {
        Trust::OriginChanged { trusted, now } => (json!(trusted), json!(now)),
        Trust::Trusted | Trust::Untrusted => (Value::Null, Value::Null),
    };
    json!({
        "path": project.path.display().to_string(),
        "trust": project.trust.kind(),
        "trusted_origin": trusted_origin,
        "origin": origin,
        "keys": project.keys.iter().map(|key| json!({
            "key": key.key,
            "applied": key.applied,
            "note": key.note,
        })).collect::<Vec<_>>(),
    })
}

fn source_json(source: &Source) -> Value {
    let mut value = json!({"kind": source.kind()});
    match source {
        Source::UserFile(path) | Source::CairnConfig(path) | Source::ProjectFile(path) => {
            value["path"] = json!(path.display().to_string());
        }
        Source::Flag(flag) => value["flag"] = json!(flag),
        Source::Detected(why) => value["detail"] = json!(why),
        Source::Default | Source::BuiltIn => {}
    }
    value
}

fn sourced_json<T: Into<Value> + Clone>(sourced: &Sourced<T>) -> Value {
    json!({"value": sourced.value.clone().into(), "source": source_json(&sourced.source)})
}

fn to_json(config: &Config, model: &Result<Sourced<ModelRef>, ConfigError>, env: &Env) -> Value {
    let providers: serde_json::Map<String, Value> = config
        .providers
        .values()
        .map(|provider| (provider.name.clone(), provider_json(provider, env)))
        .collect();
    let mcp: serde_json::Map<String, Value> =
        config.mcp.values().map(|server| (server.name.clone(), mcp_json(server))).collect();
    let (model, model_error) = model_json(model);
    json!({
        "files": config.files.iter().map(source_json).collect::<Vec<_>>(),
        "model": model,
        "model_error": model_error,
        "approval": sourced_json(&Sourced::new(config.approval.value.as_str(), config.approval.source.clone())),
        "snapshot": {
            "max_new_file_size": sourced_json(&config.max_new_file_size),
            "fsmonitor": sourced_json(&Sourced::new(config.fsmonitor.value.as_str(), config.fsmonitor.source.clone())),
            "fsmonitor_status": watchman_status(config),
        },
        "transcript": {"redact_secrets": sourced_json(&config.redact_secrets)},
        "memory": {
            "inject_tokens": sourced_json(&config.memory.inject_tokens),
            "compact_at": sourced_json(&config.memory.compact_at),
            "summarize": sourced_json(&config.memory.summarize),
            "push": sourced_json(&config.memory.push),
            "merge_on_fetch": sourced_json(&config.memory.merge_on_fetch),
        },
        "limits": {
            "turn_output_tokens": config.limits.turn_output_tokens.as_ref().map(sourced_json),
            "turn_seconds": config.limits.turn_seconds.as_ref().map(sourced_json),
        },
        "project": config.project.as_ref().map(project_json),
        "providers": providers,
        "mcp": mcp,
    })
}

/// The model as `model`, or why there is none as `model_error`.
fn model_json(model: &Result<Sourced<ModelRef>, ConfigError>) -> (Value, Value) {
    match model {
        Ok(model) => (
            sourced_json(&Sourced::new(model.value.to_string(), model.source.clone())),
            Value::Null,
        ),
        Err(err) => {
            let message = match err.hint() {
                Some(hint) => format!("{err}; {hint}"),
                None => err.to_string(),
            };
            (Value::Null, json!(message))
        }
    }
}

/// One provider, with the key (if set) and header values masked.
fn provider_json(provider: &Provider, env: &Env) -> Value {
    let key = provider.api_key_env.as_ref().and_then(|var| env.get(&var.value)).map(mask_secret);
    json!({
        "kind": sourced_json(&Sourced::new(provider.kind.value.as_str(), provider.kind.source.clone())),
        "base_url": sourced_json(&provider.base_url),
        "api_key_env": provider.api_key_env.as_ref().map(sourced_json),
        "api_key": key,
        "context_window": provider.context_window.as_ref().map(sourced_json),
        "max_output_tokens": provider.max_output_tokens.as_ref().map(sourced_json),
        "idle_timeout": provider.idle_timeout.as_ref().map(sourced_json),
        "retries": provider.retries.as_ref().map(sourced_json),
        "max_tokens_field": (provider.kind.value == ProviderApi::OpenaiChat)
            .then(|| provider.max_tokens_field().as_str()),
        "prompt_cache": provider.prompt_cache.as_ref().map(sourced_json),
        "reasoning": provider.reasoning.as_ref().map(|reasoning| json!({
            "value": match reasoning.value {
                Reasoning::ThinkingBudget(tokens) => json!({"thinking_budget": tokens}),
                level => json!(level.to_string()),
            },
            "source": source_json(&reasoning.source),
        })),
        "price": provider.price.as_ref().map(|price| json!({
            "value": {
                "input": price.value.input,
                "output": price.value.output,
                "cached_input": price.value.cached_input,
                "cache_write": price.value.cache_write,
            },
            "source": source_json(&price.source),
        })),
        "headers": masked_json(&provider.headers),
    })
}

/// One MCP server, with `env` values masked.
fn mcp_json(server: &McpServer) -> Value {
    json!({
        "command": sourced_json(&server.command),
        "args": sourced_json(&server.args),
        "env": masked_json(&server.env),
        "enabled": sourced_json(&server.enabled),
        "tools": server.tools.as_ref().map(sourced_json),
        "startup_timeout_ms": sourced_json(&server.startup_timeout_ms),
        "tool_timeout_ms": sourced_json(&server.tool_timeout_ms),
    })
}

/// Named values that may be secrets (headers, a server's `env`), masked.
fn masked_json(values: &BTreeMap<String, Sourced<String>>) -> serde_json::Map<String, Value> {
    values
        .iter()
        .map(|(name, value)| {
            let masked = Sourced::new(mask_secret(&value.value), value.source.clone());
            (name.clone(), sourced_json(&masked))
        })
        .collect()
}
