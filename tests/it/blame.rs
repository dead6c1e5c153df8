//! `cairn blame`: each line's origin across sessions, the base commit, and human edits.

use serde_json::Value;

use crate::support::TestRepo;

#[test]
fn lines_are_attributed_across_two_sessions_a_recorded_and_an_unrecorded_edit() {
    let repo = TestRepo::new();
    repo.write("app.txt", "one\ntwo\nthree\nfour\n");
    repo.git(&["add", "app.txt"]);
    repo.git(&["commit", "-qm", "base"]);
    let head = repo.git(&["rev-parse", "HEAD"]).trim().to_string();

    repo.write("app.txt", "one\nTWO by a\nthree\nfour\n");
    let (a, a_step, _) = repo.checkpoint(&["-m", "a edits line 2", "--new"]);
    // Session b starts with a's edit on disk: it must not take credit for it.
    repo.write("app.txt", "one\nTWO by a\nthree\nFOUR by b\n");
    let (b, b_step, _) = repo.checkpoint(&["-m", "b edits line 4", "--new"]);
    // A human edit recorded as a step, then one not recorded at all.
    repo.write("app.txt", "zero\none\nTWO by a\nthree\nFOUR by b\n");
    let (_, human_step, _) = repo.checkpoint(&["-m", "my edit"]);
    repo.write("app.txt", "zero\none\nTWO by a\nthree (unsaved)\nFOUR by b\n");

    let lines: Value = serde_json::from_str(&repo.ok(&["blame", "app.txt", "--json"])).unwrap();
    let origin = |n: usize| -> (String, String, u64) {
        let line = &lines[n - 1];
        (
            line["origin"].as_str().unwrap().to_string(),
            line["session"].as_str().or(line["commit"].as_str()).unwrap_or("").to_string(),
            line["step"].as_u64().unwrap_or(0),
        )
    };
    assert_eq!(origin(1), ("step".into(), b.clone(), human_step), "zero: the recorded edit");
    assert_eq!(origin(2), ("base".into(), head.clone(), 0), "one: untouched since HEAD");
    assert_eq!(origin(3), ("step".into(), a.clone(), a_step), "TWO: session a");
    assert_eq!(origin(4).0, "workspace", "three (unsaved): not recorded");
    assert_eq!(origin(5), ("step".into(), b.clone(), b_step), "FOUR: session b");
    assert_eq!(lines[2]["text"], "TWO by a");

    // At a checkpoint: the file as it was then, without later steps.
    let at: Value = serde_json::from_str(&repo.ok(&[
        "blame",
        "app.txt",
        "--at",
        &format!("{a}@{a_step}"),
        "--json",
    ]))
    .unwrap();
    let texts: Vec<&str> =
        at.as_array().unwrap().iter().map(|l| l["text"].as_str().unwrap()).collect();
    assert_eq!(texts, ["one", "TWO by a", "three", "four"]);
    assert_eq!(at[1]["session"], a.as_str());
    assert_eq!(at[3]["origin"], "base");

    let text = repo.ok(&["blame", "app.txt"]);
    assert!(text.lines().nth(2).unwrap().starts_with(&format!("{a}@{a_step} manual")), "{text}");
}

#[test]
fn blaming_what_is_not_a_text_file_in_the_workspace_fails_clearly() {
    let repo = TestRepo::new();
    repo.checkpoint(&["-m", "one", "--new"]);
    assert!(repo.fails(&["blame", "missing.txt"]).contains("cannot read missing.txt"));
    std::fs::write(repo.path("image.bin"), [0u8, 1, 2, 0]).unwrap();
    assert!(repo.fails(&["blame", "image.bin"]).contains("binary"));
    assert!(repo.fails(&["blame", "../outside.txt"]).contains("outside the workspace"));
}

