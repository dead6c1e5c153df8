//! `cairn export`: a session as a review document, checked against what the model saw.

use serde_json::{Value, json};

use crate::support::TestRepo;
use crate::support::mock_model::{self, Reply};

/// Runs a two-call session: the model writes a file whose text holds a code fence, then
/// answers. Returns the session id and the conversation the model was sent last.
async fn recorded_session(repo: &TestRepo) -> (String, Vec<Value>) {
    let model = mock_model::start([
        Reply::chat_tool_calls(&[(
            "c1",
            "write_file",
            json!({"path": "notes.md", "content": "Use:\n```sh\nmake\n```\n"}),
        )]),
        Reply::chat_text("Wrote notes.md."),
    ])
    .await;
    repo.use_model(&model.base_url());
    let mut command =
        repo.command_in(&repo.root, &["run", "write the notes", "--approval", "auto", "--json"]);
    let out = tokio::task::spawn_blocking(move || command.output().unwrap()).await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let session = repo
        .git(&["for-each-ref", "--format=%(refname:lstrip=3)", "refs/cairn/sessions"])
        .trim()
        .to_string();
    let requests = model.requests();
    let seen = requests.last().unwrap().body["messages"].as_array().unwrap().clone();
    (session, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_json_export_holds_every_message_once_and_each_steps_diff() {
    let repo = TestRepo::new();
    let (session, seen) = recorded_session(&repo).await;
    let export: Value = serde_json::from_str(&repo.ok(&["export", &session, "--format", "json"]))
        .expect("one JSON document");
    assert_eq!(export["session"]["id"], session.as_str());
    let steps = export["steps"].as_array().unwrap();
    let kinds: Vec<&str> = steps.iter().map(|s| s["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["prompt", "tool", "model"]);

    let messages: Vec<&Value> =
        steps.iter().flat_map(|s| s["messages"].as_array().unwrap()).collect();
    let roles: Vec<&str> = messages.iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["user", "assistant", "tool_result", "assistant"]);
    assert_eq!(messages[0]["text"], "write the notes");
    assert_eq!(messages[3]["text"], "Wrote notes.md.");
    // The model was sent the same conversation, minus its own last answer (and the system prompt).
    let sent_roles: Vec<&str> =
        seen.iter().map(|m| m["role"].as_str().unwrap()).filter(|r| *r != "system").collect();
    assert_eq!(sent_roles, ["user", "assistant", "tool"]);

    let diff = steps[1]["diff"].as_str().unwrap();
    assert!(diff.contains("b/notes.md") && diff.contains("+```sh"), "{diff}");
    assert_eq!(steps[0]["diff"], "", "the prompt step changed no file");
    // Each model call's tokens, and the session's: 10 in and 5 out each, no price table.
    assert!(steps[0]["usage"].is_null());
    assert_eq!(steps[1]["usage"]["input_tokens"], 10);
    assert_eq!(steps[2]["usage"]["output_tokens"], 5);
    assert_eq!(export["usage"]["input_tokens"], 20);
    assert_eq!(export["usage"]["output_tokens"], 10);
    assert!(export["cost"].is_null() && steps[1]["cost"].is_null());
    assert!(!diff.contains(".cairn"), "cairn's own state is hidden: {diff}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_markdown_export_reads_as_a_review() {
    let repo = TestRepo::new();
    let (session, _) = recorded_session(&repo).await;
    let md = repo.ok(&["export", &session]);
    assert!(md.starts_with(&format!("# cairn session `{session}`")), "{md}");
    assert!(md.contains("## Step 1 · prompt"));
    assert!(md.contains("**User**\n\n> write the notes"));
    assert!(md.contains("**Tool call** `write_file` (`c1`)"));
    assert!(md.contains("**Tool result** (`c1`)"));
    assert!(md.contains("**Assistant**\n\nWrote notes.md."));
    assert!(md.contains("\n- tokens: in 20 · cached 0 · out 10\n"), "the session's total: {md}");
    assert_eq!(md.matches(" · tokens: in 10 · cached 0 · out 5\n").count(), 2, "{md}");
    // The diff holds a ``` fence, so its own fence must be longer.
    assert!(md.contains("````diff\n"), "{md}");
    assert_eq!(md.matches("<details>").count(), md.matches("</details>").count());
}

#[test]
fn exporting_an_unknown_session_fails_clearly_and_changes_nothing() {
    let repo = TestRepo::new();
    repo.checkpoint(&["-m", "one", "--new"]);
    let refs = repo.git(&["for-each-ref", "refs/cairn"]);
    let err = repo.fails(&["export", "no-such-session"]);
    assert!(err.contains("no-such-session"), "{err}");
    assert_eq!(repo.git(&["for-each-ref", "refs/cairn"]), refs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rewound_away_history_exports_from_its_archive_ref() {
    let repo = TestRepo::new();
    let (session, _) = recorded_session(&repo).await;
    repo.ok(&["rewind", &format!("{session}@1")]);
    let archive =
        repo.git(&["for-each-ref", "--format=%(refname)", "refs/cairn/archive"]).trim().to_string();
    let steps = |name: &str| -> usize {
        let export: Value =
            serde_json::from_str(&repo.ok(&["export", name, "--format", "json"])).unwrap();
        export["steps"].as_array().unwrap().len()
    };
    assert_eq!(steps(&session), 1, "the session now ends at step 1");
    assert_eq!(steps(&archive), 3, "the archive keeps the whole turn");
}

/// What an attacker puts in a session meant for someone else's review page.
const HOSTILE: [&str; 5] = [
    "<script>alert(1)</script>",
    "</pre>",
    "\"><img src=x onerror=alert(1)>",
    "</textarea>",
    "javascript:alert(1)",
];

/// Reverses what follows it on screen ("Trojan Source"): the page must show it.
const RIGHT_TO_LEFT_OVERRIDE: char = '\u{202E}';

/// The tags the page itself is built from.
const PAGE_TAGS: &[&str] = &[
    "html", "head", "meta", "title", "style", "body", "header", "h1", "h2", "h3", "p", "code",
    "strong", "section", "div", "span", "table", "tr", "td", "nav", "ol", "li", "a", "main",
    "button", "details", "summary", "footer", "script",
];

/// A start tag as the WHATWG tokenizer (what a browser runs) reads it.
struct Tag {
    name: String,
    attributes: Vec<(String, String)>,
}

/// The page's start tags, and all its text (entities decoded), as a browser reads them.
fn tokenize(html: &str) -> (Vec<Tag>, String) {
    use html5gum::{DefaultEmitter, Token, Tokenizer};
    // Script and style content is raw text, as in a browser.
    let mut emitter = DefaultEmitter::default();
    emitter.naively_switch_states(true);
    let mut tags = Vec::new();
    let mut text = String::new();
    for token in Tokenizer::new_with_emitter(html, emitter).flatten() {
        match token {
            Token::StartTag(tag) => tags.push(Tag {
                name: String::from_utf8_lossy(&tag.name).into_owned(),
                attributes: tag
                    .attributes
                    .iter()
                    .map(|(k, v)| {
                        let value = String::from_utf8_lossy(&v.value).into_owned();
                        (String::from_utf8_lossy(k).into_owned(), value)
                    })
                    .collect(),
            }),
            Token::String(s) => text.push_str(&String::from_utf8_lossy(&s.value)),
            _ => {}
        }
    }
    (tags, text)
}

fn attribute<'a>(tag: &'a Tag, name: &str) -> Option<&'a str> {
    tag.attributes.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_html_page_shows_a_hostile_session_as_text_and_runs_only_its_own_script() {
    let repo = TestRepo::new();
    let payload = format!("{}\n{RIGHT_TO_LEFT_OVERRIDE}reversed\n", HOSTILE.join("\n"));
    // File names: one per hostile string (a `/` in one makes a directory).
    let names: Vec<String> = HOSTILE.iter().map(|h| format!("{h}.txt")).collect();
    let mut replies: Vec<Reply> = names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            Reply::chat_tool_calls(&[(
                &format!("w{i}"),
                "write_file",
                json!({"path": name, "content": payload}),
            )])
        })
        .collect();
    // Tool output: the shell prints every hostile string back.
    replies.push(Reply::chat_tool_calls(&[(
        "s1",
        "shell",
        json!({"command": "cat '</pre>.txt'"}),
    )]));
    replies.push(Reply::chat_text(&format!("Done: {payload}")));
    let model = mock_model::start(replies).await;
    repo.use_model(&model.base_url());
    let prompt = format!("Review this: {payload}");
    let mut command = repo.command_in(&repo.root, &["run", &prompt, "--approval", "auto"]);
    let out = tokio::task::spawn_blocking(move || command.output().unwrap()).await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for name in &names {
        assert_eq!(repo.read(name), payload, "the model wrote {name}");
    }
    let before = (repo.user_state(), repo.git(&["for-each-ref"]));

    let html = repo.ok(&["export", "--format", "html"]);

    assert_eq!((repo.user_state(), repo.git(&["for-each-ref"])), before, "export only reads");
    for hostile in &HOSTILE[..4] {
        assert!(!html.contains(hostile), "{hostile} reached the page as markup");
    }
    assert!(!html.contains(RIGHT_TO_LEFT_OVERRIDE), "an invisible override reached the page");
    let (tags, text) = tokenize(&html);
    // Everything hostile is there, but as text a reviewer reads.
    let all = HOSTILE.join("\n");
    assert!(text.contains(&format!("Review this: {all}")), "the prompt is shown");
    assert!(text.contains(&format!("Done: {all}")), "the model's text is shown");
    assert!(text.matches(&all).count() >= 3, "and the shell's output");
    for hostile in HOSTILE {
        assert!(text.contains(&format!("{hostile}.txt")), "the file name {hostile} is shown");
        assert!(text.contains(&format!("+{hostile}")), "the diff line {hostile} is shown");
    }
    assert!(text.contains("U+202Ereversed"), "the override is shown as a visible code");

    let unknown: Vec<&str> =
        tags.iter().map(|t| t.name.as_str()).filter(|n| !PAGE_TAGS.contains(n)).collect();
    assert!(unknown.is_empty(), "tags the page does not make: {unknown:?}");
    for tag in &tags {
        for (name, value) in &tag.attributes {
            assert!(!name.starts_with("on"), "an event handler {name}={value} on <{}>", tag.name);
            assert!(!value.to_ascii_lowercase().contains("javascript:"), "{name}={value}");
            if name == "href" {
                assert!(value.starts_with('#'), "a link off the page: {value}");
            }
            assert!(!["src", "srcdoc", "action", "formaction"].contains(&name.as_str()), "{name}");
        }
    }
    let csp = tags
        .iter()
        .find(|t| t.name == "meta" && attribute(t, "http-equiv") == Some("Content-Security-Policy"))
        .and_then(|t| attribute(t, "content"))
        .expect("a Content-Security-Policy");
    assert!(csp.starts_with("default-src 'none';"), "{csp}");
    assert!(!csp.contains("unsafe") && !csp.contains("http") && !csp.contains('*'), "{csp}");
    let nonce = csp.split("'nonce-").nth(1).and_then(|rest| rest.split('\'').next()).unwrap();
    assert!(nonce.len() >= 32, "a 128-bit nonce: {nonce}");
    let scripts: Vec<&Tag> = tags.iter().filter(|t| t.name == "script").collect();
    assert_eq!(scripts.len(), 1, "the page's one script");
    assert_eq!(attribute(scripts[0], "nonce"), Some(nonce));
    assert_eq!(html.matches("<script").count(), 1, "no other script text anywhere");
    // A second export gets a fresh nonce: a page cannot be primed to trust a known one.
    let again = repo.ok(&["export", "--format", "html"]);
    assert!(!again.contains(nonce));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_html_page_shows_totals_the_timeline_and_a_rewound_branch_as_a_fork() {
    let repo = TestRepo::new();
    let (session, _) = recorded_session(&repo).await;
    // The user adds a file by hand, then rewinds to step 2: the edits become step 4 of the
    // archived branch; then they add another file as a manual checkpoint on the main line.
    repo.write("by-hand.txt", "mine\n");
    repo.ok(&["rewind", &format!("{session}@2")]);
    repo.write("later.txt", "one\ntwo\n");
    repo.checkpoint(&["-m", "add later.txt"]);
    let archive =
        repo.git(&["for-each-ref", "--format=%(refname)", "refs/cairn/archive"]).trim().to_string();

    let html = repo.ok(&["export", &session, "--format", "html"]);
    let (_, text) = tokenize(&html);
    let at = |needle: &str| html.find(needle).unwrap_or_else(|| panic!("{needle} is missing"));
    // The main line, with the fork after step 2 and before the new step 3.
    let order = [
        at("id=\"main-step-1\""),
        at("id=\"main-step-2\""),
        at("id=\"fork-0\""),
        at("id=\"fork-0-step-3\""),
        at("id=\"fork-0-step-4\""),
        at("id=\"main-step-3\""),
    ];
    assert!(order.windows(2).all(|w| w[0] < w[1]), "steps out of order: {order:?}");
    assert!(text.contains("Archived branch after step 2"), "the fork says where it leaves");
    assert!(text.contains(&archive), "the fork names its ref");
    // The user's edits are marked as a person's.
    assert!(html.contains("<section class=\"step kind-human\" id=\"fork-0-step-4\">"));
    let human = &html[order[4]..order[5]];
    assert!(!human.contains("mock/scripted"), "no model made a person's edits: {human}");
    assert!(human.contains(">human</span>") && human.contains("by-hand.txt"), "{human}");
    // Totals: three steps here and two on the branch; the net change is the main line's.
    assert!(text.contains("Steps3+2 on 1 archived branch"), "{text}");
    assert!(text.contains("Files changed2base"), "notes.md and later.txt: {text}");
    assert!(text.contains("Lines+6 −0"), "{text}");
    assert!(text.contains("mock/scripted"), "the model is named");
    assert!(
        text.contains("Tokensin 20 · cached 0 · out 10all steps, archived branches too"),
        "two model calls' usage, with no price table: {text}"
    );
    assert!(html.contains("<span class=\"tokens\">tokens: in 10 · cached 0 · out 5</span>"));
    // The prompt, the tool call with its result, the model's text and the diff.
    assert!(text.contains("Promptwrite the notes"));
    assert!(html.contains("<span class=\"tool-name\">write_file</span>"));
    assert!(text.contains("ModelWrote notes.md."));
    assert!(html.contains("<div class=\"l add\"><span class=\"ln\"></span><span class=\"ln\">2</span><span class=\"c\">+```sh</span></div>"), "{html}");
    assert!(!text.contains(".cairn/"), "cairn's own state is hidden");
}

/// The first of `names` on the PATH.
fn find_program(names: &[&str]) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    names.iter().find_map(|name| {
        std::env::split_paths(&path).map(|dir| dir.join(name)).find(|candidate| candidate.is_file())
    })
}

#[test]
fn the_demo_sessions_page_renders_in_a_real_browser_without_errors() {
    let Some(chromium) = find_program(&["chromium", "chromium-browser", "google-chrome"]) else {
        eprintln!(
            "SKIPPED the_demo_sessions_page_renders_in_a_real_browser: no Chromium on PATH (apt-get install chromium)"
        );
        return;
    };
    let repo = TestRepo::new();
    let out = repo.ok(&["demo", "--keep"]);
    let kept = out.lines().find_map(|l| l.strip_prefix("The demo repository is kept at ")).unwrap();
    let demo = std::path::PathBuf::from(kept.trim());
    let html = repo.cairn_in(&demo, &["export", "--format", "html"]);
    std::fs::remove_dir_all(demo.parent().unwrap()).unwrap();
    assert!(html.status.success(), "{}", String::from_utf8_lossy(&html.stderr));
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("review.html");
    std::fs::write(&page, &html.stdout).unwrap();
    let url = format!("file://{}", page.display());
    let browse = |extra: &[&str]| {
        let profile = tempfile::tempdir().unwrap();
        let mut command = std::process::Command::new(&chromium);
        command.args([
            "--headless",
            "--disable-gpu",
            "--no-sandbox",
            "--no-first-run",
            "--enable-logging=stderr",
            "--v=0",
        ]);
        command.arg(format!("--user-data-dir={}", profile.path().display()));
        command.args(extra).arg(&url);
        let out = command.output().expect("chromium runs");
        assert!(out.status.success(), "chromium failed: {}", String::from_utf8_lossy(&out.stderr));
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        for sign in ["Uncaught", "CONSOLE(", "Content Security Policy", "Refused to"] {
            assert!(!stderr.contains(sign), "the page logged an error ({sign}):\n{stderr}");
        }
        out.stdout
    };
    let screenshot = dir.path().join("review.png");
    browse(&[&format!("--screenshot={}", screenshot.display()), "--window-size=1280,2000"]);
    let png = std::fs::read(&screenshot).expect("a screenshot");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000, "{} bytes", png.len());
    // The page's own script ran under its Content-Security-Policy.
    let dom = String::from_utf8_lossy(&browse(&["--dump-dom"])).into_owned();
    assert!(dom.contains("data-ready=\"1\""), "the script did not run:\n{dom}");
    assert!(dom.contains("Archived branch after step 1"), "the demo's rewind is a fork");
}

#[test]
fn archive_refs_that_are_no_branch_of_the_session_are_named_or_left_out_not_fatal() {
    let repo = TestRepo::new();
    repo.write("a.txt", "a\n");
    let (session, _, _) = repo.checkpoint(&["-m", "one", "--new"]);
    repo.write("b.txt", "b\n");
    let (_, _, other_tip) = repo.checkpoint(&["-m", "another session", "--new"]);
    let blob = repo.git(&["rev-parse", "HEAD:README.md"]);
    // An archive of this session that points to a blob, and one that points into another
    // session, as a hostile fetch could leave them.
    repo.git(&["update-ref", &format!("refs/cairn/archive/{session}/1"), blob.trim()]);
    repo.git(&["update-ref", &format!("refs/cairn/archive/{session}/2"), &other_tip]);

    let html = repo.ok(&["export", &session, "--format", "html"]);
    assert!(
        html.contains(&format!(
            "The archived branch <code>refs/cairn/archive/{session}/1</code> could not be read"
        )),
        "{html}"
    );
    assert!(!html.contains(&format!("refs/cairn/archive/{session}/2")), "another session's steps");
    assert!(!html.contains("another session"), "{html}");
    assert!(!html.contains("id=\"fork-"), "no fork was made of either");
    assert!(html.contains("id=\"main-step-1\""));
}

/// Rewrites the session's two newest steps the way someone sharing a session could: each
/// `step.json` claims crafted token counts (u64::MAX twice, strings, negatives, floats,
/// markup). `cairn export` in every format still succeeds, sums without overflow, shows
/// the markup as text, and changes nothing in the repository or the workspace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crafted_token_counts_in_a_shared_session_export_as_numbers_and_change_nothing() {
    let repo = TestRepo::new();
    let (session, _) = recorded_session(&repo).await;
    let session_ref = format!("refs/cairn/sessions/{session}");
    // Each of the two newest steps, rebuilt on its (rebuilt) parent with a crafted usage.
    let crafted = [
        json!({"input_tokens": u64::MAX, "output_tokens": "<script>alert(1)</script>",
               "cached_input_tokens": -5, "cache_write_input_tokens": 1.5,
               "reasoning_tokens": {"nested": 1}}),
        json!({"input_tokens": u64::MAX, "output_tokens": 7, "cached_input_tokens": "9"}),
    ];
    let rev = |name: String| repo.git(&["rev-parse", &name]).trim().to_string();
    let old = [rev(format!("{session_ref}~1")), rev(session_ref.clone())];
    let mut parent = rev(format!("{session_ref}~2"));
    for (commit, usage) in old.iter().zip(&crafted) {
        let step_json = repo.git(&["show", &format!("{commit}:.cairn/state/step.json")]);
        let mut step: Value = serde_json::from_str(&step_json).unwrap();
        step["usage"] = usage.clone();
        parent = repo.rewrite_step(commit, &parent, ".cairn/state/step.json", &step.to_string());
    }
    repo.git(&["update-ref", &session_ref, &parent]);
    let before = (
        repo.user_state(),
        repo.git(&["for-each-ref"]),
        repo.git(&["status", "--porcelain", "--ignored"]),
    );

    let exported: Value = serde_json::from_str(&repo.ok(&["export", "--format", "json"])).unwrap();
    let markdown = repo.ok(&["export", "--format", "md"]);
    let html = repo.ok(&["export", "--format", "html"]);

    let after = (
        repo.user_state(),
        repo.git(&["for-each-ref"]),
        repo.git(&["status", "--porcelain", "--ignored"]),
    );
    assert_eq!(after, before, "export only reads");
    // Two u64::MAX inputs saturate; what is no count counts as nothing.
    let total = &exported["usage"];
    assert_eq!(total["input_tokens"], json!(u64::MAX), "{total}");
    assert_eq!(total["output_tokens"], json!(7), "{total}");
    assert_eq!(total["cached_input_tokens"], json!(0), "{total}");
    let steps = exported["steps"].as_array().unwrap();
    let last_two: Vec<&Value> = steps[steps.len() - 2..].iter().map(|s| &s["usage"]).collect();
    assert_eq!(last_two[0]["output_tokens"], json!(0), "{}", last_two[0]);
    assert_eq!(last_two[1]["output_tokens"], json!(7), "{}", last_two[1]);
    for page in [&markdown, &html] {
        assert!(!page.contains("<script>alert"), "a crafted count reached the page as markup");
        assert!(page.contains(&u64::MAX.to_string()), "the saturated total is shown");
    }
}
