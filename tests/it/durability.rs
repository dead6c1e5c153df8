//! Durability as git's: `git gc --prune=now`, `git gc --aggressive` and `git repack -a -d`
//! between any two steps never leave a step naming a missing object, though the stat cache
//! remembers blob ids of scans no step recorded (unreachable, so pruned) and a running
//! session holds on to packs that gc deletes.

use serde_json::json;

use crate::support::TestRepo;
use crate::support::mock_model::{self, Reply};

/// Asserts `git fsck --strict` is clean and every blob of every commit under
/// `refs/cairn/` exists (`git ls-tree -r` + `git cat-file -e`); returns how many blobs.
pub fn assert_every_step_readable(repo: &TestRepo) -> usize {
    repo.assert_fsck_clean();
    let mut blobs = 0;
    for commit in repo.git(&["rev-list", "--glob=refs/cairn"]).lines() {
        for line in repo.git(&["ls-tree", "-r", commit]).lines() {
            let mut fields = line.split_whitespace();
            let (_, kind, id) = (fields.next(), fields.next(), fields.next().unwrap());
            if kind == Some("blob") {
                repo.git(&["cat-file", "-e", id]);
                blobs += 1;
            }
        }
    }
    blobs
}

pub fn blob_exists(repo: &TestRepo, id: &str) -> bool {
    let status = std::process::Command::new("git")
        .args(["cat-file", "-e", id])
        .current_dir(&repo.root)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", &repo.home)
        .status()
        .unwrap();
    status.success()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_between_the_steps_of_a_running_session_loses_nothing() {
    let repo = TestRepo::new();
    repo.write("keep.txt", "never changes\n");
    let shell = |id: &str, command: &str| {
        Reply::chat_tool_calls(&[(id, "shell", json!({"command": command}))])
    };
    let model = mock_model::start([
        Reply::chat_tool_calls(&[("w1", "write_file", json!({"path": "a.txt", "content": "1\n"}))]),
        shell("g1", "git gc --prune=now --quiet"),
        Reply::chat_tool_calls(&[("w2", "write_file", json!({"path": "b.txt", "content": "2\n"}))]),
        shell("g2", "git gc --prune=now --aggressive --quiet"),
        Reply::chat_tool_calls(&[(
            "e1",
            "edit_file",
            json!({"path": "a.txt", "old_string": "1", "new_string": "1 and more"}),
        )]),
        shell("g3", "git repack -a -d -q && printf 'x\\n' > c.txt"),
        Reply::chat_tool_calls(&[("w3", "write_file", json!({"path": "a.txt", "content": "1\n"}))]),
        Reply::chat_text("Done."),
    ])
    .await;
    repo.use_model(&model.base_url());
    // `git gc` writes `.git`, which the default sandbox keeps read-only.
    let out = crate::support::cairn(
        &repo,
        &["run", "work", "--approval", "auto", "--json", "--sandbox", "off"],
    )
    .await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let session = crate::support::session_of(&out);
    let tip = TestRepo::session_ref(&session);
    assert_eq!(repo.git(&["show", &format!("{tip}:a.txt")]), "1\n");
    assert_eq!(repo.git(&["show", &format!("{tip}:c.txt")]), "x\n");
    assert!(assert_every_step_readable(&repo) > 0);
}
