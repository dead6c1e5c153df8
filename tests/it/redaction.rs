//! The one redaction pass: a different secret through each way text reaches cairn's
//! storage — prompt, model text, tool arguments, tool output, shell command, note, fact
//! (`remember`, `cairn memory add`, user memory, promotion), session summary, another
//! agent's transcript and `cairn checkpoint -m` — and then not one of them in any object
//! of the repository or of the user memory repository, nor in cairn's reflogs, read back
//! with git.

use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use crate::support::mock_model::{self, Reply};
use crate::support::{TestRepo, assert_ok};

/// The ways in, each with its own secrets so that a failure names the way.
const PATHS: [&str; 13] = [
    "PROMPT",
    "MODELTEXT",
    "TOOLARGS",
    "TOOLOUT",
    "SHELLCMD",
    "NOTE",
    "REMEMBER",
    "PROMOTE",
    "SUMMARY",
    "MEMADD",
    "USERFACT",
    "TRANSCRIPT",
    "CHECKPOINT",
];

/// An AWS-style access key id for `path`: `AKIA` and 16 more upper-case characters.
fn aws_key(path: &str) -> String {
    format!("AKIA{:0<16}", path)
}

/// The body line of `path`'s private key block: what must not reach storage.
fn key_body(path: &str) -> String {
    format!("MIIEv{path}QIBADANBgkqhkiG9w0BAQEFAASC")
}

fn private_key(path: &str) -> String {
    format!("-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----", key_body(path))
}

/// Both secrets of `path`, as one text.
fn secrets(path: &str) -> String {
    format!("{} and\n{}\n", aws_key(path), private_key(path))
}

