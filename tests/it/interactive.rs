//! The interactive session, driven through a pseudo-terminal like a person at a keyboard:
//! a full turn with an approval question, then `/undo` and `/rewind`; what the terminal
//! shows once the spinner is gone; colours and `NO_COLOR`; a mistyped command.

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
    pub(crate) fn spawn(command: std::process::Command) -> Terminal {
        Terminal::spawn_as(command, "dumb")
    }

    /// Like [`Terminal::spawn`], as the terminal type `term` (`dumb` draws no spinner).
    pub(crate) fn spawn_as(mut command: std::process::Command, term: &str) -> Terminal {
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
            .env("TERM", term);
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
        at = term.expect("+++ b/greeting.txt\r\n  @@ -0,0 +1 @@\r\n  +hello", at);
        at = term
            .expect("Allow write_file greeting.txt? [y]es / [n]o / [a]lways (file writes):", at);
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
    let info = repo.git(&["show", &format!("{session_ref}:.cairn/session.toml")]);
    assert!(info.contains("title = \"write a greeting\""), "titled by its first prompt: {info}");
    let tip = repo.git(&["log", "-1", "--format=%B", &session_ref]);
    assert!(tip.contains("Cairn-Step: 1") && tip.contains("Cairn-Kind: prompt"), "{tip}");
    assert_eq!(
        repo.git(&["for-each-ref", "refs/cairn/archive"]).lines().count(),
        2,
        "both rewound tips are kept"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_the_sandbox_blocked_reruns_outside_only_when_the_user_allows_it() {
    let repo = TestRepo::new();
    let outside = repo.root.parent().unwrap().to_path_buf();
    let shell = |id: &'static str, command: &str| (id, "shell", json!({"command": command}));
    let model = mock_model::start([
        Reply::chat_tool_calls(&[shell("c1", "echo one > ../out-one.txt")]),
        Reply::chat_tool_calls(&[shell("c2", "echo two > ../out-two.txt")]),
        Reply::chat_text("Done."),
    ])
    .await;
    repo.use_model(&model.base_url());
    let command = repo.command_in(&repo.root, &[]);
    let written = outside.clone();
    tokio::task::spawn_blocking(move || {
        let mut term = Terminal::spawn(command);
        let mut at = term.expect("› ", 0);
        term.type_line("write outside");
        at = term.expect("Allow shell: echo one > ../out-one.txt?", at);
        term.type_line("y");
        at = term.expect("the sandbox blocked it: ", at);
        at = term.expect("Allow re-run `echo one > ../out-one.txt` outside the sandbox?", at);
        term.type_line("n");
        at = term.expect("Allow shell: echo two > ../out-two.txt?", at);
        assert!(!written.join("out-one.txt").exists(), "declined, yet it ran outside");
        term.type_line("y");
        at = term.expect("Allow re-run `echo two > ../out-two.txt` outside the sandbox?", at);
        term.type_line("y");
        at = term.expect("Done.", at);
        term.expect("› ", at);
        term.quit();
    })
    .await
    .unwrap();

    assert!(!outside.join("out-one.txt").exists());
    assert_eq!(std::fs::read_to_string(outside.join("out-two.txt")).unwrap(), "two\n");
    let requests = model.requests();
    let declined = requests[1].body["messages"].to_string();
    assert!(declined.contains("blocked by the sandbox"), "{declined}");
    assert!(!declined.contains("re-run outside"), "{declined}");
    let results = requests[2].body["messages"].to_string();
    assert!(results.contains("--- the user allowed a re-run outside the sandbox ---"), "{results}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn always_on_a_write_approves_writes_only_until_revoked() {
    let repo = TestRepo::new();
    let write = |id: &'static str, path: &str| {
        (id, "write_file", json!({"path": path, "content": "one\n"}))
    };
    let model = mock_model::start([
        Reply::chat_tool_calls(&[write("c1", "a.txt")]),
        Reply::chat_tool_calls(&[
            write("c2", "b.txt"),
            ("c3", "shell", json!({"command": "echo hi > c.txt"})),
        ]),
        Reply::chat_text("First turn done."),
        Reply::chat_tool_calls(&[write("c4", "d.txt")]),
        Reply::chat_text("Second turn done."),
    ])
    .await;
    repo.use_model(&model.base_url());
    let command = repo.command_in(&repo.root, &[]);
    let screen = tokio::task::spawn_blocking(move || {
        let mut term = Terminal::spawn(command);
        let mut at = term.expect("› ", 0);
        term.type_line("write some files");
        at = term.expect("  +one", at);
        at = term.expect("Allow write_file a.txt? [y]es / [n]o / [a]lways (file writes):", at);
        term.type_line("a");
        // b.txt is written unasked; the command is asked about, whole, with its confinement.
        at = term.expect("  $ echo hi > c.txt\r\n  (workspace-write sandbox: writes in the workspace except .git", at);
        at = term.expect(
            "Allow shell: echo hi > c.txt? [y]es / [n]o / [a]lways (the command `echo hi > c.txt`):",
            at,
        );
        term.type_line("n");
        at = term.expect("First turn done.", at);
        at = term.expect("› ", at);
        term.type_line("/approvals");
        at = term.expect("1. file writes", at);
        at = term.expect("› ", at);
        term.type_line("/approvals revoke 1");
        at = term.expect("Revoked: file writes.", at);
        at = term.expect("› ", at);
        term.type_line("write another");
        at = term.expect("Allow write_file d.txt? [y]es / [n]o / [a]lways (file writes):", at);
        term.type_line("n");
        at = term.expect("Second turn done.", at);
        term.expect("› ", at);
        term.quit();
        term.screen.lock().unwrap().clone()
    })
    .await
    .unwrap();

    assert_eq!(screen.matches("Allow write_file").count(), 2, "b.txt was asked about:\n{screen}");
    assert!(repo.path("a.txt").exists() && repo.path("b.txt").exists());
    assert!(!repo.path("c.txt").exists(), "the declined command ran");
    assert!(!repo.path("d.txt").exists(), "the revoked grant still applied");
    let requests = model.requests();
    let results = requests[2].body["messages"].to_string();
    assert!(results.contains("the user declined `shell: echo hi > c.txt`"), "{results}");
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
    // Confined, so it is found by a tag on its command line rather than its own pid.
    let tag = format!("--tag={}", repo.home.display());
    crate::mcp::configure(&repo, &crate::mcp::server_table("echo", &format!("args = [{tag:?}]")));
    let command = repo.command_in(&repo.root, &[]);
    let running_tag = tag.clone();
    tokio::task::spawn_blocking(move || {
        let mut term = Terminal::spawn(command);
        let mut at = term.expect("MCP servers: echo (8 tools)", 0);
        at = term.expect("› ", at);
        term.type_line("write through the server");
        at = term.expect("Allow echo__write {", at);
        at = term.expect("? [y]es / [n]o / [a]lways (the tools of MCP server `echo`):", at);
        term.type_line("n");
        at = term.expect("As you wish.", at);
        term.expect("› ", at);
        // The launcher, its fork that is PID 1 of the sandbox, and the server.
        assert_eq!(crate::mcp::tagged(&running_tag).len(), 3, "the confined server runs");
        term.quit();
    })
    .await
    .unwrap();

    assert!(!repo.path("asked.txt").exists());
    let requests = model.requests();
    let declined = requests[1].body["messages"].to_string();
    assert!(declined.contains("the user declined `echo__write"), "{declined}");
    assert_eq!(crate::mcp::tagged(&tag), Vec::<u32>::new(), "the server outlived the session");
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

/// What a terminal would show after `output`: a small emulator of the controls cairn and
/// its libraries send (carriage return, newline, backspace, cursor movement, erasing in
/// the line and the display). Colours and other sequences draw nothing.
fn rendered(output: &str) -> Vec<String> {
    let mut lines: Vec<Vec<char>> = vec![Vec::new()];
    let (mut row, mut col) = (0usize, 0usize);
    let mut chars = output.chars();
    while let Some(c) = chars.next() {
        match c {
            '\r' => col = 0,
            '\n' => row += 1,
            '\u{8}' => col = col.saturating_sub(1),
            '\u{1b}' => match chars.next() {
                Some('[') => {
                    let mut params = String::new();
                    let command = loop {
                        match chars.next() {
                            Some(c) if ('\u{40}'..='\u{7e}').contains(&c) => break c,
                            Some(c) => params.push(c),
                            None => break '\0',
                        }
                    };
                    let n = params.trim_start_matches('?').split(';').next().unwrap_or("");
                    let n = n.parse::<usize>().ok();
                    match command {
                        'A' => row = row.saturating_sub(n.unwrap_or(1).max(1)),
                        'B' => row += n.unwrap_or(1).max(1),
                        'C' => col += n.unwrap_or(1).max(1),
                        'D' => col = col.saturating_sub(n.unwrap_or(1).max(1)),
                        'G' => col = n.unwrap_or(1).saturating_sub(1),
                        'K' | 'J' => {
                            while lines.len() <= row {
                                lines.push(Vec::new());
                            }
                            match n.unwrap_or(0) {
                                0 => lines[row].truncate(col),
                                1 => lines[row].iter_mut().take(col + 1).for_each(|c| *c = ' '),
                                _ => lines[row].clear(),
                            }
                            if command == 'J' && n.unwrap_or(0) == 0 {
                                lines.truncate(row + 1);
                            }
                        }
                        _ => {}
                    }
                }
                // An operating system command (a window title) runs to BEL or ST.
                Some(']') => {
                    for c in chars.by_ref() {
                        if c == '\u{7}' || c == '\u{1b}' {
                            break;
                        }
                    }
                }
                _ => {}
            },
            c if c.is_control() => {}
            c => {
                while lines.len() <= row {
                    lines.push(Vec::new());
                }
                let line = &mut lines[row];
                while line.len() < col {
                    line.push(' ');
                }
                if col < line.len() {
                    line[col] = c;
                } else {
                    line.push(c);
                }
                col += 1;
            }
        }
    }
    lines.into_iter().map(|line| line.into_iter().collect::<String>().trim_end().into()).collect()
}

#[test]
fn the_emulator_erases_what_a_spinner_erases() {
    let shown = rendered("a\r\n⠁ thinking…\r\u{1b}[2Kanswer\r\nb\r\n⠂ x\r\n\u{1b}[1A\u{1b}[2K\rc");
    assert_eq!(shown, ["a", "answer", "b", "c"]);
}

/// The colour (SGR) sequences in `screen`, such as `\x1b[32m`.
fn colour_sequences(screen: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (at, _) in screen.match_indices("\u{1b}[") {
        let rest = &screen[at + 2..];
        let params = rest.find(|c: char| !c.is_ascii_digit() && c != ';').unwrap_or(rest.len());
        if rest[params..].starts_with('m') {
            out.push(format!("\u{1b}[{}m", &rest[..params]));
        }
    }
    out
}

/// The step number in the `Cairn-Step:` trailer of a session's tip.
fn tip_step(repo: &TestRepo, session_ref: &str) -> String {
    let message = repo.git(&["log", "-1", "--format=%B", session_ref]);
    let line = message.lines().find(|line| line.starts_with("Cairn-Step: ")).unwrap();
    line["Cairn-Step: ".len()..].to_string()
}

fn session_ref_on(screen: &str) -> String {
    let id = screen.split("session ").nth(1).and_then(|rest| rest.split_whitespace().next());
    TestRepo::session_ref(id.expect("the session line"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_spinner_leaves_no_line_behind_and_diff_names_a_step_without_changes() {
    let repo = TestRepo::new();
    // Each reply waits long enough for the spinner to be drawn at least once.
    let wait = Duration::from_millis(400);
    let model = mock_model::start([
        Reply::chat_tool_calls(&[(
            "c1",
            "write_file",
            json!({"path": "greeting.txt", "content": "hello\n"}),
        )])
        .initial_delay(wait),
        Reply::chat_text("I wrote greeting.txt.").initial_delay(wait),
    ])
    .await;
    repo.use_model(&model.base_url());
    let command = repo.command_in(&repo.root, &["--approval", "auto"]);
    let screen = tokio::task::spawn_blocking(move || {
        let mut term = Terminal::spawn_as(command, "xterm-256color");
        let mut at = term.expect("› ", 0);
        term.type_line("write a greeting");
        at = term.expect("I wrote greeting.txt.", at);
        at = term.expect("› ", at);
        term.type_line("/diff");
        at = term.expect("no changes in step ", at);
        term.expect("› ", at);
        term.quit();
        term.screen.lock().unwrap().clone()
    })
    .await
    .unwrap();

    assert!(screen.contains("thinking…"), "the spinner was never drawn:\n{screen}");
    let shown = rendered(&screen);
    let left: Vec<&String> = shown.iter().filter(|line| line.contains("thinking")).collect();
    assert!(left.is_empty(), "spinner lines left behind: {left:?}\nscreen:\n{}", shown.join("\n"));
    assert!(shown.iter().any(|line| line == "I wrote greeting.txt."), "{}", shown.join("\n"));
    let step = tip_step(&repo, &session_ref_on(&screen));
    assert!(
        shown.iter().any(|line| *line == format!("no changes in step {step}")),
        "{}",
        shown.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn colour_only_without_no_color_and_never_with_it() {
    for colour in [true, false] {
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
        let mut command = repo.command_in(&repo.root, &["--approval", "auto"]);
        if colour {
            command.env_remove("NO_COLOR");
        }
        let screen = tokio::task::spawn_blocking(move || {
            let mut term = Terminal::spawn(command);
            let mut at = term.expect("› ", 0);
            term.type_line("write a greeting");
            at = term.expect("I wrote greeting.txt.", at);
            at = term.expect("› ", at);
            term.type_line("/undo");
            at = term.expect("Back at step 2", at);
            term.type_line("/diff");
            at = term.expect("+hello", at);
            term.type_line("/log");
            at = term.expect("prompt: write a greeting", at);
            term.expect("› ", at);
            term.quit();
            term.screen.lock().unwrap().clone()
        })
        .await
        .unwrap();
        let colours = colour_sequences(&screen);
        if colour {
            assert!(
                colours.iter().any(|c| c == "\u{1b}[32m"),
                "a terminal gets colour: {colours:?}"
            );
        } else {
            assert_eq!(colours, Vec::<String>::new(), "NO_COLOR is set; screen:\n{screen:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_a_terminal_a_mistyped_command_is_a_question() {
    let repo = TestRepo::new();
    let model = mock_model::start([Reply::chat_text("Hello.")]).await;
    repo.use_model(&model.base_url());

    // Yes: the command that was meant runs.
    let command = repo.command_in(&repo.root, &["sesions"]);
    tokio::task::spawn_blocking(move || {
        let mut term = Terminal::spawn(command);
        let at = term.expect("'sesions' is not a cairn command. Run `cairn sessions`? [Y/n] ", 0);
        term.type_line("y");
        term.expect("No sessions yet.", at);
        assert!(term.child.wait().unwrap().success());
    })
    .await
    .unwrap();
    assert!(model.requests().is_empty());

    // No: the word is the prompt of a new session.
    let command = repo.command_in(&repo.root, &["lgo"]);
    let screen = tokio::task::spawn_blocking(move || {
        let mut term = Terminal::spawn(command);
        let mut at = term.expect("'lgo' is not a cairn command. Run `cairn log`? [Y/n] ", 0);
        term.type_line("n");
        at = term.expect("Hello.", at);
        term.expect("› ", at);
        term.quit();
        term.screen.lock().unwrap().clone()
    })
    .await
    .unwrap();
    let requests = model.requests();
    assert_eq!(requests.len(), 1);
    assert!(requests[0].body["messages"].to_string().contains("\"lgo\""), "the prompt was sent");
    let info = repo.git(&["show", &format!("{}:.cairn/session.toml", session_ref_on(&screen))]);
    assert!(info.contains("title = \"lgo\""), "{info}");
}