/// Checks `record` against the Agent Trace v0.1 JSON schema (cursor/agent-trace,
/// `schemas/trace-record.json`): required fields, their types and patterns, and no
/// property the schema does not define (it sets `additionalProperties: false`).
pub(crate) fn assert_follows_agent_trace_schema(record: &Value) {
    let keys = |value: &Value, allowed: &[&str], required: &[&str], what: &str| {
        let object = value.as_object().unwrap_or_else(|| panic!("{what} is an object: {value}"));
        for key in object.keys() {
            assert!(allowed.contains(&key.as_str()), "{what} has no property {key}: {value}");
        }
        for key in required {
            assert!(object.contains_key(*key), "{what} needs {key}: {value}");
        }
    };
    keys(
        record,
        &["version", "id", "timestamp", "vcs", "tool", "files", "metadata"],
        &["version", "id", "timestamp", "files"],
        "the record",
    );
    let version = record["version"].as_str().unwrap();
    let (major, minor) = version.split_once('.').expect("major.minor");
    assert!(major.parse::<u32>().is_ok() && minor.parse::<u32>().is_ok(), "{version}");
    let id = record["id"].as_str().unwrap();
    let groups: Vec<&str> = id.split('-').collect();
    assert_eq!(groups.iter().map(|g| g.len()).collect::<Vec<_>>(), [8, 4, 4, 4, 12], "{id}");
    assert!(id.chars().all(|c| c == '-' || c.is_ascii_hexdigit()), "{id}");
    assert!(("1"..="8").contains(&&groups[2][..1]) && "89abAB".contains(&groups[3][..1]), "{id}");
    let timestamp = record["timestamp"].as_str().unwrap();
    assert!(timestamp.ends_with('Z'), "UTC, as the schema's pattern wants: {timestamp}");
    timestamp.parse::<jiff::Timestamp>().expect("RFC 3339");
    if let Some(vcs) = record.get("vcs") {
        keys(vcs, &["type", "revision"], &["type", "revision"], "vcs");
        assert!(["git", "jj", "hg", "svn"].contains(&vcs["type"].as_str().unwrap()));
    }
    keys(&record["tool"], &["name", "version"], &["name", "version"], "tool");
    for file in record["files"].as_array().unwrap() {
        keys(file, &["path", "conversations"], &["path", "conversations"], "a file");
        for conversation in file["conversations"].as_array().unwrap() {
            keys(
                conversation,
                &["url", "contributor", "ranges", "related"],
                &["ranges"],
                "a conversation",
            );
            if let Some(url) = conversation.get("url") {
                let url = url.as_str().unwrap();
                let (scheme, rest) = url.split_once(':').expect("a URI has a scheme");
                assert!(
                    scheme.chars().all(|c| c.is_ascii_alphanumeric()) && !rest.is_empty(),
                    "{url}"
                );
                assert!(url.bytes().all(|b| b.is_ascii_graphic()), "{url}");
            }
            let contributor = &conversation["contributor"];
            keys(contributor, &["type", "model_id"], &["type"], "a contributor");
            assert!(
                ["human", "ai", "mixed", "unknown"]
                    .contains(&contributor["type"].as_str().unwrap())
            );
            if let Some(model) = contributor.get("model_id") {
                assert!(model.as_str().unwrap().chars().count() <= 250);
            }
            for range in conversation["ranges"].as_array().unwrap() {
                keys(
                    range,
                    &["start_line", "end_line", "content_hash", "contributor"],
                    &["start_line", "end_line"],
                    "a range",
                );
                let (start, end) =
                    (range["start_line"].as_u64().unwrap(), range["end_line"].as_u64().unwrap());
                assert!(start >= 1 && start <= end, "{range}");
            }
        }
    }
}

/// One conversation of a record: contributor type, model id, url, [(start, end)].
pub(crate) type TraceConversation = (String, Option<String>, Option<String>, Vec<(u64, u64)>);

/// The record's conversations for `path`.
pub(crate) fn trace_ranges(record: &Value, path: &str) -> Vec<TraceConversation> {
    let file = record["files"].as_array().unwrap().iter().find(|f| f["path"] == path);
    let file = file.unwrap_or_else(|| panic!("{path} is in the record: {record}"));
    file["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["contributor"]["type"].as_str().unwrap().to_string(),
                c["contributor"]["model_id"].as_str().map(str::to_string),
                c["url"].as_str().map(str::to_string),
                c["ranges"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| (r["start_line"].as_u64().unwrap(), r["end_line"].as_u64().unwrap()))
                    .collect(),
            )
        })
        .collect()
}

