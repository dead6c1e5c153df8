//! `[mcp.<name>]`: the MCP servers a configuration defines, and how one file's table
//! layers on what earlier files said about the same server.

use std::collections::BTreeMap;
use std::ops::Range;

use toml::Spanned;

use super::apply::check_writable_paths;
use super::file::{FileMcp, FileSandbox};
use super::{Config, SandboxSettings, Source, Sourced};
use crate::sandbox::Mode;

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
    /// `[mcp.<name>] sandbox`: how this server is confined, where it differs from
    /// `[sandbox]`.
    pub sandbox: McpSandbox,
}

/// `[mcp.<name>] sandbox = "MODE"` or `[mcp.<name>.sandbox]`: each key set here replaces
/// the session's `[sandbox]` key for this server; `writable_paths` add to the session's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct McpSandbox {
    pub mode: Option<Sourced<Mode>>,
    pub network: Option<Sourced<bool>>,
    pub writable_git: Option<Sourced<bool>>,
    pub writable_paths: Option<Sourced<Vec<String>>>,
}

impl McpSandbox {
    /// This table on top of what an earlier file said about the same server.
    fn layered(
        earlier: Option<&McpSandbox>,
        file: FileSandbox,
        source: &Source,
    ) -> Result<McpSandbox, String> {
        if let Some(paths) = &file.writable_paths {
            check_writable_paths("sandbox.writable_paths", paths)?;
        }
        let earlier = earlier.cloned().unwrap_or_default();
        Ok(McpSandbox {
            mode: file.mode.map(|mode| source.of(mode)).or(earlier.mode),
            network: file.network.map(|network| source.of(network)).or(earlier.network),
            writable_git: file.writable_git.map(|git| source.of(git)).or(earlier.writable_git),
            writable_paths: file
                .writable_paths
                .map(|paths| source.of(paths))
                .or(earlier.writable_paths),
        })
    }
}

impl SandboxSettings {
    /// The settings one MCP server runs under: these, with its own table on top.
    pub fn for_server(&self, server: &McpSandbox) -> SandboxSettings {
        let mut writable_paths = self.writable_paths.clone();
        if let Some(own) = &server.writable_paths {
            writable_paths.value.extend(own.value.iter().cloned());
            writable_paths.source = own.source.clone();
        }
        SandboxSettings {
            mode: server.mode.clone().unwrap_or_else(|| self.mode.clone()),
            network: server.network.clone().unwrap_or_else(|| self.network.clone()),
            writable_git: server.writable_git.clone().unwrap_or_else(|| self.writable_git.clone()),
            writable_paths,
        }
    }
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
        let sandbox = match entry.sandbox {
            Some(table) => {
                let span = table.span();
                McpSandbox::layered(existing.map(|s| &s.sandbox), table.into_inner(), source)
                    .map_err(|message| (Some(span), format!("mcp server `{name}`: {message}")))?
            }
            None => existing.map(|s| s.sandbox.clone()).unwrap_or_default(),
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
            sandbox,
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
