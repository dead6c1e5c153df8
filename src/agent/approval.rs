//! Whether a tool call may run: `auto` allows everything, `read-only` refuses
//! writes and commands, and `ask` asks the person at the terminal before each write or
//! command. A headless run has no one to ask, so in `ask` mode it refuses with a reason
//! the model can read, never blocking on a prompt.

use crate::config::Approval;

use super::tools::Access;

/// One call awaiting a decision.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    pub tool: &'a str,
    pub access: Access,
    /// What the call would do, for the person deciding (a command line, a path).
    pub summary: &'a str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// Refused; the reason goes back to the model.
    Deny(String),
}

/// Someone who can answer an approval question.
pub trait Asker: Send {
    fn ask(&mut self, request: &Request<'_>) -> Decision;
}

/// For headless runs: no one to ask.
pub struct Headless;

impl Asker for Headless {
    fn ask(&mut self, request: &Request<'_>) -> Decision {
        Decision::Deny(format!(
            "refused: `{}` needs approval and this run is headless; the user can rerun with `--approval auto` to allow file writes, shell commands and MCP tools",
            request.tool
        ))
    }
}

/// Decides calls under one approval mode.
pub struct Policy {
    mode: Approval,
    asker: Box<dyn Asker>,
}

impl Policy {
    pub fn new(mode: Approval, asker: Box<dyn Asker>) -> Self {
        Policy { mode, asker }
    }

    pub fn mode(&self) -> Approval {
        self.mode
    }

    /// Allows everything from now on (the "always" answer at a prompt).
    pub fn set_mode(&mut self, mode: Approval) {
        self.mode = mode;
    }

    pub fn decide(&mut self, request: &Request<'_>) -> Decision {
        if request.access == Access::Read {
            return Decision::Allow;
        }
        match self.mode {
            Approval::Auto => Decision::Allow,
            Approval::ReadOnly => Decision::Deny(format!(
                "refused: cairn runs read-only (`--approval read-only`), so `{}` may not change files or run commands",
                request.tool
            )),
            Approval::Ask => self.asker.ask(request),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Always(Decision, usize);
    impl Asker for Always {
        fn ask(&mut self, _: &Request<'_>) -> Decision {
            self.1 += 1;
            self.0.clone()
        }
    }

    fn request(access: Access) -> Request<'static> {
        Request { tool: "shell", access, summary: "cargo test" }
    }

    #[test]
    fn reads_are_always_allowed_and_modes_decide_the_rest() {
        let mut auto = Policy::new(Approval::Auto, Box::new(Headless));
        assert_eq!(auto.decide(&request(Access::Shell)), Decision::Allow);
        let mut read_only = Policy::new(Approval::ReadOnly, Box::new(Headless));
        assert_eq!(read_only.decide(&request(Access::Read)), Decision::Allow);
        assert!(
            matches!(read_only.decide(&request(Access::Write)), Decision::Deny(r) if r.contains("read-only"))
        );
        let mut headless = Policy::new(Approval::Ask, Box::new(Headless));
        assert!(
            matches!(headless.decide(&request(Access::Shell)), Decision::Deny(r) if r.contains("--approval auto"))
        );
        let mut asking = Policy::new(Approval::Ask, Box::new(Always(Decision::Allow, 0)));
        assert_eq!(asking.decide(&request(Access::Write)), Decision::Allow);
        assert_eq!(asking.decide(&request(Access::Read)), Decision::Allow);
    }
}
