//! One MCP server: its process, the protocol session over its stdin and stdout, and what
//! happens when it dies (one restart, then it stays down).

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmcp::model::{CallToolRequestParams, ClientCapabilities, ClientConfig, Implementation};
use rmcp::service::RunningService;
use rmcp::transport::TokioChildProcess;
use rmcp::{RoleClient, ServiceError, ServiceExt};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio_util::sync::CancellationToken;

use crate::config::McpServer;
use crate::sandbox::{self, Confinement, Plan};

/// How much of a server's stderr is kept to explain a failure.
const STDERR_TAIL_BYTES: usize = 2000;

/// How long to wait for a failed server's last words on stderr.
const STDERR_GRACE: Duration = Duration::from_secs(2);

/// How a server's process is started.
#[derive(Debug, Clone, Default)]
pub struct Launch {
    /// The working directory: the workspace root.
    pub root: PathBuf,
}

/// A tool as the server describes it.
#[derive(Debug, Clone)]
pub struct RemoteTool {
    pub name: String,
    pub description: String,
    pub input_schema: Value,
}

/// What one call came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallOutcome {
    pub content: String,
    pub is_error: bool,
}

impl CallOutcome {
    fn error(content: String) -> CallOutcome {
        CallOutcome { content, is_error: true }
    }
}

/// A running server: the protocol session (which owns the process) and its stderr.
pub struct Connection {
    service: RunningService<RoleClient, ClientConfig>,
    stderr: StderrTail,
    /// Whether it runs in the sandbox, to point out refusals in its error results.
    confined: bool,
    /// The sandbox's private `$TMPDIR`, removed after the process is gone.
    _tmp: Option<tempfile::TempDir>,
}

impl Connection {
    /// Starts the server as `sandbox` says, completes the handshake and lists its tools,
    /// all within the server's startup timeout.
    pub async fn start(
        config: &McpServer,
        sandbox: &Plan,
        launch: &Launch,
    ) -> Result<(Connection, Vec<RemoteTool>), String> {
        let (mut command, tmp) = command(config, sandbox, launch)?;
        let confined = tmp.is_some();
        command.kill_on_drop(true);
        // The API keys are not in cairn's environment (`cli::hardening`); the server's
        // own `env` may set any variable, a key among them.
        command.envs(config.env.iter().map(|(name, value)| (name, &value.value)));
        // Its own process group: Ctrl-C at the terminal cancels cairn's turn, and must not
        // kill the servers with it.
        #[cfg(unix)]
        command.process_group(0);
        let (transport, stderr) =
            TokioChildProcess::builder(command).stderr(Stdio::piped()).spawn().map_err(|err| {
                let mut message = format!("could not run `{}`: {err}", config.command.value);
                if err.kind() == std::io::ErrorKind::NotFound {
                    message
                        .push_str(" (is it installed, and on PATH or given with its full path?)");
                }
                message
            })?;
        let stderr = StderrTail::start(stderr);
        let failed = |reason: String| {
            let stderr = stderr.clone();
            let hint = sandbox.confinement().map(|confinement| sandbox_hint(config, confinement));
            async move {
                let last_words = stderr.last_words().await;
                if confined && let Some(setup) = last_words.as_deref().and_then(setup_failure) {
                    return format!(
                        "could not run `{}` in the sandbox: {setup}",
                        config.command.value
                    );
                }
                let mut reason = match last_words {
                    Some(text) => format!("{reason}\n{}", mark_stderr(&text)),
                    None => reason,
                };
                if let Some(hint) = hint {
                    reason.push('\n');
                    reason.push_str(&hint);
                }
                reason
            }
        };
        let timeout = Duration::from_millis(config.startup_timeout_ms.value);
        let client = ClientConfig::new(
            ClientCapabilities::default(),
            Implementation::new("cairn", env!("CARGO_PKG_VERSION")),
        );
        let handshake = async {
            let service = client.serve(transport).await.map_err(|err| describe_init_error(&err))?;
            // A server without the tools capability (resources or prompts only) has none.
            let offers_tools =
                service.peer_info().is_none_or(|info| info.capabilities.tools.is_some());
            if !offers_tools {
                return Ok((service, Vec::new()));
            }
            let tools = service.list_all_tools().await.map_err(|err| {
                format!("it did not list its tools: {}", describe_service_error(&err))
            })?;
            Ok::<_, String>((service, tools))
        };
        let (service, tools) = match tokio::time::timeout(timeout, handshake).await {
            Ok(Ok(started)) => started,
            Ok(Err(reason)) => return Err(failed(reason).await),
            Err(_) => {
                let reason = format!(
                    "it did not complete the handshake within {} ms (raise `startup_timeout_ms` if it needs longer)",
                    config.startup_timeout_ms.value
                );
                return Err(failed(reason).await);
            }
        };
        let tools = tools
            .into_iter()
            .map(|tool| RemoteTool {
                name: tool.name.to_string(),
                description: tool.description.map(|d| d.to_string()).unwrap_or_default(),
                input_schema: Value::Object((*tool.input_schema).clone()),
            })
            .collect();
        Ok((Connection { service, stderr, confined, _tmp: tmp }, tools))
    }

