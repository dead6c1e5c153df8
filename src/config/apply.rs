//! Layering one parsed file on top of the configuration so far: each value it sets
//! replaces the earlier one and remembers this file as its source.

use std::ops::{Range, RangeInclusive};
use std::path::Path;

use toml::Spanned;

use super::file::{
    FileConfig, FileLimits, FileMemory, FilePrice, FileProvider, FileSandbox, KindName,
    line_column, parse_file,
};
use super::{
    Config, ConfigError, MaxTokensField, Price, Provider, ProviderApi, Reasoning, Source, Sourced,
};

/// `[provider.*] max_output_tokens`: no model writes more than this in one response.
const MAX_OUTPUT_TOKENS: RangeInclusive<i64> = 1..=1_000_000;
/// `[provider.*] idle_timeout`, in seconds: up to an hour for the slowest local model.
const IDLE_TIMEOUT: RangeInclusive<i64> = 1..=3600;
/// `[provider.*] retries`: beyond ten, a failing service only keeps the user waiting.
const RETRIES: RangeInclusive<i64> = 0..=10;
/// The output limit of a provider that sets no `max_output_tokens`: the model client's
/// default, which this layer may not name (`cli::launch` checks that they agree).
pub const DEFAULT_MAX_OUTPUT_TOKENS: u32 = 16_384;
/// `[provider.*] thinking_budget`: Anthropic's smallest.
const MIN_THINKING_BUDGET: u32 = 1024;
/// `[limits] turn_output_tokens`.
const TURN_OUTPUT_TOKENS: RangeInclusive<i64> = 1..=100_000_000;
/// `[limits] turn_seconds`: up to a week.
const TURN_SECONDS: RangeInclusive<i64> = 1..=604_800;

/// Turns a span of the file being applied into an error naming its line and column.
struct Locator<'a> {
    text: &'a str,
    source: &'a Source,
}

impl Locator<'_> {
    fn at(&self, span: Option<Range<usize>>, message: String) -> ConfigError {
        let (line, column) = line_column(self.text, span.map_or(0, |span| span.start));
        let path = self.source.path().map(Path::to_path_buf).unwrap_or_default();
        ConfigError::Invalid { path, line, column, message }
    }
}

impl Config {
    /// Applies one file's text on top of what is there.
    pub(super) fn apply_file(&mut self, text: &str, source: Source) -> Result<(), ConfigError> {
        let file = parse_file(text, &source)?;
        self.apply_parsed(file, text, source)
    }

    /// Applies a parsed file on top of what is there.
    pub(super) fn apply_parsed(
        &mut self,
        file: FileConfig,
        text: &str,
        source: Source,
    ) -> Result<(), ConfigError> {
        let locate = Locator { text, source: &source };
        for (name, spanned) in file.provider {
            let provider = self.apply_provider(&name, spanned, &locate)?;
            self.providers.insert(name, provider);
        }
        for (name, spanned) in file.mcp {
            let span = spanned.span();
            let server = self
                .apply_mcp(&name, spanned.into_inner(), &source)
                .map_err(|(inner, message)| locate.at(Some(inner.unwrap_or(span)), message))?;
            self.mcp.insert(name, server);
        }
        if let Some(model) = file.model {
            let span = model.span();
            let parsed = self
                .parse_model(model.get_ref())
                .map_err(|message| locate.at(Some(span), message))?;
            self.model = Some(source.of(parsed));
        }
        if let Some(sandbox) = file.sandbox {
            let span = sandbox.span();
            self.apply_sandbox(sandbox.into_inner(), &source)
                .map_err(|message| locate.at(Some(span), message))?;
        }
        if let Some(approval) = file.approval {
            self.approval = source.of(approval.into_inner());
        }
        if let Some(snapshot) = file.snapshot {
            if let Some(size) = snapshot.max_new_file_size {
                self.max_new_file_size = source.of(size.0);
            }
            if let Some(monitor) = snapshot.fsmonitor {
                self.fsmonitor = source.of(monitor);
            }
        }
        if let Some(redact) = file.transcript.and_then(|transcript| transcript.redact_secrets) {
            self.redact_secrets = source.of(redact);
        }
        if let Some(memory) = file.memory {
            self.apply_memory(memory, &locate)?;
        }
        if let Some(limits) = file.limits {
            self.apply_limits(limits, &locate)?;
        }
        self.files.push(source);
        Ok(())
    }