#[test]
fn the_agent_trace_form_attributes_the_agents_the_persons_and_unrecorded_lines() {
    use crate::hooks::{fixture, hook};
    let repo = TestRepo::new();
    // Claude Code writes src/greet.rs (recorded by its hooks) and finishes its turn.
    hook(&repo, "claude-code", &fixture(&repo, "claude-code", "user-prompt-submit"));
    repo.write(
        "src/greet.rs",
        "pub fn greet(name: &str) -> String {\n    format!(\"Hello, {name}!\")\n}\n",
    );
    hook(&repo, "claude-code", &fixture(&repo, "claude-code", "post-tool-use-write"));
    hook(&repo, "claude-code", &fixture(&repo, "claude-code", "stop"));
    let session = repo
        .git(&["for-each-ref", "--format=%(refname:lstrip=3)", "refs/cairn/sessions"])
        .trim()
        .to_string();
    let written = repo.git(&["rev-parse", &TestRepo::session_ref(&session)]).trim().to_string();
    // The person changes line 2; the next prompt records that as their step.
    repo.write(
        "src/greet.rs",
        "pub fn greet(name: &str) -> String {\n    format!(\"Hi, {name}!\")\n}\n",
    );
    hook(&repo, "claude-code", &fixture(&repo, "claude-code", "user-prompt-submit"));
    // And adds a line no step holds.
    repo.write(
        "src/greet.rs",
        "pub fn greet(name: &str) -> String {\n    format!(\"Hi, {name}!\")\n}\n// unsaved\n",
    );
    let before = (repo.user_state(), repo.git(&["for-each-ref"]));

    let record: Value =
        serde_json::from_str(&repo.ok(&["blame", "src/greet.rs", "--json=agent-trace"])).unwrap();
    assert_follows_agent_trace_schema(&record);
    assert_eq!(record["version"], "0.1");
    assert_eq!(record["tool"]["name"], "cairn");
    assert!(record.get("vcs").is_none(), "the workspace file is at no revision: {record}");
    let url = format!("cairn:session/{session}");
    assert_eq!(
        trace_ranges(&record, "src/greet.rs"),
        [
            ("ai".into(), None, Some(url.clone()), vec![(1, 1), (3, 3)]),
            ("human".into(), None, Some(url.clone()), vec![(2, 2)]),
            ("unknown".into(), None, None, vec![(4, 4)]),
        ]
    );
    assert_eq!(record["files"].as_array().unwrap().len(), 1);

    // At the agent's step: line numbers of the file then, and that step as the revision.
    let at: Value = serde_json::from_str(&repo.ok(&[
        "blame",
        "src/greet.rs",
        "--at",
        &written,
        "--json=agent-trace",
    ]))
    .unwrap();
    assert_follows_agent_trace_schema(&at);
    assert_eq!(at["vcs"]["type"], "git");
    assert_eq!(at["vcs"]["revision"], written.as_str());
    assert_eq!(
        repo.git(&["cat-file", "-t", at["vcs"]["revision"].as_str().unwrap()]).trim(),
        "commit"
    );
    assert_eq!(trace_ranges(&at, "src/greet.rs"), [("ai".into(), None, Some(url), vec![(1, 3)])]);
    assert_ne!(at["id"], record["id"], "each record has its own id");

    // `--json` alone is still one object per line.
    let lines: Value =
        serde_json::from_str(&repo.ok(&["blame", "--json", "src/greet.rs"])).unwrap();
    assert_eq!(lines.as_array().unwrap().len(), 4);
    assert_eq!((repo.user_state(), repo.git(&["for-each-ref"])), before, "blame only reads");
}

/// Runs `git` in the repository with `stdin`, returning its stdout.
fn git_with_input(repo: &TestRepo, args: &[&str], stdin: &str) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new("git")
        .args(args)
        .current_dir(&repo.root)
        .env_remove("GIT_DIR")
        .env_remove("GIT_INDEX_FILE")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "git {args:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn a_forged_steps_model_name_stays_out_of_the_record_and_inert_on_the_page() {
    let repo = TestRepo::new();
    repo.write("a.txt", "a\n");
    let (session, step, tip) = repo.checkpoint(&["-m", "one", "--new"]);
    // A step made with git alone, as a fetched session could hold it: it adds evil.txt,
    // and its model trailer carries a terminal escape and a javascript: link.
    let model = "x\u{1b}]8;;javascript:alert(1)\u{7}click\u{1b}]8;;\u{7}";
    let blob = git_with_input(&repo, &["hash-object", "-w", "--stdin"], "evil\n");
    let mut entries = repo.git(&["ls-tree", &tip]);
    entries.push_str(&format!("100644 blob {}\tevil.txt\n", blob.trim()));
    let tree = git_with_input(&repo, &["mktree"], &entries);
    let message = format!(
        "<b>forged</b>\n\nCairn-Session: {session}\nCairn-Step: {}\nCairn-Kind: tool\nCairn-Model: {model}\n",
        step + 1
    );
    let forged = repo.git(&["commit-tree", tree.trim(), "-p", &tip, "-m", &message]);
    repo.git(&["update-ref", &TestRepo::session_ref(&session), forged.trim(), &tip]);
    assert!(repo.git(&["log", "-1", "--format=%B", forged.trim()]).contains(model));
    repo.git(&["checkout", "-q", forged.trim(), "--", "evil.txt"]);
    repo.git(&["reset", "-q"]);
    let before = (repo.user_state(), repo.git(&["for-each-ref"]));

    let record: Value =
        serde_json::from_str(&repo.ok(&["blame", "evil.txt", "--json=agent-trace"])).unwrap();
    assert_follows_agent_trace_schema(&record);
    let url = format!("cairn:session/{session}");
    assert_eq!(trace_ranges(&record, "evil.txt"), [("ai".into(), None, Some(url), vec![(1, 1)])]);
    assert!(!record.to_string().contains("javascript"), "{record}");

    let html = repo.ok(&["export", "--format", "html"]);
    assert!(!html.contains('\u{1b}') && !html.contains('\u{7}'), "raw control characters");
    let shown = "x<span class=\"ctl\">U+001B</span>]8;;javascript:alert(1)<span class=\"ctl\">U+0007</span>click";
    assert!(html.contains(shown), "the model's name is shown, its controls as codes");
    assert!(html.contains("&lt;b&gt;forged&lt;/b&gt;") && !html.contains("<b>"));
    assert_eq!((repo.user_state(), repo.git(&["for-each-ref"])), before, "nothing changed");
}
