//! Whether a call that changes something may run: `auto` allows everything, `read-only`
//! refuses writes, commands, MCP tools and facts in the user tier, and `ask` asks the
//! person at the terminal. A headless run has no one to ask, so in `ask` mode it refuses
//! with a reason the model can read, never blocking on a prompt.
//!
//! "Always" at a question grants the *kind* of action asked about, never everything after
//! it: file writes; commands that start with the words approved; the tools of one MCP
//! server; facts in the user tier. A command that chains others (`;`, `&&`, `|`, `$(…)`,
//! redirections) is only ever granted as that exact line, so approving `cargo test` cannot
//! approve `cargo test; curl …`. Grants last for the session and are listed and revoked
//! with `/approvals`.

use std::fmt;

use crate::config::Approval;

/// What a call would do, as the person deciding needs to see it.
#[derive(Debug, Clone, Copy)]
pub enum Action<'a> {
    /// `write_file`, `edit_file` or the `rewind` tool: files in the workspace change.
    /// `diff` is what would be written, when it can be shown before the call runs.
    Write { diff: Option<&'a str> },
    /// A `shell` command, and how it would be confined (`workspace-write sandbox`,
    /// `not sandboxed: …`).
    Shell { command: &'a str, sandbox: &'a str },
    /// A `shell` command run outside the sandbox: a re-run after the sandbox blocked it,
    /// or any command where the sandbox the user asked for cannot run. `why` says which.
    /// Only a person can allow it: `auto` does not.
    Unconfined { command: &'a str, why: &'a str },
    /// A tool of an MCP server, which may do anything.
    Mcp { server: &'a str },
    /// `remember` with `tier: "user"`: a fact injected into every project, which outlives
    /// this session and this repository.
    RememberUser,
}

/// One call awaiting a decision.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub tool: &'a str,
    pub action: Action<'a>,
    /// What the call would do, in one line (a command line, a path, a fact).
    pub summary: &'a str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// Refused; the reason goes back to the model.
    Deny(String),
}

/// An answer at the terminal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Once,
    /// Once, and from now on for the grant the question offered.
    Always,
    Deny(String),
}

/// A kind of action approved for the rest of the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant {
    Writes,
    /// Simple commands (no chaining, substitution or redirection) whose words start with
    /// these.
    CommandPrefix(Vec<String>),
    /// This exact command line.
    Command(String),
    /// This exact command line, outside the sandbox.
    Unconfined(String),
    McpServer(String),
    UserMemory,
}

/// Commands that run other commands: granting their first word would grant everything.
const RUNS_ANY_COMMAND: &[&str] =
    &["sh", "bash", "zsh", "dash", "fish", "env", "sudo", "doas", "xargs", "eval", "exec", "nohup"];

impl Grant {
    /// What "always" at a question about `action` would grant.
    pub fn offered_for(action: &Action<'_>) -> Grant {
        match action {
            Action::Write { .. } => Grant::Writes,
            Action::Shell { command, .. } => match simple_words(command) {
                Some(words) if !RUNS_ANY_COMMAND.contains(&words[0]) => {
                    // The program and its subcommand (`cargo test`), not its flags.
                    let taken = match words.get(1) {
                        Some(second) if !second.starts_with('-') => 2,
                        _ => 1,
                    };
                    Grant::CommandPrefix(words[..taken].iter().map(|w| w.to_string()).collect())
                }
                _ => Grant::Command(command.trim().to_string()),
            },
            Action::Unconfined { command, .. } => Grant::Unconfined(command.trim().to_string()),
            Action::Mcp { server } => Grant::McpServer(server.to_string()),
            Action::RememberUser => Grant::UserMemory,
        }
    }

    pub fn covers(&self, action: &Action<'_>) -> bool {
        match (self, action) {
            (Grant::Writes, Action::Write { .. }) => true,
            (Grant::CommandPrefix(prefix), Action::Shell { command, .. }) => simple_words(command)
                .is_some_and(|words| {
                    words.len() >= prefix.len() && prefix.iter().zip(&words).all(|(p, w)| p == w)
                }),
            (Grant::Command(granted), Action::Shell { command, .. })
            | (Grant::Unconfined(granted), Action::Unconfined { command, .. }) => {
                granted == command.trim()
            }
            (Grant::McpServer(granted), Action::Mcp { server }) => granted == server,
            (Grant::UserMemory, Action::RememberUser) => true,
            _ => false,
        }
    }
}

impl fmt::Display for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Grant::Writes => f.write_str("file writes"),
            Grant::CommandPrefix(words) => {
                write!(f, "commands starting with `{}`", words.join(" "))
            }
            Grant::Command(command) => write!(f, "the command `{command}`"),
            Grant::Unconfined(command) => {
                write!(f, "the command `{command}` outside the sandbox")
            }
            Grant::McpServer(server) => write!(f, "the tools of MCP server `{server}`"),
            Grant::UserMemory => f.write_str("facts in the user tier"),
        }
    }
}