    /// One `[provider.<name>]` table on top of the provider of that name, if there is one.
    fn apply_provider(
        &self,
        name: &str,
        spanned: Spanned<FileProvider>,
        locate: &Locator<'_>,
    ) -> Result<Provider, ConfigError> {
        let source = locate.source;
        let span = spanned.span();
        let entry = spanned.into_inner();
        let existing = self.providers.get(name).cloned();
        let kind = match (entry.kind, existing.as_ref()) {
            (Some(KindName(kind)), _) => source.of(kind),
            (None, Some(provider)) => provider.kind.clone(),
            (None, None) => {
                return Err(locate.at(
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
                    return Err(locate.at(
                        Some(url_span),
                        format!("base_url `{url}` must start with http:// or https://"),
                    ));
                }
                source.of(url)
            }
            (None, Some(provider)) => provider.base_url.clone(),
            (None, None) => {
                return Err(locate.at(
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
        let key = |field: &str| format!("[provider.{name}] {field}");
        let number = |value: Option<Spanned<i64>>, field: &str, range, what| {
            value.map(|value| ranged(locate, &key(field), value, range, what)).transpose()
        };
        let max_output_tokens =
            number(entry.max_output_tokens, "max_output_tokens", MAX_OUTPUT_TOKENS, "tokens")?;
        let idle_timeout = number(entry.idle_timeout, "idle_timeout", IDLE_TIMEOUT, "seconds")?;
        let retries = number(entry.retries, "retries", RETRIES, "a number of retries")?;
        let max_tokens_field = entry
            .max_tokens_field
            .map(|field| max_tokens_field(locate, &key("max_tokens_field"), field, kind.value))
            .transpose()?;
        let price = entry.price.map(|price| prices(locate, &key("price"), price)).transpose()?;
        // The ranges above fit a u32.
        let to_u32 = |value: u64| u32::try_from(value).unwrap_or(u32::MAX);
        let inherited = existing.as_ref();
        let max_output_tokens = max_output_tokens
            .map(|tokens| source.of(to_u32(tokens)))
            .or_else(|| inherited.and_then(|p| p.max_output_tokens.clone()));
        let settings = (entry.reasoning, entry.thinking_budget);
        let reasoning = reasoning(locate, name, settings, kind.value, max_output_tokens.as_ref())?;
        Ok(Provider {
            name: name.to_owned(),
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
            max_output_tokens,
            idle_timeout: idle_timeout
                .map(|seconds| source.of(seconds))
                .or_else(|| inherited.and_then(|p| p.idle_timeout.clone())),
            retries: retries
                .map(|retries| source.of(to_u32(retries)))
                .or_else(|| inherited.and_then(|p| p.retries.clone())),
            max_tokens_field: max_tokens_field
                .map(|field| source.of(field))
                .or_else(|| inherited.and_then(|p| p.max_tokens_field.clone())),
            prompt_cache: entry
                .prompt_cache
                .map(|on| source.of(on))
                .or_else(|| inherited.and_then(|p| p.prompt_cache.clone())),
            price: price
                .map(|price| source.of(price))
                .or_else(|| inherited.and_then(|p| p.price.clone())),
            reasoning: reasoning
                .map(|reasoning| source.of(reasoning))
                .or_else(|| inherited.and_then(|p| p.reasoning.clone())),
            default_model: existing.and_then(|p| p.default_model),
        })
    }

    /// `[limits]` on top of the limits so far.
    fn apply_limits(
        &mut self,
        limits: FileLimits,
        locate: &Locator<'_>,
    ) -> Result<(), ConfigError> {
        let source = locate.source;
        if let Some(tokens) = limits.turn_output_tokens {
            let key = "[limits] turn_output_tokens";
            let tokens = ranged(locate, key, tokens, TURN_OUTPUT_TOKENS, "tokens")?;
            self.limits.turn_output_tokens = Some(source.of(tokens));
        }
        if let Some(seconds) = limits.turn_seconds {
            let seconds =
                ranged(locate, "[limits] turn_seconds", seconds, TURN_SECONDS, "seconds")?;
            self.limits.turn_seconds = Some(source.of(seconds));
        }
        Ok(())
    }

    /// `[memory]` on top of the memory settings so far.
    fn apply_memory(
        &mut self,
        memory: FileMemory,
        locate: &Locator<'_>,
    ) -> Result<(), ConfigError> {
        let source = locate.source;
        if let Some(tokens) = memory.inject_tokens {
            self.memory.inject_tokens = source.of(tokens);
        }
        if let Some(percent) = memory.compact_at {
            let span = percent.span();
            let percent = percent.into_inner();
            if !(10..=95).contains(&percent) {
                return Err(locate.at(
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
        Ok(())
    }
}

impl Config {
    fn apply_sandbox(&mut self, sandbox: FileSandbox, source: &Source) -> Result<(), String> {
        if let Some(paths) = &sandbox.writable_paths {
            check_writable_paths("sandbox.writable_paths", paths)?;
        }
        let settings = &mut self.sandbox;
        if let Some(mode) = sandbox.mode {
            settings.mode = source.of(mode);
        }
        if let Some(network) = sandbox.network {
            settings.network = source.of(network);
        }
        if let Some(writable_git) = sandbox.writable_git {
            settings.writable_git = source.of(writable_git);
        }
        if let Some(paths) = sandbox.writable_paths {
            settings.writable_paths = source.of(paths);
        }
        Ok(())
    }
}

/// An integer setting within `range`, or an error naming `key` and the range.
fn ranged(
    locate: &Locator<'_>,
    key: &str,
    value: Spanned<i64>,
    range: RangeInclusive<i64>,
    what: &str,
) -> Result<u64, ConfigError> {
    let span = value.span();
    let value = value.into_inner();
    match u64::try_from(value) {
        Ok(fits) if range.contains(&value) => Ok(fits),
        _ => Err(locate.at(
            Some(span),
            format!(
                "{key} = {value} is out of range; give {what} from {} to {}",
                range.start(),
                range.end()
            ),
        )),
    }
}

/// `reasoning` or `thinking_budget`, whichever the table sets (not both). A thinking
/// budget is for Anthropic, at least the API's minimum and below the output limit that
/// holds it.
fn reasoning(
    locate: &Locator<'_>,
    name: &str,
    (level, budget): (Option<Spanned<String>>, Option<Spanned<i64>>),
    kind: ProviderApi,
    max_output_tokens: Option<&Sourced<u32>>,
) -> Result<Option<Reasoning>, ConfigError> {
    let key = |field: &str| format!("[provider.{name}] {field}");
    match (level, budget) {
        (Some(_), Some(budget)) => Err(locate.at(
            Some(budget.span()),
            format!(
                "{} and {} are two ways to say one thing; set one",
                key("reasoning"),
                key("thinking_budget")
            ),
        )),
        (Some(level), None) => level.get_ref().parse().map(Some).map_err(|message| {
            locate.at(Some(level.span()), format!("{}: {message}", key("reasoning")))
        }),
        (None, Some(budget)) => {
            if kind != ProviderApi::Anthropic {
                return Err(locate.at(
                    Some(budget.span()),
                    format!(
                        "{} is for providers of kind anthropic; this one is {kind}",
                        key("thinking_budget")
                    ),
                ));
            }
            let limit = max_output_tokens.map_or(DEFAULT_MAX_OUTPUT_TOKENS, |t| t.value);
            let range = i64::from(MIN_THINKING_BUDGET)..=i64::from(limit) - 1;
            let what = "tokens below max_output_tokens";
            let tokens = ranged(locate, &key("thinking_budget"), budget, range, what)?;
            Ok(Some(Reasoning::ThinkingBudget(u32::try_from(tokens).unwrap_or(u32::MAX))))
        }
        (None, None) => Ok(None),
    }
}

/// `max_tokens_field`: one of the two names, on a provider that speaks Chat Completions.
fn max_tokens_field(
    locate: &Locator<'_>,
    key: &str,
    field: Spanned<String>,
    kind: ProviderApi,
) -> Result<MaxTokensField, ConfigError> {
    let span = field.span();
    let name = field.into_inner();
    let Some(field) = MaxTokensField::ALL.into_iter().find(|field| field.as_str() == name) else {
        return Err(locate.at(
            Some(span),
            format!(
                "{key} = \"{name}\" is not a field; expected max_tokens or max_completion_tokens"
            ),
        ));
    };
    if kind != ProviderApi::OpenaiChat {
        return Err(locate.at(
            Some(span),
            format!("{key} is for providers of kind openai-chat; this one is {kind}"),
        ));
    }
    Ok(field)
}

/// `price`: each given price a finite, non-negative number of dollars per million tokens.
fn prices(locate: &Locator<'_>, key: &str, price: FilePrice) -> Result<Price, ConfigError> {
    let check = |name: &str, value: Spanned<f64>| {
        let span = value.span();
        let value = value.into_inner();
        if value.is_finite() && value >= 0.0 {
            Ok(value)
        } else {
            Err(locate.at(
                Some(span),
                format!(
                    "{key}.{name} = {value} is not a price; give dollars per million tokens, \
                     0 or more"
                ),
            ))
        }
    };
    let optional =
        |name: &str, value: Option<Spanned<f64>>| value.map(|value| check(name, value)).transpose();
    Ok(Price {
        input: check("input", price.input)?,
        output: check("output", price.output)?,
        cached_input: optional("cached_input", price.cached_input)?,
        cache_write: optional("cache_write", price.cache_write)?,
    })
}

/// `writable_paths` are absolute or start with `~/`: a relative path would be relative to
/// wherever cairn happens to start.
pub(super) fn check_writable_paths(key: &str, paths: &[String]) -> Result<(), String> {
    match paths.iter().find(|path| !path.starts_with('/') && !path.starts_with("~/")) {
        Some(bad) => Err(format!(
            "{key}: `{bad}` is relative; write an absolute path or one starting with ~/"
        )),
        None => Ok(()),
    }
}