    /// Calls one tool. `Err` means the server is gone (its process exited or closed the
    /// connection), with the last lines it wrote to stderr, if any.
    pub async fn call(
        &self,
        tool: &str,
        arguments: &Value,
        timeout: Duration,
        cancel: &CancellationToken,
    ) -> Result<CallOutcome, Option<String>> {
        let arguments = match arguments {
            Value::Object(map) => map.clone(),
            Value::Null => Default::default(),
            other => {
                return Ok(CallOutcome::error(format!(
                    "the arguments must be a JSON object, not {other}"
                )));
            }
        };
        let request = CallToolRequestParams::new(tool.to_owned()).with_arguments(arguments);
        let result = tokio::select! {
            result = tokio::time::timeout(timeout, self.service.call_tool(request)) => result,
            () = cancel.cancelled() => {
                return Ok(CallOutcome::error("cancelled by the user".into()));
            }
        };
        match result {
            Ok(Ok(result)) => {
                let value = serde_json::to_value(&result).unwrap_or_default();
                let is_error = result.is_error.unwrap_or(false);
                Ok(self.pointing_out_refusals(CallOutcome {
                    content: render_result(&value),
                    is_error,
                }))
            }
            Ok(Err(ServiceError::TransportClosed | ServiceError::TransportSend(_))) => {
                Err(self.stderr.last_words().await)
            }
            Ok(Err(err)) => {
                Ok(self.pointing_out_refusals(CallOutcome::error(describe_service_error(&err))))
            }
            Err(_) => Ok(CallOutcome::error(format!(
                "no answer within {} ms; the call was abandoned (`tool_timeout_ms` sets the limit)",
                timeout.as_millis()
            ))),
        }
    }

    /// A confined server's error result, with the lines that show the sandbox refusing
    /// something pointed out, so the model can tell the user what the server needs.
    fn pointing_out_refusals(&self, mut outcome: CallOutcome) -> CallOutcome {
        if outcome.is_error && self.confined {
            let notes = sandbox::refusal_notes(&outcome.content);
            if !notes.is_empty() {
                outcome.content = format!("{}\n{}", outcome.content, notes.trim_end());
            }
        }
        outcome
    }

    /// Closes the connection and waits for the process to exit (it is asked to by closing
    /// its stdin, then terminated, then killed), so it is reaped.
    pub async fn stop(self) {
        let _ = self.service.cancel().await;
    }
}

/// The command that starts the server, and the sandbox's temporary directory when it is
/// confined. A sandbox asked for explicitly that this machine cannot enforce is an error,
/// never a silent unconfined start.
fn command(
    config: &McpServer,
    sandbox: &Plan,
    launch: &Launch,
) -> Result<(tokio::process::Command, Option<tempfile::TempDir>), String> {
    let program = OsStr::new(&config.command.value);
    let args: Vec<OsString> = config.args.value.iter().map(OsString::from).collect();
    match sandbox {
        Plan::Confined(confinement) => {
            let tmp = tempfile::Builder::new()
                .prefix("cairn-sandbox-")
                .tempdir()
                .map_err(|err| format!("cannot make the sandbox's temporary directory: {err}"))?;
            let command = confinement.command(program, &args, tmp.path());
            Ok((tokio::process::Command::from(command), Some(tmp)))
        }
        Plan::Unavailable { mode, reason, explicit: true } => Err(format!(
            "the {mode} sandbox cannot run here ({reason}), so it was not started; set \
             `sandbox = \"off\"` in its [mcp.{}] table to start it unconfined",
            config.name
        )),
        Plan::Off | Plan::Unavailable { explicit: false, .. } => {
            let mut command = tokio::process::Command::new(program);
            command.args(args).current_dir(&launch.root);
            Ok((command, None))
        }
    }
}

/// Why the sandbox launcher could not start the server, from its stderr.
fn setup_failure(stderr: &str) -> Option<&str> {
    stderr.lines().find_map(|line| line.strip_prefix(sandbox::SETUP_FAILED_PREFIX))
}

/// What a confined server that failed to start may need, for the user.
fn sandbox_hint(config: &McpServer, confinement: &Confinement) -> String {
    format!(
        "  it ran in the {}; if it needs the network or writes outside the workspace, set \
         `network = true` or `writable_paths = [...]` in [mcp.{}.sandbox], or `sandbox = \"off\"`",
        confinement.describe(),
        config.name
    )
}

fn describe_init_error(err: &rmcp::service::ClientInitializeError) -> String {
    use rmcp::service::ClientInitializeError as E;
    match err {
        E::ConnectionClosed(_) | E::TransportError { .. } => {
            "the connection closed during the MCP handshake (the server exited, or is not an \
             MCP server speaking over stdio)"
                .to_owned()
        }
        E::JsonRpcError(data) => format!("it refused the MCP handshake: {}", data.message),
        other => format!("the MCP handshake failed: {other}"),
    }
}