/// Every object of the git repository at `git_dir`, as `git cat-file` prints them, plus
/// its reflogs (which hold commit subjects too).
fn everything_stored(repo: &TestRepo, git_dir: &Path) -> String {
    let mut command = Command::new("git");
    command.arg("--git-dir").arg(git_dir).args(["cat-file", "--batch-all-objects", "--batch"]);
    command.env("GIT_CONFIG_NOSYSTEM", "1").env("HOME", &repo.home);
    let out = command.output().expect("git runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut dirs = vec![git_dir.join("logs")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            if entry.file_type().unwrap().is_dir() {
                dirs.push(entry.path());
            } else {
                text.push_str(&std::fs::read_to_string(entry.path()).unwrap());
            }
        }
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_git_by_any_way_in() {
    let repo = TestRepo::new();
    let shell_command =
        format!(": '{}'; echo ok # {}", private_key("SHELLCMD"), aws_key("SHELLCMD"));
    // The output holds the secrets; the command only their pieces.
    let tool_output_command = format!(
        "printf 'AKIA%s\\n' {:0<16}; printf -- '-----BEGIN PRIVATE KEY-----\\nMIIEv%sQIBADANBgkqhkiG9w0BAQEFAASC\\n-----END PRIVATE KEY-----\\n' TOOLOUT",
        "TOOLOUT"
    );
    let promotion = json!([{
        "op": "add",
        "fact": format!("The deploy key is {}", secrets("PROMOTE")),
        "source": "verified",
    }]);
    let model = mock_model::start([
        Reply::chat_tool_calls(&[
            ("c1", "note", json!({"text": secrets("NOTE")})),
            ("c2", "remember", json!({"fact": format!("The key is {}", secrets("REMEMBER"))})),
            ("c3", "grep", json!({"pattern": secrets("TOOLARGS")})),
            ("c4", "shell", json!({"command": shell_command})),
            ("c5", "shell", json!({"command": tool_output_command})),
        ]),
        Reply::chat_text(&format!("Done with {}", secrets("MODELTEXT"))),
        Reply::chat_text(&format!(
            "## Decisions\n- keep {}\n## Open tasks\n- none\n",
            secrets("SUMMARY")
        )),
        Reply::chat_text(&promotion.to_string()),
    ])
    .await;
    repo.use_model_with(&model.base_url(), "");
    let prompt = format!("deploy with {}", secrets("PROMPT"));
    let out = crate::support::cairn(&repo, &["run", &prompt, "--approval", "auto", "--json"]).await;
    assert_ok(&out);
    let session = crate::support::session_of(&out);
    assert_eq!(model.requests().len(), 4, "the turn, its answer, the summary and the promotion");
    // The secrets did flow: the model saw the tool's output as it was.
    assert!(model.requests()[1].body.to_string().contains(&aws_key("TOOLOUT")));

    repo.ok(&["memory", "add", &format!("The admin key is {}", secrets("MEMADD"))]);
    repo.ok(&["memory", "add", "--user", &format!("My own key is {}", secrets("USERFACT"))]);

    let transcript = repo.home.join("transcript.jsonl");
    let line =
        json!({"type": "user", "message": {"role": "user", "content": secrets("TRANSCRIPT")}});
    std::fs::write(&transcript, format!("{line}\n{{\"type\": \"assistant\"}}\n")).unwrap();
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/hooks/claude-code/stop.json");
    let mut stop: Value = serde_json::from_str(&std::fs::read_to_string(fixture).unwrap()).unwrap();
    stop["cwd"] = json!(repo.root.to_str().unwrap());
    stop["transcript_path"] = json!(transcript.to_str().unwrap());
    let mut hook = repo.command_in(&repo.home, &["hook", "claude-code", "--with-transcript"]);
    hook.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = hook.spawn().unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), stop.to_string().as_bytes())
        .unwrap();
    let hooked = child.wait_with_output().unwrap();
    assert_ok(&hooked);
    assert!(hooked.stderr.is_empty(), "{}", String::from_utf8_lossy(&hooked.stderr));

    repo.write("later.txt", "an ordinary edit\n");
    repo.checkpoint(&[
        "--new",
        "-m",
        &format!("{} {}", aws_key("CHECKPOINT"), private_key("CHECKPOINT")),
    ]);

    // Each way in did store something, redacted.
    let tip = TestRepo::session_ref(&session);
    let summary = repo.git(&["show", &format!("{tip}:.cairn/memory/session.md")]);
    assert!(summary.contains("## Commands that worked\n"), "{summary}");
    assert!(summary.contains("echo ok # [redacted AWS access key id]"), "{summary}");
    assert!(summary.contains("keep [redacted AWS access key id] and\n[redacted private key]"));
    let notes = repo.git(&["show", &format!("{tip}:.cairn/memory/notes.md")]);
    assert!(notes.contains("[redacted private key]"), "{notes}");
    let facts = repo.git(&["ls-tree", "--name-only", "refs/cairn/memory:facts"]);
    assert_eq!(facts.lines().count(), 3, "remember, promotion and memory add: {facts}");
    assert!(
        repo.git(&["for-each-ref", "refs/cairn/sessions"]).lines().count() >= 2,
        "the hook recorded its own session"
    );
    let hooked = repo
        .git(&["for-each-ref", "--format=%(refname)", "refs/cairn/sessions"])
        .lines()
        .map(str::to_string)
        .find(|reference| {
            repo.git(&["log", "-1", "--format=%b", reference]).contains("Cairn-Agent: claude-code")
        })
        .expect("the hook's session");
    let stored = repo.git(&["show", &format!("{hooked}:.cairn/state/transcript.jsonl")]);
    let first = stored.lines().next().unwrap_or_default();
    let stored: Value = serde_json::from_str(first).expect("still JSON Lines");
    assert_eq!(
        stored["message"]["content"],
        "[redacted AWS access key id] and\n[redacted private key]\n"
    );

    let user_memory = repo.home.join(".local/share/cairn/memory.git");
    let git_dir = repo.root.join(".git");
    for (name, dump) in [
        ("the repository", everything_stored(&repo, &git_dir)),
        ("the user memory", everything_stored(&repo, &user_memory)),
    ] {
        for path in PATHS {
            assert!(!dump.contains(&aws_key(path)), "{path}'s AWS key reached {name}");
            assert!(!dump.contains(&key_body(path)), "{path}'s private key reached {name}");
        }
    }
    let counted = Command::new("git")
        .arg("--git-dir")
        .arg(&user_memory)
        .args(["count-objects", "-v"])
        .output()
        .unwrap();
    let counted = String::from_utf8_lossy(&counted.stdout);
    assert!(counted.contains("\ncount: 0\n") || counted.starts_with("count: 0\n"), "{counted}");
    assert!(!counted.contains("in-pack: 0\n"), "user facts go to disk as packs: {counted}");
    let user = everything_stored(&repo, &user_memory);
    assert!(user.contains("My own key is [redacted AWS access key id]"), "{user}");
    repo.assert_fsck_clean();
}
