//! Sessions through a git remote: two clones and a bare repository on disk.

use serde_json::{Value, json};

use crate::support::TestRepo;
use crate::support::mock_model::{self, Reply};

fn remote_refs(a: &TestRepo, url: &str) -> String {
    a.git(&["ls-remote", url, "refs/cairn/*"])
}

fn session_id(repo: &TestRepo) -> String {
    repo.git(&["for-each-ref", "--format=%(refname:lstrip=3)", "refs/cairn/sessions"])
        .trim()
        .to_string()
}

async fn run(repo: &TestRepo, args: &[&str]) -> std::process::Output {
    let mut command = repo.command_in(&repo.root, args);
    tokio::task::spawn_blocking(move || command.output().unwrap()).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pushed_session_is_fetched_and_resumed_in_another_clone() {
    let a = TestRepo::new();
    let url = a.bare_remote();
    let model = mock_model::start([
        Reply::chat_tool_calls(&[(
            "c1",
            "write_file",
            json!({"path": "notes.md", "content": "from clone a\n"}),
        )]),
        Reply::chat_text("Wrote notes.md."),
    ])
    .await;
    a.use_model(&model.base_url());
    let out = run(&a, &["run", "write the notes", "--approval", "auto"]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let session = session_id(&a);

    let pushed = a.cairn(&["push"]);
    assert!(pushed.status.success(), "{}", String::from_utf8_lossy(&pushed.stderr));
    let said = String::from_utf8_lossy(&pushed.stderr);
    assert!(said.contains(&format!("{session}  3 steps (3 new)")), "{said}");
    assert!(remote_refs(&a, &url).contains(&format!("refs/cairn/sessions/{session}")));

    let b = TestRepo::clone_of(&url);
    let fetched = b.ok(&["fetch"]);
    assert!(fetched.contains(&format!("new        {session}")), "{fetched}");
    assert!(b.ok(&["sessions"]).contains(&session));

    model.push(Reply::chat_text("Continuing in clone b."));
    b.use_model(&model.base_url());
    let out = run(&b, &["resume", &session, "and now more", "--approval", "auto"]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(b.read("notes.md"), "from clone a\n", "the workspace of the tip");
    let sent = &model.requests()[2].body["messages"];
    let text = sent.to_string();
    assert!(text.contains("write the notes") && text.contains("and now more"), "{text}");
    assert!(sent.as_array().unwrap().iter().any(|m| m["role"] == "tool"));
    b.assert_fsck_clean();
}

#[test]
fn a_diverged_session_is_kept_on_both_sides() {
    let a = TestRepo::new();
    let url = a.bare_remote();
    let (session, _, _) = a.checkpoint(&["-m", "start", "--new"]);
    a.ok(&["push"]);
    let b = TestRepo::clone_of(&url);
    b.ok(&["fetch"]);
    // Rewinding to the tip changes nothing on disk and makes it b's current session.
    b.ok(&["rewind", &session]);
    b.write("b.txt", "b\n");
    b.checkpoint(&["-m", "b's step"]);
    a.write("a.txt", "a\n");
    a.checkpoint(&["-m", "a's step"]);
    a.ok(&["push"]);

    let before = b.git(&["rev-parse", &TestRepo::session_ref(&session)]);
    let fetched = b.ok(&["fetch", "origin"]);
    assert!(fetched.contains(&format!("diverged   {session}: kept yours")), "{fetched}");
    assert_eq!(b.git(&["rev-parse", &TestRepo::session_ref(&session)]), before);
    let theirs = b.git(&["rev-parse", &format!("refs/cairn/remotes/origin/sessions/{session}")]);
    assert_eq!(theirs, a.git(&["rev-parse", &TestRepo::session_ref(&session)]));
    let json: Value = serde_json::from_str(&b.ok(&["fetch", "--json"])).unwrap();
    assert_eq!(json["sessions"][0]["outcome"], "diverged");
}

#[test]
fn a_push_that_would_publish_a_private_key_is_refused_unless_forced() {
    let a = TestRepo::new();
    let url = a.bare_remote();
    a.write(
        "deploy/id_rsa",
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n-----END RSA PRIVATE KEY-----\n",
    );
    let (session, _, _) = a.checkpoint(&["-m", "oops", "--new"]);
    let out = a.cairn(&["push"]);
    assert_eq!(out.status.code(), Some(1));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("looks like a private key: deploy/id_rsa in step 1"), "{said}");
    assert!(said.contains("refusing to push"), "{said}");
    assert!(!remote_refs(&a, &url).contains("refs/cairn"), "nothing was pushed");

    a.ok(&["push", "origin", &session, "--force"]);
    assert!(remote_refs(&a, &url).contains(&format!("refs/cairn/sessions/{session}")));
}

#[test]
fn pushing_to_a_remote_that_does_not_exist_fails_clearly() {
    let a = TestRepo::new();
    a.checkpoint(&["-m", "one", "--new"]);
    let err = a.fails(&["push"]);
    assert!(err.contains("no remote named 'origin'"), "{err}");
    let err = a.fails(&["fetch", "upstream"]);
    assert!(err.contains("no remote named 'upstream'"), "{err}");
}

#[test]
fn git_bisect_run_finds_the_step_that_broke_a_test() {
    let repo = TestRepo::new();
    let mut commits = Vec::new();
    for (n, value) in ["1", "2", "broken", "broken too"].iter().enumerate() {
        repo.write("value.txt", &format!("{value}\n"));
        let args: &[&str] = if n == 0 { &["-m", "step", "--new"] } else { &["-m", "step"] };
        commits.push(repo.checkpoint(args).2);
    }
    // Bisect checks out whole commits; the file is in them, so not loose in the workspace.
    std::fs::remove_file(repo.path("value.txt")).unwrap();
    repo.git(&["bisect", "start", &commits[3], &commits[0]]);
    let out = repo.git(&["bisect", "run", "sh", "-c", "! grep -q broken value.txt"]);
    repo.git(&["bisect", "reset"]);
    assert!(out.contains(&format!("{} is the first bad commit", commits[2])), "{out}");
}

#[test]
fn project_memory_travels_with_push_memory_and_lands_under_the_remotes_name() {
    let a = TestRepo::new();
    let url = a.bare_remote();
    a.checkpoint(&["-m", "one", "--new"]);
    let err = a.fails(&["push", "--memory"]);
    assert!(err.contains("no project memory"), "{err}");

    // A stand-in for tier 3: any commit under refs/cairn/memory.
    let empty_tree = a.git(&["hash-object", "-t", "tree", "-w", "/dev/null"]);
    let memory = a.git(&["commit-tree", empty_tree.trim(), "-m", "memory"]).trim().to_string();
    a.git(&["update-ref", "refs/cairn/memory", &memory]);
    a.ok(&["push", "--memory"]);
    assert!(remote_refs(&a, &url).contains(&format!("{memory}\trefs/cairn/memory")));

    let b = TestRepo::clone_of(&url);
    let out = b.ok(&["fetch", "--no-merge"]);
    assert!(out.contains("memory     refs/cairn/remotes/origin/memory"), "{out}");
    assert_eq!(b.git(&["rev-parse", "refs/cairn/remotes/origin/memory"]).trim(), memory);
    assert!(b.git(&["for-each-ref", "refs/cairn/memory"]).is_empty(), "--no-merge leaves it aside");
    // Nor is it merged by default: a remote's memory is merged only when asked for.
    b.ok(&["fetch"]);
    assert!(b.git(&["for-each-ref", "refs/cairn/memory"]).is_empty(), "not merged by default");
    // Asked for, it is merged with a commit of its own, on top of the remote's history.
    let out = b.ok(&["fetch", "--merge-memory"]);
    assert!(out.contains("Merged memory from origin: 0 facts taken"), "{out}");
    assert_eq!(b.git(&["rev-parse", "refs/cairn/memory^"]).trim(), memory);
}

#[test]
fn a_rewound_session_pushes_over_what_this_clone_pushed_but_not_over_others_work() {
    let a = TestRepo::new();
    let url = a.bare_remote();
    let (session, _, first) = a.checkpoint(&["-m", "one", "--new"]);
    a.write("x.txt", "x\n");
    a.checkpoint(&["-m", "two"]);
    a.ok(&["push"]);
    a.ok(&["rewind", &format!("{session}@1")]);
    a.ok(&["push"]);
    let remote_tip = |repo: &TestRepo| {
        repo.git(&["ls-remote", &url, &TestRepo::session_ref(&session)])
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(remote_tip(&a), first, "the rewind reached the remote");

    // Another clone adds a step and pushes; a's stale view must not overwrite it.
    let b = TestRepo::clone_of(&url);
    b.ok(&["fetch"]);
    b.ok(&["rewind", &session]);
    b.write("b.txt", "b\n");
    let (_, _, b_tip) = b.checkpoint(&["-m", "b's step"]);
    b.ok(&["push"]);
    a.write("a.txt", "a\n");
    a.checkpoint(&["-m", "a's step"]);
    let out = a.cairn(&["push"]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(remote_tip(&a), b_tip, "b's step is still there");
}

#[test]
fn fetch_merges_facts_from_both_clones_and_keeps_both_versions_of_a_fact_changed_twice() {
    let a = TestRepo::new();
    let url = a.bare_remote();
    a.ok(&["memory", "add", "The shared fact says port 1"]);
    a.ok(&["push", "--memory", "--all"]);
    let b = TestRepo::clone_of(&url);
    b.ok(&["fetch", "--merge-memory"]);
    let shared = "facts/the-shared-fact-says-port-1.md";
    // Both sides change the shared fact and each adds one of its own.
    let edit_to = |repo: &TestRepo, port: &str| {
        let editor = repo.home.join("editor.sh");
        std::fs::write(&editor, format!("#!/bin/sh\nsed -i 's/port 1/port {port}/' \"$1\"\n"))
            .unwrap();
        std::process::Command::new("chmod").arg("+x").arg(&editor).status().unwrap();
        let mut command =
            repo.command_in(&repo.root, &["memory", "edit", "the-shared-fact-says-port-1"]);
        assert!(command.env("EDITOR", &editor).env_remove("VISUAL").status().unwrap().success());
    };
    edit_to(&a, "2");
    a.ok(&["memory", "add", "Only clone A knows this"]);
    a.ok(&["push", "--memory", "--all"]);
    edit_to(&b, "3");
    b.ok(&["memory", "add", "Only clone B knows this"]);

    let out = b.ok(&["fetch", "--merge-memory"]);
    assert!(out.contains("Merged memory from origin: 1 facts taken,"), "{out}");
    assert!(out.contains("Both sides changed the-shared-fact-says-port-1"), "{out}");
    let facts = b.git(&["ls-tree", "--name-only", "refs/cairn/memory:facts"]);
    assert_eq!(
        facts,
        "only-clone-a-knows-this.md\nonly-clone-b-knows-this.md\n\
         the-shared-fact-says-port-1.from-origin.md\nthe-shared-fact-says-port-1.md\n"
    );
    assert!(
        b.git(&["show", &format!("refs/cairn/memory:{shared}")]).contains("port 3"),
        "ours stays"
    );
    let theirs =
        b.git(&["show", "refs/cairn/memory:facts/the-shared-fact-says-port-1.from-origin.md"]);
    assert!(theirs.contains("port 2"), "{theirs}");
    // A merge commit with both histories, so `git log` shows where each fact came from.
    let parents = b.git(&["log", "-1", "--format=%P", "refs/cairn/memory"]);
    assert_eq!(parents.split_whitespace().count(), 2);
    assert!(
        b.git(&[
            "merge-base",
            "--is-ancestor",
            "refs/cairn/remotes/origin/memory",
            "refs/cairn/memory"
        ])
        .is_empty()
    );
    // Fetching again changes nothing.
    let again = b.ok(&["fetch", "--merge-memory"]);
    assert!(again.contains("up to date"), "{again}");
    b.assert_fsck_clean();
}

#[test]
fn memory_goes_with_every_push_when_the_configuration_says_so() {
    let a = TestRepo::new();
    let url = a.bare_remote();
    a.checkpoint(&["-m", "one", "--new"]);
    a.ok(&["memory", "add", "Pushed by configuration"]);
    a.ok(&["push"]);
    assert!(!remote_refs(&a, &url).contains("refs/cairn/memory"), "off by default");
    std::fs::write(a.home.join("cairn-config.toml"), "[memory]\npush = true\n").unwrap();
    a.ok(&["push"]);
    let memory = a.git(&["rev-parse", "refs/cairn/memory"]);
    assert!(remote_refs(&a, &url).contains(&format!("{}\trefs/cairn/memory", memory.trim())));
}

#[test]
fn a_fact_deleted_there_but_changed_here_is_kept_and_said() {
    let a = TestRepo::new();
    let url = a.bare_remote();
    a.ok(&["memory", "add", "Doomed fact says alpha"]);
    a.ok(&["push", "--memory", "--all"]);
    let b = TestRepo::clone_of(&url);
    b.ok(&["fetch", "--merge-memory"]);
    a.ok(&["memory", "forget", "doomed-fact-says-alpha"]);
    a.ok(&["memory", "add", "Unrelated fact from A"]);
    a.ok(&["push", "--memory", "--all"]);
    let editor = b.home.join("editor.sh");
    std::fs::write(&editor, "#!/bin/sh\nsed -i 's/alpha/beta/' \"$1\"\n").unwrap();
    std::process::Command::new("chmod").arg("+x").arg(&editor).status().unwrap();
    let mut command = b.command_in(&b.root, &["memory", "edit", "doomed-fact-says-alpha"]);
    assert!(command.env("EDITOR", &editor).env_remove("VISUAL").status().unwrap().success());

    let out = b.ok(&["fetch", "--merge-memory"]);
    assert!(
        out.contains("origin deleted doomed-fact-says-alpha, which changed here since: kept"),
        "{out}"
    );
    let facts = b.git(&["ls-tree", "--name-only", "refs/cairn/memory:facts"]);
    assert_eq!(facts, "doomed-fact-says-alpha.md\nunrelated-fact-from-a.md\n");
    assert!(b.git(&["show", "refs/cairn/memory:facts/doomed-fact-says-alpha.md"]).contains("beta"));
}

#[test]
fn a_fact_edited_to_hold_a_private_key_blocks_a_memory_push() {
    let a = TestRepo::new();
    let url = a.bare_remote();
    a.ok(&["memory", "add", "The deploy key lives in the vault"]);
    let key = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n-----END RSA PRIVATE KEY-----\n";
    // A hand edit goes through the memory writer, which redacts it.
    let editor = a.home.join("editor.sh");
    std::fs::write(
        &editor,
        format!("#!/bin/sh\nprintf -- '{}' >> \"$1\"\n", key.replace('\n', "\\n")),
    )
    .unwrap();
    std::process::Command::new("chmod").arg("+x").arg(&editor).status().unwrap();
    let mut command =
        a.command_in(&a.root, &["memory", "edit", "the-deploy-key-lives-in-the-vault"]);
    assert!(command.env("EDITOR", &editor).env_remove("VISUAL").status().unwrap().success());
    let path = "refs/cairn/memory:facts/the-deploy-key-lives-in-the-vault.md";
    assert!(a.git(&["show", path]).contains("[redacted private key]"));

    // A fact that reached memory around cairn (plain git) is caught by the push.
    let fact = a.home.join("fact.md");
    std::fs::write(&fact, a.git(&["show", path]) + key).unwrap();
    let blob = a.git(&["hash-object", "-w", fact.to_str().unwrap()]);
    let facts_tree =
        mktree(&a, &format!("100644 blob {}\tthe-deploy-key-lives-in-the-vault.md\n", blob.trim()));
    let index = a.git(&["rev-parse", "refs/cairn/memory:MEMORY.md"]);
    let root = mktree(
        &a,
        &format!("100644 blob {}\tMEMORY.md\n040000 tree {facts_tree}\tfacts\n", index.trim()),
    );
    let commit = a.git(&["commit-tree", &root, "-p", "refs/cairn/memory", "-m", "by hand"]);
    a.git(&["update-ref", "refs/cairn/memory", commit.trim()]);

    let out = a.cairn(&["push", "--memory"]);
    assert_eq!(out.status.code(), Some(1));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("looks like a private key: facts/the-deploy-key-lives-in-the-vault.md"),
        "{said}"
    );
    assert!(!remote_refs(&a, &url).contains("refs/cairn/memory"), "nothing was pushed");
}

/// `git mktree` of `listing` in `repo`.
fn mktree(repo: &TestRepo, listing: &str) -> String {
    let mut command = std::process::Command::new("git");
    command.arg("mktree").current_dir(&repo.root).env("GIT_CONFIG_NOSYSTEM", "1");
    command.stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped());
    let mut child = command.spawn().unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), listing.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}
