//! `[mcp.<name>]`: the MCP servers a configuration defines, and how one file's table
//! layers on what earlier files said about the same server.

use std::collections::BTreeMap;
use std::ops::Range;

use toml::Spanned;

use super::file::FileMcp;
use super::{Config, Source, Sourced};

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

impl Config {
    /// One `[mcp.<name>]` table on top of what earlier files said about that server. An
    /// error carries the span of the value at fault, if it is not the whole table.
    pub(super) fn apply_mcp(
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
