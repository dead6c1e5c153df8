//! The command line as a person and a script meet it: completion scripts and man pages,
//! mistyped commands, what `cairn sessions` and the JSON listings show, and output into a
//! pipe that closes early.

use std::io::{Read as _, Write as _};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use crate::support::TestRepo;

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Whether `text` is an RFC 3339 UTC time as cairn writes them: `2026-11-24T15:30:00Z`.
fn is_rfc3339_utc(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.len() == 20
        && text.parse::<jiff::Timestamp>().is_ok()
        && bytes[4] == b'-'
        && bytes[10] == b'T'
        && bytes[19] == b'Z'
}

fn seconds(rfc3339: &Value) -> i64 {
    rfc3339.as_str().unwrap().parse::<jiff::Timestamp>().unwrap().as_second()
}

#[test]
fn completion_scripts_cover_the_commands_for_each_shell() {
    let repo = TestRepo::new();
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let script = repo.ok(&["completions", shell]);
        for command in ["sessions", "checkpoint", "completions"] {
            assert!(script.contains(command), "{shell} script lacks {command}");
        }
    }
    // bash itself loads the script and registers the completion.
    let path = repo.home.join("cairn.bash");
    std::fs::write(&path, repo.ok(&["completions", "bash"])).unwrap();
    let out = Command::new("bash")
        .args(["--norc", "-c", "source \"$1\" && complete -p cairn", "bash"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let registered = String::from_utf8_lossy(&out.stdout);
    assert!(
        registered.starts_with("complete ")
            && registered.contains(" -F _cairn ")
            && registered.trim_end().ends_with(" cairn"),
        "{registered}"
    );

    let out = repo.cairn(&["completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("invalid value 'tcsh'"), "{}", stderr(&out));
}

#[test]
fn man_pages_are_written_for_cairn_and_each_command() {
    let repo = TestRepo::new();
    let dir = repo.home.join("man/man1");
    let out = repo.cairn(&["generate-man", dir.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(out.stdout.is_empty());
    let page = std::fs::read_to_string(dir.join("cairn.1")).unwrap();
    assert!(page.contains(".TH cairn 1"), "{page}");
    assert!(page.contains("sessions") && page.contains("completions"), "{page}");
    for name in ["cairn-sessions.1", "cairn-completions.1", "cairn-memory-show.1"] {
        let page = std::fs::read_to_string(dir.join(name)).unwrap();
        assert!(page.starts_with(".ie \\n(.g .ds Aq"), "{name} is not roff: {page}");
    }
    assert!(!dir.join("cairn-generate-man.1").exists(), "the hidden command has no page");
    assert!(!repo.ok(&["--help"]).contains("generate-man"), "hidden from --help");

    let file = repo.home.join("not-a-dir");
    std::fs::write(&file, "").unwrap();
    let err = repo.fails(&["generate-man", file.to_str().unwrap()]);
    assert!(err.contains("cannot write man pages to") && err.contains("not-a-dir"), "{err}");
}

#[test]
fn a_mistyped_command_names_the_command_instead_of_becoming_a_prompt() {
    let repo = TestRepo::new();
    let before = repo.user_state();
    for args in [&["sesions"][..], &["sesions", "--json"], &["Sessions"], &["lgo", "-p"]] {
        let out = repo.cairn(args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        let meant = if args[0] == "lgo" { "log" } else { "sessions" };
        assert!(
            err.contains(&format!(
                "'{}' is not a cairn command; did you mean `cairn {meant}`?",
                args[0]
            )),
            "{args:?}: {err}"
        );
        assert!(err.contains(&format!("run `cairn -- {}`", args[0])), "{args:?}: {err}");
        assert!(out.stdout.is_empty());
    }
    // A near miss of `hook` is not exit 2, which would block the host agent's action.
    let out = repo.cairn(&["hok", "claude-code"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("did you mean `cairn hook`?"), "{}", stderr(&out));

    // After `--` the word is the prompt: here that is the interactive session's own
    // refusal without a terminal, not a suggestion.
    let out = repo.cairn(&["--", "sesions"]);
    let err = stderr(&out);
    assert!(err.contains("needs a terminal") && !err.contains("did you mean"), "{err}");
    // Ordinary one-word prompts are prompts.
    let err = stderr(&repo.cairn(&["refactor"]));
    assert!(err.contains("needs a terminal") && !err.contains("did you mean"), "{err}");

    assert_eq!(repo.user_state(), before);
    assert_eq!(repo.git(&["for-each-ref", "refs/cairn"]), "", "nothing was recorded");
}

#[test]
fn sessions_show_steps_age_agent_and_a_one_line_title() {
    let repo = TestRepo::new();
    let long = format!("refactor {}", "the parser ".repeat(10));
    let (own, _, _) =
        repo.checkpoint(&["--new", "--prompt", "\n  fix the\tfailing\n test\nsecond line"]);
    repo.write("a.txt", "a\n");
    let (hooked, _, _) =
        repo.checkpoint(&["--new", "--agent", "claude-code", "--prompt", long.trim()]);
    repo.write("a.txt", "b\n");
    repo.checkpoint(&["-m", "more"]);

    // What is stored, read with git: the title is made once, from the first prompt.
    let stored = |id: &str| {
        let toml =
            repo.git(&["show", &format!("{}:.cairn/session.toml", TestRepo::session_ref(id))]);
        toml.lines().find(|line| line.starts_with("title = ")).unwrap().to_string()
    };
    assert_eq!(stored(&own), "title = \"fix the failing\"");
    let cut = format!("{}…", &long[..59].trim_end());
    assert_eq!(stored(&hooked), format!("title = \"{cut}\""));

    let listed = repo.ok(&["sessions"]);
    let lines: Vec<&str> = listed.lines().collect();
    assert_eq!(lines.len(), 2, "{listed}");
    let row = |id: &str| *lines.iter().find(|line| line.contains(id)).unwrap();
    let (hooked_row, own_row) = (row(&hooked), row(&own));
    assert!(hooked_row.starts_with(&format!("* {hooked}    2 steps  ")), "{hooked_row}");
    assert!(hooked_row.ends_with(&format!("  [claude-code] {cut}")), "{hooked_row}");
    assert!(own_row.starts_with(&format!("  {own}    1 step   ")), "{own_row}");
    assert!(own_row.ends_with("  fix the failing"), "{own_row}");
    for line in lines {
        assert!(
            line.contains("  just now  ") || line.contains(" min ago  "),
            "an age, not a date: {line}"
        );
    }
}

#[test]
fn json_listings_give_every_time_in_rfc3339_and_seconds_only_under_a_unix_name() {
    let repo = TestRepo::new();
    repo.write("a.txt", "a\n");
    let (session, _, _) = repo.checkpoint(&["--new", "--agent", "codex", "-m", "one"]);
    repo.write("a.txt", "b\n");
    repo.checkpoint(&["-m", "two"]);
    let session_ref = TestRepo::session_ref(&session);

    let listed: Value = serde_json::from_str(&repo.ok(&["sessions", "--json"])).unwrap();
    let entry = &listed[0];
    assert_eq!(entry["id"], session.as_str());
    assert_eq!(entry["agent"], "codex");
    assert_eq!(entry["steps"], 2);
    for field in ["created", "updated"] {
        assert!(is_rfc3339_utc(entry[field].as_str().unwrap()), "{field}: {entry}");
    }
    let committed: i64 =
        repo.git(&["log", "-1", "--format=%ct", &session_ref]).trim().parse().unwrap();
    assert_eq!(entry["updated_unix"], committed, "the tip's commit time, as git reads it");
    assert_eq!(seconds(&entry["updated"]), committed);
    let toml = repo.git(&["show", &format!("{session_ref}:.cairn/session.toml")]);
    assert!(toml.contains(&format!("created = {}", entry["created"])), "{toml}");

    let steps: Value = serde_json::from_str(&repo.ok(&["log", "--json"])).unwrap();
    let steps = steps.as_array().unwrap();
    assert_eq!(steps.len(), 2);
    for (step, rev) in steps.iter().zip([format!("{session_ref}~1"), session_ref.clone()]) {
        let committed: i64 = repo.git(&["log", "-1", "--format=%ct", &rev]).trim().parse().unwrap();
        assert!(is_rfc3339_utc(step["time"].as_str().unwrap()), "{step}");
        assert_eq!(seconds(&step["time"]), committed, "{step}");
        assert_eq!(step["time_unix"], committed, "{step}");
        assert_eq!(step["commit"], repo.git(&["rev-parse", &rev]).trim());
    }
    assert_eq!(steps[0]["agent"], "codex");
    assert_eq!(steps[1]["subject"], "two");
    assert_eq!(steps[1]["kind"], "manual");
}

/// Replaces `.cairn/session.toml` at a session's tip with `toml`, as another machine's
/// pushed session could hold it: a new tree and commit with the same message and parent.
fn forge_session_toml(repo: &TestRepo, session: &str, toml: &str) {
    let session_ref = TestRepo::session_ref(session);
    let tip = repo.git(&["rev-parse", &session_ref]).trim().to_string();
    let index = repo.home.join("forge-index");
    let git = |args: &[&str], input: &str| -> String {
        let mut child = Command::new("git")
            .args(args)
            .current_dir(&repo.root)
            .env("GIT_INDEX_FILE", &index)
            .env("HOME", &repo.home)
            .env("GIT_CONFIG_GLOBAL", repo.home.join(".gitconfig"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "git {args:?}");
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    git(&["read-tree", &tip], "");
    let blob = git(&["hash-object", "-w", "--stdin"], toml);
    git(&["update-index", "--cacheinfo", &format!("100644,{blob},.cairn/session.toml")], "");
    let tree = git(&["write-tree"], "");
    let message = repo.git(&["log", "-1", "--format=%B", &tip]);
    let parent = repo.git(&["rev-parse", &format!("{tip}^")]).trim().to_string();
    let commit = git(&["commit-tree", &tree, "-p", &parent], &message);
    repo.git(&["update-ref", &session_ref, &commit]);
}

#[test]
fn a_session_title_with_terminal_escapes_is_printed_as_plain_text() {
    let repo = TestRepo::new();
    let (honest, _, _) = repo.checkpoint(&["--new", "-m", "honest work"]);
    repo.write("x.txt", "x\n");
    let (forged, _, _) = repo.checkpoint(&["--new", "-m", "forged"]);
    let base = repo.git(&["rev-parse", "HEAD"]).trim().to_string();
    let hostile =
        "\u{1b}]0;owned\u{7}\u{1b}[2J\u{202e}evil\n* 20990101-0000-fake  99 steps  forged row";
    forge_session_toml(
        &repo,
        &forged,
        &format!(
            "id = \"{forged}\"\ntitle = {}\ncreated = \"not a time\"\nbase = \"{base}\"\nagent = \"x\\u001b[31mred\"\ncairn_version = \"0.1.0\"\n",
            serde_json::to_string(hostile).unwrap()
        ),
    );
    let before = repo.user_state();
    let refs = repo.git(&["for-each-ref"]);

    let out = repo.cairn(&["sessions"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let listed = String::from_utf8(out.stdout).unwrap();
    assert!(
        !listed
            .chars()
            .any(|c| c.is_control() && c != '\n' || ('\u{202a}'..='\u{202e}').contains(&c)),
        "control characters reached the terminal: {listed:?}"
    );
    let lines: Vec<&str> = listed.lines().collect();
    assert_eq!(lines.len(), 2, "a newline in a title forged a row: {listed}");
    let row = lines.iter().find(|line| line.contains(&forged)).unwrap();
    assert!(row.ends_with("[x[31mred] ]0;owned[2Jevil"), "{row}");
    assert!(lines.iter().any(|line| line.contains(&honest) && line.ends_with("honest work")));

    // JSON carries the title as stored, escaped; the unreadable `created` is null.
    let out = repo.cairn(&["sessions", "--json"]);
    assert!(!out.stdout.contains(&0x1b), "JSON escapes control characters");
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    let entry = listed.as_array().unwrap().iter().find(|s| s["id"] == forged.as_str()).unwrap();
    assert_eq!(entry["title"], hostile);
    assert_eq!(entry["created"], Value::Null);

    assert_eq!(repo.user_state(), before);
    assert_eq!(repo.git(&["for-each-ref"]), refs, "listing changed no ref");
    repo.assert_fsck_clean();
}

/// Runs `cairn args` with stdout a pipe whose reading end is already closed, so its first
/// write fails as `cairn … | head -0` would make it.
fn into_closed_pipe(repo: &TestRepo, args: &[&str]) -> Output {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let mut command = repo.command_in(&repo.root, args);
    command.stdout(writer).stderr(Stdio::piped());
    let out = command.output().unwrap();
    assert!(out.stdout.is_empty());
    out
}

fn assert_quiet_end(args: &[&str], out: &Output) {
    let err = stderr(out);
    assert!(!err.contains("panicked") && !err.contains("Broken pipe"), "{args:?}: {err}");
    assert_eq!(err, "", "{args:?}: nothing on stderr");
    assert!(matches!(out.status.code(), Some(0 | 141)), "{args:?}: {}", out.status);
}

#[test]
fn a_closed_stdout_pipe_ends_every_command_quietly() {
    let repo = TestRepo::new();
    repo.write("a.txt", "a\n");
    let (session, _, _) = repo.checkpoint(&["--new", "-m", "one"]);
    repo.write("a.txt", "b\n");
    repo.checkpoint(&["-m", "two"]);
    repo.ok(&["memory", "add", "the tests run with cargo test"]);
    for args in [
        &["sessions"][..],
        &["sessions", "--json"],
        &["log"],
        &["log", "--json"],
        &["log", "-p"],
        &["show", &session],
        &["diff", &format!("{session}@1"), &format!("{session}@2")],
        &["export", &session],
        &["memory", "show"],
        &["config", "show"],
        &["completions", "bash"],
        &["--help"],
        &["--version"],
    ] {
        assert!(!repo.ok(args).is_empty(), "{args:?} prints something to fail on");
        assert_quiet_end(args, &into_closed_pipe(&repo, args));
    }
}

#[test]
fn a_reader_that_stops_early_ends_a_long_listing_quietly() {
    let repo = TestRepo::new();
    // More than a pipe holds (64 KiB on Linux), so cairn is still writing when the
    // reader goes away, whatever the timing.
    let big: String = (0..20_000).map(|n| format!("line {n}\n")).collect();
    repo.write("big.txt", &big);
    let (session, _, _) = repo.checkpoint(&["--new", "-m", "big"]);
    for args in [&["log", "-p"][..], &["show", &session]] {
        let mut command = repo.command_in(&repo.root, args);
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = command.spawn().unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let mut first = [0u8; 16];
        stdout.read_exact(&mut first).unwrap();
        drop(stdout);
        let out = child.wait_with_output().unwrap();
        assert_quiet_end(args, &out);
    }
}

#[test]
fn a_hook_session_is_titled_by_its_first_prompt_payload_cleaned() {
    let repo = TestRepo::new();
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/hooks/claude-code/user-prompt-submit.json");
    let mut payload: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture).unwrap()).unwrap();
    payload["cwd"] = repo.root.to_str().unwrap().into();
    payload["prompt"] = "\u{1b}[1;31mRename\u{1b}[0m   the\u{7} crate\nand update the docs".into();
    let mut command = repo.command_in(&repo.home, &["hook", "claude-code"]);
    command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command.spawn().unwrap();
    child.stdin.take().unwrap().write_all(payload.to_string().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success() && out.stderr.is_empty(), "{}", stderr(&out));

    let listed: Value = serde_json::from_str(&repo.ok(&["sessions", "--json"])).unwrap();
    assert_eq!(listed[0]["title"], "[1;31mRename[0m the crate");
    assert_eq!(listed[0]["agent"], "claude-code");
    let session_ref = TestRepo::session_ref(listed[0]["id"].as_str().unwrap());
    let toml = repo.git(&["show", &format!("{session_ref}:.cairn/session.toml")]);
    assert!(toml.contains("title = \"[1;31mRename[0m the crate\""), "{toml}");
    let text = repo.ok(&["sessions"]);
    assert!(text.trim_end().ends_with("[claude-code] [1;31mRename[0m the crate"), "{text}");
}

#[test]
fn an_internal_failure_exits_4_with_its_causes_and_how_to_report_it() {
    let repo = TestRepo::new();
    // A file where cairn's ref directory must be: writing the session's ref fails, for
    // root too.
    std::fs::write(repo.path(".git/refs/cairn"), "").unwrap();
    let out = repo.cairn(&["checkpoint", "--new", "-m", "one"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(err.starts_with("error: git: updating refs/cairn/sessions/"), "{err}");
    assert!(err.lines().any(|line| line.starts_with("caused by: ")), "{err}");
    assert!(err.contains("Not a directory"), "the OS's own reason is kept: {err}");
    let last = err.lines().last().unwrap_or_default();
    assert!(last.contains("bug in cairn") && last.contains("`cairn --version`"), "{err}");
    assert!(last.contains(env!("CARGO_PKG_VERSION")), "{err}");
}

#[test]
fn not_a_repository_is_told_apart_from_a_repository_that_does_not_open() {
    let repo = TestRepo::new();
    let out = repo.cairn_in(&repo.home, &["sessions"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.starts_with("error: not inside a git repository"), "{err}");
    assert!(err.contains("hint: run `cairn init`"), "{err}");
    assert!(!err.contains("caused by"), "{err}");

    std::fs::write(repo.path(".git/config"), "[core\nbroken").unwrap();
    let out = repo.cairn(&["sessions"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "the user can repair a config: {err}");
    assert!(err.starts_with("error: cannot open the git repository at "), "{err}");
    assert!(err.contains("caused by: ") && err.contains("configuration"), "{err}");
    assert!(!err.contains("cairn init") && !err.contains("not inside"), "{err}");
}