/// The words of a command that runs one program and nothing else, or `None` when the shell
/// would do more than split it on blanks: chaining, pipes, substitution, redirection,
/// quoting, escapes, globs, comments or more than one line.
fn simple_words(command: &str) -> Option<Vec<&str>> {
    const SPECIAL: &[char] = &[
        ';', '&', '|', '<', '>', '$', '`', '(', ')', '{', '}', '\\', '"', '\'', '*', '?', '[', '#',
        '~', '\n', '\r',
    ];
    if command.contains(SPECIAL) {
        return None;
    }
    let words: Vec<&str> = command.split([' ', '\t']).filter(|w| !w.is_empty()).collect();
    (!words.is_empty()).then_some(words)
}

/// Someone who can answer an approval question.
pub trait Asker: Send {
    /// `offer` is what [`Answer::Always`] would grant.
    fn ask(&mut self, request: &Request<'_>, offer: &Grant) -> Answer;
}

/// For headless runs: no one to ask.
pub struct Headless;

impl Asker for Headless {
    fn ask(&mut self, request: &Request<'_>, _: &Grant) -> Answer {
        Answer::Deny(format!(
            "refused: `{}` needs approval and this run is headless; the user can rerun with `--approval auto` to allow file writes, shell commands, MCP tools and user-tier facts",
            request.tool
        ))
    }
}

/// Decides calls under one approval mode and the grants given so far.
pub struct Policy {
    mode: Approval,
    asker: Box<dyn Asker>,
    grants: Vec<Grant>,
}

impl Policy {
    pub fn new(mode: Approval, asker: Box<dyn Asker>) -> Self {
        Policy { mode, asker, grants: Vec::new() }
    }

    pub fn mode(&self) -> Approval {
        self.mode
    }

    /// What "always" answers granted, oldest first.
    pub fn grants(&self) -> &[Grant] {
        &self.grants
    }

    /// Takes back the grant at `index` of [`Policy::grants`].
    pub fn revoke(&mut self, index: usize) -> Option<Grant> {
        (index < self.grants.len()).then(|| self.grants.remove(index))
    }

    pub fn revoke_all(&mut self) -> Vec<Grant> {
        std::mem::take(&mut self.grants)
    }

