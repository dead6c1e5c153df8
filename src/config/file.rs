//! The shapes of a configuration file as TOML reads them, strictly (an unknown key is an
//! error), and the parsing of sizes such as `"8MiB"`.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Deserializer};
use toml::Spanned;

use super::{Approval, ConfigError, ProviderApi, Source};
use crate::sandbox::Mode;

// The shapes of a configuration file. `Spanned` keeps positions for errors found after
// parsing.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileConfig {
    pub(super) model: Option<Spanned<String>>,
    pub(super) approval: Option<Spanned<Approval>>,
    #[serde(default)]
    pub(super) provider: BTreeMap<String, Spanned<FileProvider>>,
    pub(super) snapshot: Option<FileSnapshot>,
    pub(super) transcript: Option<FileTranscript>,
    pub(super) memory: Option<FileMemory>,
    #[serde(default)]
    pub(super) mcp: BTreeMap<String, Spanned<FileMcp>>,
    pub(super) sandbox: Option<Spanned<FileSandbox>>,
    pub(super) limits: Option<FileLimits>,
}

/// `[limits]`: what one turn may spend.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileLimits {
    pub(super) turn_output_tokens: Option<Spanned<i64>>,
    pub(super) turn_seconds: Option<Spanned<i64>>,
}

/// `sandbox = "MODE"`, or a `[sandbox]` table with `mode` and the settings.
#[derive(Default)]
pub(super) struct FileSandbox {
    pub(super) mode: Option<Mode>,
    pub(super) network: Option<bool>,
    pub(super) writable_git: Option<bool>,
    pub(super) writable_paths: Option<Vec<String>>,
}

impl<'de> Deserialize<'de> for FileSandbox {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Table {
            mode: Option<String>,
            network: Option<bool>,
            writable_git: Option<bool>,
            writable_paths: Option<Vec<String>>,
        }
        #[derive(Deserialize)]
        #[serde(
            untagged,
            expecting = "a sandbox mode (\"read-only\", \"workspace-write\" or \"off\"), or a \
                         [sandbox] table of mode, network, writable_git and writable_paths"
        )]
        enum Raw {
            Mode(String),
            Table(Table),
        }
        let mode = |text: Option<String>| {
            text.map(|text| text.parse::<Mode>()).transpose().map_err(serde::de::Error::custom)
        };
        Ok(match Raw::deserialize(deserializer)? {
            Raw::Mode(text) => FileSandbox { mode: mode(Some(text))?, ..FileSandbox::default() },
            Raw::Table(table) => FileSandbox {
                mode: mode(table.mode)?,
                network: table.network,
                writable_git: table.writable_git,
                writable_paths: table.writable_paths,
            },
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileMcp {
    pub(super) command: Option<Spanned<String>>,
    pub(super) args: Option<Vec<String>>,
    pub(super) env: Option<BTreeMap<String, String>>,
    pub(super) enabled: Option<bool>,
    pub(super) tools: Option<Vec<String>>,
    pub(super) startup_timeout_ms: Option<Spanned<u64>>,
    pub(super) tool_timeout_ms: Option<Spanned<u64>>,
    pub(super) sandbox: Option<Spanned<FileSandbox>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileProvider {
    pub(super) kind: Option<KindName>,
    pub(super) base_url: Option<Spanned<String>>,
    pub(super) api_key_env: Option<String>,
    pub(super) context_window: Option<u64>,
    pub(super) headers: Option<BTreeMap<String, String>>,
    pub(super) max_output_tokens: Option<Spanned<i64>>,
    pub(super) idle_timeout: Option<Spanned<i64>>,
    pub(super) retries: Option<Spanned<i64>>,
    pub(super) max_tokens_field: Option<Spanned<String>>,
    pub(super) prompt_cache: Option<bool>,
    pub(super) price: Option<FilePrice>,
    pub(super) reasoning: Option<Spanned<String>>,
    pub(super) thinking_budget: Option<Spanned<i64>>,
}

/// `price = { input = 3.0, cached_input = 0.3, output = 15.0 }`: dollars per million tokens.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FilePrice {
    pub(super) input: Spanned<f64>,
    pub(super) output: Spanned<f64>,
    pub(super) cached_input: Option<Spanned<f64>>,
    pub(super) cache_write: Option<Spanned<f64>>,
}

/// A provider kind as written in a file, read through `FromStr` so that a wrong type and a
/// wrong name both say what is expected.
#[derive(Deserialize)]
#[serde(try_from = "String")]
pub(super) struct KindName(pub(super) ProviderApi);

impl TryFrom<String> for KindName {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        ProviderApi::ALL.into_iter().find(|kind| kind.as_str() == text).map(KindName).ok_or_else(
            || {
                format!(
                    "`{text}` is not a provider kind; expected openai-chat, anthropic or \
                     openai-responses"
                )
            },
        )
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileTranscript {
    pub(super) redact_secrets: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileMemory {
    pub(super) inject_tokens: Option<u64>,
    pub(super) compact_at: Option<Spanned<u64>>,
    pub(super) summarize: Option<bool>,
    pub(super) push: Option<bool>,
    pub(super) merge_on_fetch: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileSnapshot {
    pub(super) max_new_file_size: Option<ByteSize>,
    pub(super) fsmonitor: Option<super::FsMonitor>,
}

/// A size in bytes, written as a number (`1000`) or with a unit (`"512KiB"`, `"8MiB"`).
pub(super) struct ByteSize(pub(super) u64);

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

/// Reads a configuration file's text strictly.
pub(super) fn parse_file(text: &str, source: &Source) -> Result<FileConfig, ConfigError> {
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

/// 1-based line and column (in characters) of a byte offset.
pub(super) fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |at| at + 1);
    (line, before[line_start..].chars().count() + 1)
}
