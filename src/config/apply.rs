//! Layering one parsed file on top of the configuration so far: each value it sets
//! replaces the earlier one and remembers this file as its source.

use std::ops::Range;
use std::path::Path;

use toml::Spanned;

use super::file::{
    FileConfig, FileMemory, FileProvider, FileSandbox, KindName, line_column, parse_file,
};
use super::{Config, ConfigError, Provider, Source};

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
        if let Some(size) = file.snapshot.and_then(|snapshot| snapshot.max_new_file_size) {
            self.max_new_file_size = source.of(size.0);
        }
        if let Some(redact) = file.transcript.and_then(|transcript| transcript.redact_secrets) {
            self.redact_secrets = source.of(redact);
        }
        if let Some(memory) = file.memory {
            self.apply_memory(memory, &locate)?;
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
            default_model: existing.and_then(|p| p.default_model),
        })
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
