//! MCP servers: tools from other programs, spoken to with the Model Context Protocol over
//! their stdin and stdout (the official `rmcp` SDK, client side only).
//!
//! [`McpHub::start`] starts the configured servers in parallel, each within its startup
//! timeout and in the sandbox its plan gives; one that fails is reported and the session goes on without it. Their tools
//! are offered to the model as `<server>__<tool>`. A server that dies is restarted once
//! when a call finds it gone; a second death leaves it down for the rest of the session.
//! [`McpHub::shutdown`] stops them all and reaps their processes.
//!
//! This module knows nothing of the agent, approval or git: it starts processes, lists
//! tools and calls them.

mod server;

use std::time::Duration;

use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::config::McpServer;
use crate::sandbox::Plan;

pub use server::{CallOutcome, Launch};
use server::{Connection, RemoteTool};

/// Between a server's name and its tool's in the names the model sees.
pub const SEPARATOR: &str = "__";

/// The longest tool name every model API accepts (OpenAI's limit).
const MAX_TOOL_NAME: usize = 64;

/// One tool of one server, as offered to the model.
#[derive(Debug, Clone)]
pub struct McpTool {
    /// `<server>__<tool>`, what the model calls.
    pub name: String,
    pub server: String,
    /// The name the server knows it by.
    pub tool: String,
    pub description: String,
    /// JSON schema of the arguments object.
    pub input_schema: Value,
}

/// What became of a configured server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Running; its tools are offered.
    Started,
    /// It could not be started; why.
    Failed(String),
    /// `enabled = false`.
    Disabled,
    /// It died twice (or its restart failed); why.
    Down(String),
}

impl Status {
    /// `started`, `failed`, `disabled` or `down`.
    pub fn kind(&self) -> &'static str {
        match self {
            Status::Started => "started",
            Status::Failed(_) => "failed",
            Status::Disabled => "disabled",
            Status::Down(_) => "down",
        }
    }

    /// What a user should read about it, e.g. `failed: could not run …`.
    pub fn describe(&self) -> String {
        match self {
            Status::Started => "started".to_owned(),
            Status::Failed(reason) => format!("failed: {reason}"),
            Status::Disabled => "disabled (enabled = false)".to_owned(),
            Status::Down(reason) => format!("down: {reason}"),
        }
    }
}

/// One server as `cairn mcp list` and the session's start report it.
pub struct ServerReport<'a> {
    pub config: &'a McpServer,
    /// How it runs.
    pub sandbox: &'a Plan,
    pub status: Status,
    /// The tools offered to the model.
    pub tools: Vec<&'a McpTool>,
    /// Tools left out, and allow-list entries that named nothing.
    pub notes: &'a [String],
}

enum State {
    Running(Connection),
    Failed(String),
    Disabled,
    Down(String),
}

struct Server {
    config: McpServer,
    sandbox: Plan,
    state: State,
    restarted: bool,
    notes: Vec<String>,
}

/// The session's MCP servers and their tools. The default has none.
#[derive(Default)]
pub struct McpHub {
    launch: Launch,
    servers: Vec<Server>,
    tools: Vec<McpTool>,
}

impl McpHub {
    /// Starts every enabled server in parallel, each confined as its plan says. Never
    /// fails: a server that does not start is reported by [`McpHub::servers`].
    pub async fn start(
        configs: impl IntoIterator<Item = (McpServer, Plan)>,
        launch: Launch,
    ) -> McpHub {
        let configs: Vec<(McpServer, Plan)> = configs.into_iter().collect();
        let started = futures_util::future::join_all(configs.iter().map(|(config, sandbox)| {
            let launch = &launch;
            async move {
                if !config.enabled.value {
                    return (State::Disabled, Vec::new());
                }
                match Connection::start(config, sandbox, launch).await {
                    Ok((connection, tools)) => (State::Running(connection), tools),
                    Err(reason) => (State::Failed(reason), Vec::new()),
                }
            }
        }))
        .await;
        let mut hub = McpHub { launch, servers: Vec::new(), tools: Vec::new() };
        for ((config, sandbox), (state, remote)) in configs.into_iter().zip(started) {
            let notes = hub.offer(&config, remote);
            hub.servers.push(Server { config, sandbox, state, restarted: false, notes });
        }
        hub
    }

