//! `cairn land`: one ordinary commit with the session's changes, or a clear refusal that
//! changes nothing.

use crate::support::TestRepo;

fn head(repo: &TestRepo) -> String {
    repo.git(&["rev-parse", "HEAD"]).trim().to_string()
}

#[test]
fn a_session_lands_as_one_commit_without_cairn_state() {
    let repo = TestRepo::new();
    repo.write("keep.txt", "keep\n");
    repo.git(&["add", "keep.txt"]);
    repo.git(&["commit", "-qm", "base"]);
    let base = head(&repo);
    repo.write("src/new.rs", "fn main() {}\n");
    let (session, _, _) = repo.checkpoint(&["-m", "add main", "--new"]);
    std::fs::remove_file(repo.path("keep.txt")).unwrap();
    repo.write("README.md", "hello, landed\n");
    let (_, _, tip) = repo.checkpoint(&["-m", "tidy"]);

    let out = repo.ok(&["land", "-m", "Add a main and tidy up"]);
    assert!(out.contains(&format!("Landed session {session} on main")), "{out}");
    let landed = head(&repo);
    assert_eq!(repo.git(&["rev-parse", "HEAD~1"]).trim(), base, "one commit on top of the base");
    let message = repo.git(&["log", "-1", "--format=%B"]);
    assert!(message.starts_with("Add a main and tidy up\n"), "{message}");
    assert!(message.contains("Co-authored-by: cairn ("), "{message}");
    assert!(message.contains(&format!("Cairn-Session: {session}")), "{message}");
    let files = repo.git(&["ls-tree", "-r", "--name-only", "HEAD"]);
    assert_eq!(files.lines().collect::<Vec<_>>(), ["README.md", "src/new.rs"]);
    assert_eq!(repo.git(&["diff", &tip, &landed, "--", ".", ":!.cairn"]), "", "the session's tree");
    assert_eq!(repo.git(&["status", "--porcelain"]), "", "index and workspace match the commit");
    assert_eq!(repo.git(&["diff-files", "--name-only"]), "", "the index's stat data is fresh");
    assert!(repo.git(&["reflog", "-1", "main"]).contains("commit (cairn land): Add a main"));
    repo.assert_fsck_clean();
}

#[test]
fn a_branch_that_moved_elsewhere_takes_the_session_on_top() {
    let repo = TestRepo::new();
    repo.write("a.txt", "a\n");
    repo.git(&["add", "a.txt"]);
    repo.git(&["commit", "-qm", "base"]);
    repo.write("a.txt", "a, by the session\n");
    let (session, _, _) = repo.checkpoint(&["-m", "edit a", "--new"]);
    // Meanwhile the user commits an unrelated file.
    repo.write("c.txt", "c\n");
    repo.git(&["add", "c.txt"]);
    repo.git(&["commit", "-qm", "user's own commit"]);
    let users = head(&repo);

    let out = repo.ok(&["land", &session]);
    assert!(out.contains("Landed"), "{out}");
    assert_eq!(repo.git(&["rev-parse", "HEAD~1"]).trim(), users);
    assert_eq!(repo.git(&["show", "HEAD:a.txt"]), "a, by the session\n");
    assert_eq!(repo.git(&["show", "HEAD:c.txt"]), "c\n");
    let message = repo.git(&["log", "-1", "--format=%B"]);
    assert!(message.contains("Landed from cairn session"), "a generated message: {message}");
    assert!(message.contains("M a.txt"), "{message}");
    assert_eq!(repo.git(&["status", "--porcelain"]), "");
}

