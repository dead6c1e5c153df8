//! One test per fixed bug, named after the bug as a user met it (ripgrep's
//! `tests/regression.rs`): when a bug is fixed, its test goes here, so the list reads as the
//! history of what went wrong and stays fixed.

use crate::durability;
use crate::support::mock_model::{self, Reply};
use crate::support::{TestRepo, age};

/// `cairn run` titled a session with its raw prompt, so a key pasted into the prompt was
/// stored in `session.toml` (and pushed with it) though the transcript redacted it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_title_kept_the_raw_prompt_with_its_secrets() {
    let repo = TestRepo::new();
    let model = mock_model::start([Reply::chat_text("Done.")]).await;
    repo.use_model(&model.base_url());
    let key = format!("sk-ant-{}", "a1B2c3D4".repeat(4));
    let prompt = format!("use  {key} for the\nrelease script");
    let out = crate::support::cairn(&repo, &["run", &prompt, "--json"]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let session = crate::support::session_of(&out);
    let toml =
        repo.git(&["show", &format!("{}:.cairn/session.toml", TestRepo::session_ref(&session))]);
    assert!(!toml.contains(&key), "the key is in session.toml: {toml}");
    assert!(toml.contains("title = \"use [redacted Anthropic API key] for the\""), "{toml}");
}

/// `git gc --prune=now` between two checkpoints deleted a blob that the stat cache still
/// named, and the next step recorded a tree naming the missing object.
#[test]
fn git_gc_prune_between_checkpoints_left_a_step_naming_a_missing_object() {
    let repo = TestRepo::new();
    repo.write("keep.txt", "never changes\n");
    repo.write("deep/er/still.txt", "never changes either\n");
    repo.write("change.txt", "version 0\n");
    for path in ["keep.txt", "deep/er/still.txt", "change.txt", "deep/er", "deep", "."] {
        age(&repo.path(path));
    }
    let (_, _, first) = repo.checkpoint(&[]);
    let kept = repo.git(&["rev-parse", &format!("{first}:keep.txt")]);

    let maintenance: [&[&str]; 4] = [
        &["gc", "--prune=now", "--quiet"],
        &["gc", "--prune=now", "--aggressive", "--quiet"],
        &["repack", "-a", "-d", "-q"],
        &["gc", "--prune=now", "--quiet"],
    ];
    for (round, command) in maintenance.iter().enumerate() {
        let content = format!("version {}\n", round + 1);
        repo.write("change.txt", &content);
        age(&repo.path("change.txt"));
        // A snapshot no step records: its blob is unreachable, yet the stat cache names it.
        repo.ok(&["diff", "--stat"]);
        let unreferenced = repo.git(&["hash-object", "change.txt"]);
        repo.git(command);
        // Each of them deletes it (`repack -a -d` drops what no ref reaches).
        assert!(!durability::blob_exists(&repo, unreferenced.trim()), "round {round}: {command:?}");

        let (_, _, commit) = repo.checkpoint(&["-m", &format!("round {round}")]);
        assert_eq!(repo.git(&["show", &format!("{commit}:change.txt")]), content);
        assert_eq!(repo.git(&["rev-parse", &format!("{commit}:keep.txt")]), kept);
        durability::assert_every_step_readable(&repo);
    }
    // And once more with nothing changed, after a last prune: every id comes from the cache.
    repo.git(&["gc", "--prune=now", "--quiet"]);
    repo.checkpoint(&["-m", "unchanged"]);
    assert!(durability::assert_every_step_readable(&repo) > 0);
}
