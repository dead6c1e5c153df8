//! Terminal safety: escape sequences in what the model says, in tool output, in file
//! names and in file contents are printed escaped (`\u{1b}`), so they cannot drive the
//! user's terminal. The bytes of stdout and stderr are checked, not their text.

use std::process::Output;

use serde_json::json;

use crate::support::TestRepo;
use crate::support::mock_model::{self, Reply};

/// What a terminal would act on: ESC, BEL, CSI as U+009B, and a `\r` outside `\r\n`.
fn raw_controls(bytes: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    for (i, byte) in bytes.iter().enumerate() {
        let lone_cr = *byte == b'\r' && bytes.get(i + 1) != Some(&b'\n');
        if matches!(byte, 0x1b | 0x07) || lone_cr || bytes[i..].starts_with(&[0xc2, 0x9b]) {
            let start = i.saturating_sub(20);
            found.push(String::from_utf8_lossy(&bytes[start..(i + 20).min(bytes.len())]).into());
        }
    }
    found
}

fn assert_terminal_safe(what: &str, out: &Output) {
    assert!(out.status.success(), "{what}: {}", String::from_utf8_lossy(&out.stderr));
    for (stream, bytes) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
        let found = raw_controls(bytes);
        assert!(found.is_empty(), "{what} printed raw control characters on {stream}: {found:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escapes_from_the_model_files_and_tools_are_printed_escaped() {
    let repo = TestRepo::new();
    // A repository file whose name and content carry escapes (a window title, a screen
    // clear, an OSC 8 link, a carriage-return overwrite).
    let hostile_name = "evil\x1b]0;pwned\x07.txt";
    repo.write(
        hostile_name,
        "\x1b[2Jcleared\r\nok\rfake\n\x1b]8;;http://evil.example\x1b\\link\x1b]8;;\x1b\\\n",
    );
    let model = mock_model::start([
        Reply::chat_tool_calls(&[
            ("c1", "read_file", json!({"path": hostile_name})),
            (
                "c2",
                "write_file",
                json!({"path": "notes.txt", "content": "\x1b[41mred\x1b[0m\u{9b}2J\n"}),
            ),
            ("c3", "shell", json!({"command": "printf '\\033]0;from-shell\\007 \\033[2J\\n'"})),
        ]),
        Reply::chat_text("all \x1b[31mdone\x1b[0m\u{9b}2J \x1b]0;title\x07\r"),
    ])
    .await;
    repo.use_model(&model.base_url());

    let run = crate::support::cairn(&repo, &["run", "look", "--approval", "auto"]).await;
    assert_terminal_safe("cairn run", &run);
    let answer = String::from_utf8_lossy(&run.stdout);
    assert!(
        answer.contains("all \\u{1b}[31mdone\\u{1b}[0m\\u{9b}2J \\u{1b}]0;title\\u{7}\\u{d}"),
        "the answer is printed, escaped: {answer}"
    );
    let activity = String::from_utf8_lossy(&run.stderr);
    assert!(activity.contains("read_file evil\\u{1b}]0;pwned\\u{7}.txt"), "{activity}");

    let log = repo.cairn(&["log", "-p"]);
    assert_terminal_safe("cairn log -p", &log);
    let show = repo.cairn(&["show", "@~1"]);
    assert_terminal_safe("cairn show", &show);
    let shown = String::from_utf8_lossy(&show.stdout);
    assert!(shown.contains("+\\u{1b}[41mred\\u{1b}[0m\\u{9b}2J"), "{shown}");
    let first = repo.cairn(&["show", "@~2"]);
    assert_terminal_safe("cairn show of the first step", &first);
    let diff = repo.cairn(&["diff", "@~2", "@"]);
    assert_terminal_safe("cairn diff", &diff);
    let stat = repo.cairn(&["diff", "--stat", "@~2", "@"]);
    assert_terminal_safe("cairn diff --stat", &stat);

    // The base commit to the first step adds the hostile file: its name and content.
    std::fs::write(repo.path("notes.txt"), "\x1b[2J changed\n").unwrap();
    let workspace = repo.cairn(&["diff"]);
    assert_terminal_safe("cairn diff of the workspace", &workspace);
    let shown = String::from_utf8_lossy(&first.stdout);
    assert!(
        shown.contains("b/evil\\u{1b}]0;pwned\\u{7}.txt")
            && shown.contains("+\\u{1b}[2Jcleared")
            && shown.contains("ok\\u{d}"),
        "{shown}"
    );
}

#[test]
fn an_error_quoting_a_hostile_name_prints_it_escaped() {
    let repo = TestRepo::new();
    let out = repo.cairn(&["show", "x\x1b]0;pwned\x07"]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let found = raw_controls(&out.stderr);
    assert!(found.is_empty(), "the error printed raw control characters: {found:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(r"x\u{1b}]0;pwned\u{7}"), "{stderr}");
}