#[test]
fn conflicts_and_unrecorded_changes_are_refused_and_change_nothing() {
    let repo = TestRepo::new();
    repo.write("a.txt", "a\n");
    repo.git(&["add", "a.txt"]);
    repo.git(&["commit", "-qm", "base"]);
    repo.write("a.txt", "the session's a\n");
    let (session, _, _) = repo.checkpoint(&["-m", "edit a", "--new"]);

    // An edit the session did not record.
    repo.write("stray.txt", "not the session's\n");
    let before = repo.user_state();
    let err = repo.fails(&["land"]);
    assert!(err.contains("not part of the session: stray.txt"), "{err}");
    assert_eq!(repo.user_state(), before);
    std::fs::remove_file(repo.path("stray.txt")).unwrap();

    // The branch changed the same file differently.
    repo.write("a.txt", "the user's a\n");
    repo.git(&["commit", "-qam", "user edits a"]);
    let before = repo.user_state();
    let err = repo.fails(&["land", &session]);
    assert!(err.contains("the branch and the session both changed a.txt"), "{err}");
    assert_eq!(repo.user_state(), before);

    repo.git(&["checkout", "-q", "--detach"]);
    let err = repo.fails(&["land", &session]);
    assert!(err.contains("HEAD is detached"), "{err}");
}

#[test]
fn edits_to_different_lines_of_one_file_merge() {
    let repo = TestRepo::new();
    repo.write("a.txt", "1\n2\n3\n4\n5\n");
    repo.git(&["add", "a.txt"]);
    repo.git(&["commit", "-qm", "base"]);
    repo.write("a.txt", "one (session)\n2\n3\n4\n5\n");
    let (session, _, _) = repo.checkpoint(&["-m", "edit line 1", "--new"]);
    // The user commits a change to line 5 (staged on its own), and keeps both on disk.
    repo.write("a.txt", "1\n2\n3\n4\nfive (user)\n");
    repo.git(&["commit", "-qam", "user edits line 5"]);
    repo.write("a.txt", "one (session)\n2\n3\n4\nfive (user)\n");

    repo.ok(&["land", &session, "-m", "land line 1"]);
    assert_eq!(repo.git(&["show", "HEAD:a.txt"]), "one (session)\n2\n3\n4\nfive (user)\n");
    assert_eq!(repo.git(&["status", "--porcelain"]), "");
    repo.assert_fsck_clean();
}

#[test]
fn staged_changes_that_are_not_the_sessions_are_never_overwritten() {
    let repo = TestRepo::new();
    repo.write("a.txt", "session\n");
    repo.checkpoint(&["-m", "add a", "--new"]);
    // Something else staged, while the workspace still holds the session's file.
    repo.write("a.txt", "staged by the user\n");
    repo.git(&["add", "a.txt"]);
    repo.write("a.txt", "session\n");
    let before = repo.user_state();
    let err = repo.fails(&["land"]);
    assert!(err.contains("staged changes"), "{err}");
    assert_eq!(repo.user_state(), before, "the index is as the user left it");

    repo.git(&["restore", "--staged", "a.txt"]);
    repo.ok(&["land"]);
    assert_eq!(repo.git(&["show", "HEAD:a.txt"]), "session\n");
}

