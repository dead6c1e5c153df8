//! The interactive session, driven through a pseudo-terminal like a person at a keyboard:
//! a full turn with an approval question, then `/undo` and `/rewind`.

use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::TestRepo;
use crate::support::mock_model::{self, Reply};

/// A child process attached to a pseudo-terminal, with everything it prints collected.
pub(crate) struct Terminal {
    pub(crate) child: std::process::Child,
    pub(crate) writer: std::fs::File,
    pub(crate) screen: Arc<Mutex<String>>,
}

impl Terminal {
    pub(crate) fn spawn(mut command: std::process::Command) -> Terminal {
        let (mut master, mut slave) = (0, 0);
        // SAFETY: openpty writes two descriptors into the given integers.
        let rc = unsafe {
            libc::openpty(
                &mut master,
                &mut slave,
                std::ptr::null_mut(),
                std::ptr::null(),
                std::ptr::null(),
            )
        };
        assert_eq!(rc, 0, "openpty");
        // SAFETY: both descriptors were just opened and are owned here.
        let (master, slave) =
            unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
        command
            .stdin(slave.try_clone().unwrap())
            .stdout(slave.try_clone().unwrap())
            .stderr(slave)
            .env("TERM", "dumb");
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            command.pre_exec(|| {
                libc::setsid();
                libc::ioctl(0, libc::TIOCSCTTY as _, 0);
                Ok(())
            });
        }
        let child = command.spawn().expect("spawn cairn on a pty");
        let mut reader = std::fs::File::from(master.try_clone().unwrap());
        let writer = std::fs::File::from(master);
        let screen = Arc::new(Mutex::new(String::new()));
        let sink = Arc::clone(&screen);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Terminal { child, writer, screen }
    }

    /// Waits until the screen shows `text` after position `from`; returns where it ends.
    pub(crate) fn expect(&self, text: &str, from: usize) -> usize {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            {
                let screen = self.screen.lock().unwrap();
                if let Some(at) = screen.get(from..).and_then(|rest| rest.find(text)) {
                    return from + at + text.len();
                }
            }
            assert!(
                Instant::now() < deadline,
                "never saw {text:?}; screen:\n{}",
                self.screen.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub(crate) fn type_line(&mut self, line: &str) {
        self.writer.write_all(line.as_bytes()).unwrap();
        self.writer.write_all(b"\r").unwrap();
        self.writer.flush().unwrap();
    }

    /// Ends the session with Ctrl-D and asserts it exits successfully.
    pub(crate) fn quit(&mut self) {
        self.writer.write_all(&[4]).unwrap();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "{status}; screen:\n{}", self.screen.lock().unwrap());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_turn_with_an_approval_then_undo_and_rewind_at_a_terminal() {
    let repo = TestRepo::new();
    let model = mock_model::start([
        Reply::chat_tool_calls(&[(
            "c1",
            "write_file",
            json!({"path": "greeting.txt", "content": "hello\n"}),
        )]),
        Reply::chat_text("I wrote greeting.txt."),
    ])
    .await;
    repo.use_model(&model.base_url());
    let command = repo.command_in(&repo.root, &[]);
    let root = repo.root.clone();
    let session_ref = tokio::task::spawn_blocking(move || {
        let mut term = Terminal::spawn(command);
        let mut at = term.expect("/help lists commands", 0);
        at = term.expect("› ", at);
        term.type_line("write a greeting");
        at = term.expect("Allow write_file greeting.txt? [y]es / [n]o / [a]lways:", at);
        term.type_line("y");
        at = term.expect("I wrote greeting.txt.", at);
        at = term.expect("› ", at);
        assert_eq!(std::fs::read_to_string(root.join("greeting.txt")).unwrap(), "hello\n");

        term.type_line("/undo");
        at = term.expect("Back at step 2", at);
        assert!(root.join("greeting.txt").exists(), "step 2 holds the write");
        term.type_line("/rewind 1");
        at = term.expect("Back at step 1", at);
        assert!(!root.join("greeting.txt").exists(), "step 1 is before the write");
        term.type_line("/log");
        term.expect("prompt: write a greeting", at);
        term.quit();
        let screen = term.screen.lock().unwrap().clone();
        let id = screen
            .split("session ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap()
            .to_string();
        TestRepo::session_ref(&id)
    })
    .await
    .unwrap();

    assert_eq!(model.requests().len(), 2);
    let tip = repo.git(&["log", "-1", "--format=%B", &session_ref]);
    assert!(tip.contains("Cairn-Step: 1") && tip.contains("Cairn-Kind: prompt"), "{tip}");
    assert_eq!(
        repo.git(&["for-each-ref", "refs/cairn/archive"]).lines().count(),
        2,
        "both rewound tips are kept"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_tools_are_offered_asked_about_and_stopped_with_the_session() {
    let repo = TestRepo::new();
    let model = mock_model::start([
        Reply::chat_tool_calls(&[(
            "c1",
            "echo__write",
            json!({"path": "asked.txt", "content": "x"}),
        )]),
        Reply::chat_text("As you wish."),
    ])
    .await;
    repo.use_model(&model.base_url());
    crate::mcp::configure(
        &repo,
        &crate::mcp::server_table("echo", &crate::mcp::counted(&repo, "echo")),
    );
    let command = repo.command_in(&repo.root, &[]);
    tokio::task::spawn_blocking(move || {
        let mut term = Terminal::spawn(command);
        let mut at = term.expect("MCP servers: echo (6 tools)", 0);
        at = term.expect("› ", at);
        term.type_line("write through the server");
        at = term.expect("Allow echo__write {", at);
        at = term.expect("? [y]es / [n]o / [a]lways:", at);
        term.type_line("n");
        at = term.expect("As you wish.", at);
        term.expect("› ", at);
        term.quit();
    })
    .await
    .unwrap();

    assert!(!repo.path("asked.txt").exists());
    let requests = model.requests();
    let declined = requests[1].body["messages"].to_string();
    assert!(declined.contains("the user declined `echo__write"), "{declined}");
    let pids = crate::mcp::pids(&crate::mcp::counter(&repo, "echo"));
    assert_eq!(pids.len(), 1);
    assert!(!crate::mcp::running(pids[0]), "the server outlived the session");
}

#[test]
fn the_demo_runs_offline_and_shows_the_whole_story() {
    let repo = TestRepo::new();
    let out = repo.cairn(&["demo"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    for expected in [
        "scripted session",
        "$ cairn log",
        "shell: sh test.sh (exit 1)",
        "edit lib.sh (+1 -1)",
        "shell: sh test.sh (exit 0)",
        "+  echo $(( $1 + $2 ))",
        "lib.sh is back to the bug",
        "prompt: The test fails",
    ] {
        assert!(stdout.contains(expected), "missing {expected:?} in:\n{stdout}");
    }
    assert!(!stdout.contains("\x1b["), "no color when piped");
}