fn describe_service_error(err: &ServiceError) -> String {
    match err {
        ServiceError::McpError(data) => {
            format!("the server answered with an error: {}", data.message)
        }
        ServiceError::TransportClosed | ServiceError::TransportSend(_) => {
            "the connection to the server closed".to_owned()
        }
        other => other.to_string(),
    }
}

/// A tool result as text for the model: text blocks as they are, other blocks named by
/// what they hold; the structured result when there is no content.
fn render_result(result: &Value) -> String {
    let blocks = result.get("content").and_then(Value::as_array).cloned().unwrap_or_default();
    let str_of =
        |value: &Value, key: &str| value.get(key).and_then(Value::as_str).unwrap_or("?").to_owned();
    let parts: Vec<String> = blocks
        .iter()
        .map(|block| match block.get("type").and_then(Value::as_str) {
            Some("text") => str_of(block, "text"),
            Some(kind @ ("image" | "audio")) => format!(
                "[{kind} ({}), {} bytes of base64 not shown]",
                str_of(block, "mimeType"),
                block.get("data").and_then(Value::as_str).map_or(0, str::len)
            ),
            Some("resource") => {
                let resource = block.get("resource").cloned().unwrap_or_default();
                match resource.get("text").and_then(Value::as_str) {
                    Some(text) => format!("[resource {}]\n{text}", str_of(&resource, "uri")),
                    None => format!("[resource {} (binary), not shown]", str_of(&resource, "uri")),
                }
            }
            Some("resource_link") => format!("[resource link {}]", str_of(block, "uri")),
            _ => block.to_string(),
        })
        .collect();
    if !parts.is_empty() {
        return parts.join("\n");
    }
    match result.get("structuredContent") {
        Some(structured) => structured.to_string(),
        None => "(the tool returned no content)".to_owned(),
    }
}

/// The end of a server's stderr, read as it comes so the pipe never fills up.
#[derive(Clone)]
struct StderrTail {
    lines: Arc<Mutex<VecDeque<String>>>,
    /// Fires when stderr reached its end.
    closed: CancellationToken,
}

impl StderrTail {
    fn start(stderr: Option<tokio::process::ChildStderr>) -> StderrTail {
        let tail = StderrTail { lines: Arc::default(), closed: CancellationToken::new() };
        let writer = tail.clone();
        tokio::spawn(async move {
            if let Some(stderr) = stderr {
                let mut lines = BufReader::new(stderr).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    writer.push(line);
                }
            }
            writer.closed.cancel();
        });
        tail
    }

    fn push(&self, line: String) {
        let Ok(mut lines) = self.lines.lock() else { return };
        lines.push_back(line);
        let mut total: usize = lines.iter().map(|line| line.len() + 1).sum();
        while total > STDERR_TAIL_BYTES && lines.len() > 1 {
            total -= lines.pop_front().map_or(0, |line| line.len() + 1);
        }
    }

    /// The last lines the server wrote to stderr, if any. Waits a moment for a dying
    /// server's stderr to reach its end.
    async fn last_words(&self) -> Option<String> {
        let _ = tokio::time::timeout(STDERR_GRACE, self.closed.cancelled()).await;
        let text = self.lines.lock().ok()?.iter().cloned().collect::<Vec<_>>().join("\n");
        (!text.trim().is_empty()).then(|| last_bytes(&text, STDERR_TAIL_BYTES).to_owned())
    }
}

/// Each line of a server's stderr, marked as such.
pub fn mark_stderr(text: &str) -> String {
    text.lines().map(|line| format!("  stderr: {line}")).collect::<Vec<_>>().join("\n")
}

/// The end of `text`, at most `max` bytes, cut at a character boundary.
fn last_bytes(text: &str, max: usize) -> &str {
    let mut start = text.len().saturating_sub(max);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn results_render_as_text_for_the_model() {
        let result = json!({"content": [
            {"type": "text", "text": "hello"},
            {"type": "image", "mimeType": "image/png", "data": "aGVsbG8="},
            {"type": "resource", "resource": {"uri": "file:///a.txt", "text": "inside"}},
            {"type": "resource", "resource": {"uri": "file:///b.bin", "blob": "AAAA"}},
            {"type": "resource_link", "uri": "file:///c.txt", "name": "c"}
        ]});
        assert_eq!(
            render_result(&result),
            "hello\n[image (image/png), 8 bytes of base64 not shown]\n[resource file:///a.txt]\ninside\n\
             [resource file:///b.bin (binary), not shown]\n[resource link file:///c.txt]"
        );
        assert_eq!(
            render_result(&json!({"content": [], "structuredContent": {"n": 1}})),
            "{\"n\":1}"
        );
        assert_eq!(render_result(&json!({"content": []})), "(the tool returned no content)");
    }
}