/// A session whose model (`mock/scripted`) writes src/app.rs, then a checkpoint taken by
/// hand that adds a line to it. Returns the session.
async fn a_model_and_a_hand(repo: &TestRepo) -> String {
    use crate::support::mock_model::{self, Reply};
    let model = mock_model::start([
        Reply::chat_tool_calls(&[(
            "w1",
            "write_file",
            serde_json::json!({"path": "src/app.rs", "content": "fn a() {}\nfn b() {}\n"}),
        )]),
        Reply::chat_text("Wrote src/app.rs."),
    ])
    .await;
    repo.use_model(&model.base_url());
    let mut command = repo.command_in(&repo.root, &["run", "write the app", "--approval", "auto"]);
    let out = tokio::task::spawn_blocking(move || command.output().unwrap()).await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    repo.write("src/app.rs", "fn a() {}\nfn b() {}\nfn c() {}\n");
    let (session, _, _) = repo.checkpoint(&["-m", "add c by hand"]);
    session
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn landing_with_notes_attaches_an_agent_trace_record_that_git_reads() {
    let repo = TestRepo::new();
    let session = a_model_and_a_hand(&repo).await;
    let base = head(&repo);

    let out = repo.ok(&["land", "--notes"]);
    assert!(
        out.contains("Attached its Agent Trace record as a note on refs/notes/agent-trace"),
        "{out}"
    );
    let landed = head(&repo);
    assert_eq!(repo.git(&["rev-parse", "HEAD~1"]).trim(), base);
    let trailers = repo.git(&["log", "-1", "--format=%(trailers:key=Co-authored-by)"]);
    assert_eq!(trailers.trim(), "Co-authored-by: cairn (mock/scripted) <cairn@localhost>");
    // Plain git reads the note back, on the landed commit.
    let note = repo.git(&["notes", "--ref", "agent-trace", "show", "HEAD"]);
    let record: serde_json::Value = serde_json::from_str(&note).expect("the note is JSON");
    crate::blame::assert_follows_agent_trace_schema(&record);
    assert_eq!(record["vcs"]["type"], "git");
    assert_eq!(record["vcs"]["revision"], landed.as_str());
    let url = format!("cairn:session/{session}");
    assert_eq!(
        crate::blame::trace_ranges(&record, "src/app.rs"),
        [
            ("ai".into(), Some("mock/scripted".into()), Some(url.clone()), vec![(1, 2)]),
            ("unknown".into(), None, Some(url), vec![(3, 3)]),
        ],
        "the model's two lines, and the line a checkpoint by hand recorded"
    );
    let paths: Vec<&str> =
        record["files"].as_array().unwrap().iter().map(|f| f["path"].as_str().unwrap()).collect();
    assert_eq!(paths, ["src/app.rs"], "only what the commit changed: {record}");
    let list = repo.git(&["notes", "--ref", "agent-trace", "list"]);
    let annotated: Vec<&str> = list.lines().filter_map(|l| l.split_whitespace().nth(1)).collect();
    assert_eq!(annotated, [landed.as_str()], "one note, on the landed commit");
    assert_eq!(repo.git(&["rev-list", "--count", "refs/notes/agent-trace"]).trim(), "1");
    assert_eq!(repo.git(&["status", "--porcelain"]), "", "the note touched no file");
    repo.assert_fsck_clean();

    // A second session lands on a notes ref of its own, and --json shows the record.
    repo.write("b.txt", "b\n");
    repo.checkpoint(&["-m", "b", "--new"]);
    let out: serde_json::Value =
        serde_json::from_str(&repo.ok(&["land", "--notes", "--notes-ref", "review", "--json"]))
            .unwrap();
    assert_eq!(out["notes_ref"], "refs/notes/review");
    let note: serde_json::Value =
        serde_json::from_str(&repo.git(&["notes", "--ref", "review", "show", "HEAD"])).unwrap();
    assert_eq!(note, out["agent_trace"], "the note is the record --json printed");
    assert_eq!(crate::blame::trace_ranges(&note, "b.txt")[0].0, "unknown");
    assert_eq!(
        repo.git(&["rev-list", "--count", "refs/notes/agent-trace"]).trim(),
        "1",
        "untouched"
    );
    repo.assert_fsck_clean();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notes_ref_that_is_no_notes_ref_is_refused_before_anything_lands() {
    let repo = TestRepo::new();
    let session = a_model_and_a_hand(&repo).await;
    let tip = repo.git(&["rev-parse", &TestRepo::session_ref(&session)]);
    let unchanged = |repo: &TestRepo| {
        (repo.user_state(), repo.git(&["for-each-ref"]), repo.git(&["status", "--porcelain"]))
    };
    let before = unchanged(&repo);
    // Names that would move a branch, one of cairn's refs, or leave refs/.
    for hostile in
        ["refs/heads/main", "refs/cairn/sessions/x", "../../HEAD", "refs/notes/a..b", "refs/notes/"]
    {
        let out = repo.cairn(&["land", "--notes", "--notes-ref", hostile]);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{hostile}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stderr).contains("is not a notes ref"), "{hostile}");
        assert_eq!(unchanged(&repo), before, "{hostile} changed something");
    }
    // A notes ref that points to a blob (as a hostile fetch could leave it).
    let blob = repo.git(&["hash-object", "-w", "--stdin"]);
    repo.git(&["update-ref", "refs/notes/agent-trace", blob.trim()]);
    let before = unchanged(&repo);
    let err = repo.fails(&["land", "--notes"]);
    assert!(err.contains("refs/notes/agent-trace is not a notes ref"), "{err}");
    assert_eq!(unchanged(&repo), before, "nothing landed");
    assert_eq!(repo.git(&["rev-parse", &TestRepo::session_ref(&session)]), tip);
}