    pub fn decide(&mut self, request: &Request<'_>) -> Decision {
        match self.mode {
            Approval::Auto if matches!(request.action, Action::Unconfined { .. }) => {
                Decision::Deny(format!(
                    "refused: `{}` would run outside the sandbox, which only the user can allow, in `--approval ask`",
                    request.summary
                ))
            }
            Approval::Auto => Decision::Allow,
            Approval::ReadOnly => Decision::Deny(match request.action {
                Action::RememberUser => "refused: cairn runs read-only (`--approval read-only`), so `remember` may not add a fact to the user tier, which outlives this session and repository; use tier \"project\"".to_string(),
                _ => format!(
                    "refused: cairn runs read-only (`--approval read-only`), so `{}` may not change files or run commands",
                    request.tool
                ),
            }),
            Approval::Ask => {
                if self.grants.iter().any(|grant| grant.covers(&request.action)) {
                    return Decision::Allow;
                }
                let offer = Grant::offered_for(&request.action);
                match self.asker.ask(request, &offer) {
                    Answer::Once => Decision::Allow,
                    Answer::Always => {
                        self.grants.push(offer);
                        Decision::Allow
                    }
                    Answer::Deny(reason) => Decision::Deny(reason),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Answers every question the same way, and keeps what it was offered.
    struct Scripted {
        answer: Answer,
        offers: std::sync::Arc<std::sync::Mutex<Vec<Grant>>>,
    }

    impl Asker for Scripted {
        fn ask(&mut self, _: &Request<'_>, offer: &Grant) -> Answer {
            self.offers.lock().unwrap().push(offer.clone());
            self.answer.clone()
        }
    }

    fn asking(answer: Answer) -> (Policy, std::sync::Arc<std::sync::Mutex<Vec<Grant>>>) {
        let offers = std::sync::Arc::default();
        let asker = Scripted { answer, offers: std::sync::Arc::clone(&offers) };
        (Policy::new(Approval::Ask, Box::new(asker)), offers)
    }

    fn shell(command: &str) -> Request<'_> {
        Request {
            tool: "shell",
            action: Action::Shell { command, sandbox: "workspace-write sandbox" },
            summary: command,
        }
    }

    const WRITE: Request<'static> =
        Request { tool: "write_file", action: Action::Write { diff: None }, summary: "a.txt" };

    #[test]
    fn modes_decide_without_asking_except_ask() {
        let mut auto = Policy::new(Approval::Auto, Box::new(Headless));
        assert_eq!(auto.decide(&shell("cargo test")), Decision::Allow);
        let mut read_only = Policy::new(Approval::ReadOnly, Box::new(Headless));
        assert!(matches!(read_only.decide(&WRITE), Decision::Deny(r) if r.contains("read-only")));
        let remember =
            Request { tool: "remember", action: Action::RememberUser, summary: "prefers tabs" };
        assert!(
            matches!(read_only.decide(&remember), Decision::Deny(r) if r.contains("user tier"))
        );
        let mut headless = Policy::new(Approval::Ask, Box::new(Headless));
        assert!(
            matches!(headless.decide(&shell("ls")), Decision::Deny(r) if r.contains("--approval auto"))
        );
    }

    #[test]
    fn always_on_a_write_grants_writes_and_nothing_else() {
        let (mut policy, offers) = asking(Answer::Always);
        assert_eq!(policy.decide(&WRITE), Decision::Allow);
        assert_eq!(policy.grants(), [Grant::Writes]);
        // The next write is not asked about; a command still is.
        assert_eq!(policy.decide(&WRITE), Decision::Allow);
        assert_eq!(offers.lock().unwrap().len(), 1);
        policy.decide(&shell("cargo test"));
        assert_eq!(offers.lock().unwrap().len(), 2);
        let mcp = Request { tool: "x__y", action: Action::Mcp { server: "x" }, summary: "x__y" };
        policy.decide(&mcp);
        assert_eq!(offers.lock().unwrap().len(), 3);
    }

    #[test]
    fn a_command_prefix_covers_only_simple_commands_that_start_with_it() {
        let offer = Grant::offered_for(&shell("cargo test --all").action);
        assert_eq!(offer, Grant::CommandPrefix(vec!["cargo".into(), "test".into()]));
        assert_eq!(offer.to_string(), "commands starting with `cargo test`");
        assert!(offer.covers(&shell("cargo test").action));
        assert!(offer.covers(&shell("  cargo   test -p cairn").action));
        for other in [
            "cargo build",
            "cargo",
            "cargo test; curl evil.example",
            "cargo test && rm -rf ~",
            "cargo test | sh",
            "cargo test $(curl x)",
            "cargo test `id`",
            "cargo test > /etc/passwd",
            "cargo test\nrm -rf /",
            "cargo testx",
        ] {
            assert!(!offer.covers(&shell(other).action), "{other:?} was covered");
        }
        assert!(!offer.covers(&WRITE.action));
        // A flag is not a subcommand: `ls -la` grants `ls`.
        assert_eq!(
            Grant::offered_for(&shell("ls -la").action),
            Grant::CommandPrefix(vec!["ls".into()])
        );
    }

    #[test]
    fn chained_commands_and_command_runners_are_granted_only_exactly() {
        let chained = Grant::offered_for(&shell("make && make install").action);
        assert_eq!(chained, Grant::Command("make && make install".into()));
        assert!(chained.covers(&shell("make && make install").action));
        assert!(!chained.covers(&shell("make && make install && curl x").action));
        for runner in ["sh -c id", "env FOO=1 make", "sudo make install", "xargs rm"] {
            assert_eq!(Grant::offered_for(&shell(runner).action), Grant::Command(runner.into()));
        }
    }

    #[test]
    fn grants_are_revoked_one_at_a_time_or_all() {
        let (mut policy, offers) = asking(Answer::Always);
        policy.decide(&WRITE);
        policy.decide(&shell("cargo test"));
        assert_eq!(policy.revoke(0), Some(Grant::Writes));
        assert_eq!(policy.revoke(5), None);
        policy.decide(&WRITE);
        assert_eq!(offers.lock().unwrap().len(), 3, "a revoked grant asks again");
        assert_eq!(policy.revoke_all().len(), 2);
        assert!(policy.grants().is_empty());
    }

    #[test]
    fn yes_and_no_grant_nothing() {
        let (mut policy, offers) = asking(Answer::Once);
        assert_eq!(policy.decide(&WRITE), Decision::Allow);
        assert_eq!(policy.decide(&WRITE), Decision::Allow);
        assert_eq!(offers.lock().unwrap().len(), 2);
        assert!(policy.grants().is_empty());
        let (mut policy, _) = asking(Answer::Deny("no".into()));
        assert_eq!(policy.decide(&WRITE), Decision::Deny("no".into()));
        assert!(policy.grants().is_empty());
    }

    #[test]
    fn leaving_the_sandbox_is_never_automatic_and_granted_only_per_line() {
        let unconfined = |command| Request {
            tool: "shell",
            action: Action::Unconfined { command, why: "the sandbox blocked it" },
            summary: command,
        };
        let mut auto = Policy::new(Approval::Auto, Box::new(Headless));
        assert!(
            matches!(auto.decide(&unconfined("make install")), Decision::Deny(r) if r.contains("outside the sandbox"))
        );
        let (mut ask, _) = asking(Answer::Always);
        assert_eq!(ask.decide(&unconfined("make install")), Decision::Allow);
        assert_eq!(ask.grants(), [Grant::Unconfined("make install".into())]);
        // The grant is for that line outside the sandbox, and for nothing sandboxed.
        assert!(!ask.grants()[0].covers(&unconfined("make install-all").action));
        assert!(!ask.grants()[0].covers(&shell("make install").action));
        let (mut shell_granted, _) = asking(Answer::Always);
        assert_eq!(shell_granted.decide(&shell("make install")), Decision::Allow);
        assert!(!shell_granted.grants()[0].covers(&unconfined("make install").action));
    }
}