    /// Adds a server's tools (those its allow-list lets through) to the offer, returning
    /// notes on what was left out.
    fn offer(&mut self, config: &McpServer, remote: Vec<RemoteTool>) -> Vec<String> {
        let mut notes = Vec::new();
        let allowed = config.tools.as_ref().map(|tools| &tools.value);
        if let Some(allowed) = allowed.filter(|_| !remote.is_empty()) {
            for name in allowed.iter().filter(|name| !remote.iter().any(|t| &t.name == *name)) {
                notes.push(format!("`tools` names `{name}`, which the server does not offer"));
            }
        }
        for tool in remote {
            if allowed.is_some_and(|allowed| !allowed.contains(&tool.name)) {
                continue;
            }
            let safe: String = tool
                .name
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '_' })
                .collect();
            let name = format!("{}{SEPARATOR}{safe}", config.name);
            if name.len() > MAX_TOOL_NAME {
                notes.push(format!(
                    "left out `{}`: `{name}` is longer than the {MAX_TOOL_NAME} characters models accept",
                    tool.name
                ));
                continue;
            }
            if self.tools.iter().any(|offered| offered.name == name) {
                notes.push(format!(
                    "left out `{}`: another tool is already named `{name}`",
                    tool.name
                ));
                continue;
            }
            self.tools.push(McpTool {
                name,
                server: config.name.clone(),
                tool: tool.name,
                description: tool.description,
                input_schema: tool.input_schema,
            });
        }
        notes
    }

    /// Every configured server, in name order, with what became of it.
    pub fn servers(&self) -> Vec<ServerReport<'_>> {
        self.servers
            .iter()
            .map(|server| ServerReport {
                config: &server.config,
                sandbox: &server.sandbox,
                status: match &server.state {
                    State::Running(_) => Status::Started,
                    State::Failed(reason) => Status::Failed(reason.clone()),
                    State::Disabled => Status::Disabled,
                    State::Down(reason) => Status::Down(reason.clone()),
                },
                tools: self.tools.iter().filter(|t| t.server == server.config.name).collect(),
                notes: &server.notes,
            })
            .collect()
    }

    /// The tools offered to the model.
    pub fn tools(&self) -> &[McpTool] {
        &self.tools
    }

    /// Whether `name` is one of the offered tools.
    pub fn has_tool(&self, name: &str) -> bool {
        self.tools.iter().any(|tool| tool.name == name)
    }

    /// Calls an offered tool. Never fails: every problem is an error outcome whose text
    /// tells the model what happened, including a server that died (and whether it was
    /// restarted).
    pub async fn call(
        &mut self,
        name: &str,
        arguments: &Value,
        cancel: &CancellationToken,
    ) -> CallOutcome {
        let Some(tool) = self.tools.iter().find(|tool| tool.name == name) else {
            return CallOutcome { content: format!("unknown MCP tool `{name}`"), is_error: true };
        };
        let Some(server) = self.servers.iter_mut().find(|s| s.config.name == tool.server) else {
            return CallOutcome { content: format!("unknown MCP tool `{name}`"), is_error: true };
        };
        let timeout = Duration::from_millis(server.config.tool_timeout_ms.value);
        let died = match &server.state {
            State::Running(connection) => {
                match connection.call(&tool.tool, arguments, timeout, cancel).await {
                    Ok(outcome) => return outcome,
                    Err(stderr) => stderr,
                }
            }
            State::Down(reason) => {
                return CallOutcome {
                    content: format!(
                        "the MCP server `{}` is down ({reason}); its tools cannot be used in this session",
                        server.config.name
                    ),
                    is_error: true,
                };
            }
            State::Failed(_) | State::Disabled => {
                return CallOutcome {
                    content: format!("the MCP server `{}` is not running", server.config.name),
                    is_error: true,
                };
            }
        };
        server.died(name, died, &self.launch).await
    }

    /// Stops every running server and waits for its process to exit.
    pub async fn shutdown(&mut self) {
        let mut connections = Vec::new();
        for server in &mut self.servers {
            let stopped = State::Down("stopped with the session".to_owned());
            match std::mem::replace(&mut server.state, stopped) {
                State::Running(connection) => connections.push(connection),
                other => server.state = other,
            }
        }
        futures_util::future::join_all(connections.into_iter().map(Connection::stop)).await;
    }
}