/// Pipes `input` to `git args` in `repo`.
fn git_stdin(repo: &TestRepo, args: &[&str], input: &[u8]) -> String {
    repo.git_stdin_in(&repo.root, args, input)
}

/// `commit`'s tree with `.cairn/session.toml` replaced by `toml`, built with plumbing only.
fn with_session_toml(repo: &TestRepo, commit: &str, toml: &str) -> String {
    let blob = git_stdin(repo, &["hash-object", "-w", "--stdin"], toml.as_bytes());
    let listing = |rev: &str| repo.git(&["ls-tree", rev]);
    let cairn = listing(&format!("{commit}:.cairn"))
        .lines()
        .map(|line| {
            if line.ends_with("\tsession.toml") {
                format!("100644 blob {blob}\tsession.toml")
            } else {
                line.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let cairn = git_stdin(repo, &["mktree"], format!("{cairn}\n").as_bytes());
    let root = listing(commit)
        .lines()
        .map(|line| {
            if line.ends_with("\t.cairn") {
                format!("040000 tree {cairn}\t.cairn")
            } else {
                line.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    git_stdin(repo, &["mktree"], format!("{root}\n").as_bytes())
}

/// A fetched `session.toml` is not the user's: its model and title must not forge trailers
/// on the commit that lands on the user's branch, and a secret in the title is redacted.
#[test]
fn a_forged_model_and_title_in_session_toml_cannot_add_trailers_to_the_landed_commit() {
    let repo = TestRepo::new();
    repo.write("src/new.rs", "fn main() {}\n");
    let (session, _, step) = repo.checkpoint(&["-m", "add main", "--new"]);
    let toml = repo.git(&["show", &format!("{step}:.cairn/session.toml")]);
    let forged: String = toml
        .lines()
        .filter(|line| !line.starts_with("model = ") && !line.starts_with("title = "))
        .map(|line| format!("{line}\n"))
        .collect();
    let key = "AKIAABCDEFGHIJKLMNOP";
    let forged = format!(
        "model = \"x) <a@b>\\nSigned-off-by: Victim <v@x>\"\n\
         title = \"Fix {key}\\n\\nSigned-off-by: Mallory <m@x>\\u001b[2J\"\n{forged}"
    );
    let tree = with_session_toml(&repo, &step, &forged);
    assert!(repo.git(&["show", &format!("{tree}:.cairn/session.toml")]).contains("Victim"));
    let message = repo.git(&["log", "-1", "--format=%B", &step]);
    let parents: Vec<String> = repo
        .git(&["log", "-1", "--format=%P", &step])
        .split_whitespace()
        .flat_map(|parent| ["-p".to_owned(), parent.to_owned()])
        .collect();
    let mut args = vec!["commit-tree", tree.as_str()];
    args.extend(parents.iter().map(String::as_str));
    let commit = git_stdin(&repo, &args, message.as_bytes());
    repo.git(&["update-ref", &TestRepo::session_ref(&session), &commit, &step]);

    let out = repo.ok(&["land"]);
    assert!(out.contains(&format!("Landed session {session} on main")), "{out}");
    let landed = repo.git(&["log", "-1", "--format=%B"]);
    let trailers = git_stdin(&repo, &["interpret-trailers", "--parse"], landed.as_bytes());
    assert_eq!(
        trailers.lines().collect::<Vec<_>>(),
        [
            "Co-authored-by: cairn (unknown model) <cairn@localhost>",
            &format!("Cairn-Session: {session}")
        ],
        "{landed}"
    );
    assert!(!landed.contains("Signed-off-by: Victim") && !landed.contains(key), "{landed}");
    assert!(landed.starts_with("Fix [redacted AWS access key id]"), "{landed}");
    assert!(!landed.contains('\u{1b}'), "{landed:?}");
    // The subject is one line: the forged title's trailer stays on it, not on a line of its own.
    assert!(!landed.lines().any(|line| line.starts_with("Signed-off-by")), "{landed}");
    repo.assert_fsck_clean();
}