impl Server {
    /// After the connection was found closed during a call to `tool`: restart the server
    /// the first time, leave it down the second, and say which to the model.
    async fn died(&mut self, tool: &str, stderr: Option<String>, launch: &Launch) -> CallOutcome {
        let name = self.config.name.clone();
        if let State::Running(old) =
            std::mem::replace(&mut self.state, State::Down("it exited".to_owned()))
        {
            old.stop().await;
        }
        let mut content = format!("the MCP server `{name}` exited while running `{tool}`");
        if self.restarted {
            content.push_str(
                "; it had already been restarted once, so it stays down for the rest of this session",
            );
            self.state = State::Down("it exited twice".to_owned());
        } else {
            self.restarted = true;
            match Connection::start(&self.config, &self.sandbox, launch).await {
                Ok((connection, _)) => {
                    content.push_str(
                        "; cairn restarted it, so its tools can be called again (if it exits once more, it stays down)",
                    );
                    self.state = State::Running(connection);
                }
                Err(reason) => {
                    content.push_str(&format!(
                        "; restarting it failed, so it stays down for the rest of this session: {reason}"
                    ));
                    self.state = State::Down(format!("its restart failed: {reason}"));
                }
            }
        }
        if let Some(stderr) = stderr {
            content.push('\n');
            content.push_str(&server::mark_stderr(&stderr));
        }
        CallOutcome { content, is_error: true }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::config::{Source, Sourced};

    fn config(name: &str, tools: Option<&[&str]>) -> McpServer {
        McpServer {
            name: name.to_owned(),
            command: Sourced::new("server".to_owned(), Source::Default),
            args: Sourced::new(Vec::new(), Source::Default),
            env: BTreeMap::new(),
            enabled: Sourced::new(true, Source::Default),
            tools: tools.map(|tools| {
                Sourced::new(tools.iter().map(|s| s.to_string()).collect(), Source::Default)
            }),
            startup_timeout_ms: Sourced::new(1, Source::Default),
            tool_timeout_ms: Sourced::new(1, Source::Default),
            sandbox: Default::default(),
        }
    }

    #[tokio::test]
    async fn a_sandbox_asked_for_that_cannot_run_here_keeps_the_server_from_starting() {
        let unavailable = |explicit| Plan::Unavailable {
            mode: crate::sandbox::Mode::WorkspaceWrite,
            reason: "no user namespaces".to_owned(),
            explicit,
        };
        let missing = |name| {
            let mut server = config(name, None);
            server.command.value = "/nonexistent/cairn-no-such-server".to_owned();
            server
        };
        let hub = McpHub::start(
            [(missing("refused"), unavailable(true)), (missing("unconfined"), unavailable(false))],
            Launch::default(),
        )
        .await;
        let servers = hub.servers();
        let Status::Failed(refused) = &servers[0].status else { panic!("it started") };
        assert_eq!(
            refused,
            "the workspace-write sandbox cannot run here (no user namespaces), so it was not \
             started; set `sandbox = \"off\"` in its [mcp.refused] table to start it unconfined"
        );
        // Without an explicit choice it is started unconfined (and fails only for being
        // missing), as the session's warning says.
        let Status::Failed(missing) = &servers[1].status else { panic!("it started") };
        assert!(missing.starts_with("could not run `/nonexistent/"), "{missing}");
    }

    fn remote(name: &str) -> RemoteTool {
        RemoteTool { name: name.to_owned(), description: String::new(), input_schema: Value::Null }
    }

    #[test]
    fn tools_are_named_for_their_server_and_filtered_by_the_allow_list() {
        let mut hub = McpHub::default();
        let long = "x".repeat(61);
        let notes = hub.offer(
            &config("fs", None),
            vec![remote("read"), remote("dotted.name/x"), remote(&long), remote("dotted_name_x")],
        );
        let names: Vec<&str> = hub.tools().iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["fs__read", "fs__dotted_name_x"]);
        assert_eq!(hub.tools()[1].tool, "dotted.name/x");
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert!(notes[0].contains("longer than the 64 characters"), "{notes:?}");
        assert!(
            notes[1].contains("another tool is already named `fs__dotted_name_x`"),
            "{notes:?}"
        );

        let notes =
            hub.offer(&config("gh", Some(&["issue", "gone"])), vec![remote("issue"), remote("pr")]);
        assert!(hub.has_tool("gh__issue") && !hub.has_tool("gh__pr"));
        assert_eq!(notes, ["`tools` names `gone`, which the server does not offer"]);
    }
}
