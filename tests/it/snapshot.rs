//! The snapshot engine through the library API: the stat cache's incremental behaviour
//! and the named-paths fast path, compared against full scans and the git CLI.

use std::path::PathBuf;

use cairn::checkpoint::{Changes, StepKind, StepRecord, Store, StoreOptions};

use crate::support::{TestRepo, age};

/// A repository of `dirs` × `files` aged files, so the racy guard does not apply.
fn aged_repo(dirs: usize, files: usize) -> TestRepo {
    let repo = TestRepo::new();
    repo.write(".gitignore", "build/\n");
    repo.write("build/out.o", "ignored\n");
    for d in 0..dirs {
        for f in 0..files {
            repo.write(&format!("d{d}/f{f}.txt"), &format!("dir {d} file {f}\n"));
        }
    }
    age_tree(&repo);
    repo
}

fn age_tree(repo: &TestRepo) {
    let mut stack = vec![repo.root.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.ends_with(".git") {
                continue;
            }
            if path.is_dir() {
                stack.push(path.clone());
            }
            age(&path);
        }
    }
    age(&repo.root);
}

fn store(repo: &TestRepo) -> Store {
    Store::discover(&repo.root, StoreOptions::default()).unwrap()
}

#[test]
fn an_unchanged_workspace_is_rescanned_without_reading_directories_or_files() {
    let repo = aged_repo(5, 4);
    let store = store(&repo);
    let first = store.snapshot().unwrap();
    assert_eq!(first.counts.files_hashed, 22, "README, .gitignore and 20 files");
    let second = store.snapshot().unwrap();
    assert_eq!(second.tree, first.tree);
    assert_eq!(second.counts.files_hashed, 0);
    assert_eq!(second.counts.dirs_listed, 0, "no readdir when nothing changed");
    assert_eq!(second.counts.trees_written, 0, "every tree id reused");
    assert_eq!(second.counts.files_reused, 22);
}

#[test]
fn a_change_is_found_and_only_its_path_rewritten() {
    let repo = aged_repo(5, 4);
    let store = store(&repo);
    store.snapshot().unwrap();
    repo.write("d3/f1.txt", "changed content\n");
    let snapshot = store.snapshot().unwrap();
    assert_eq!(snapshot.counts.files_hashed, 1);
    assert_eq!(snapshot.counts.trees_written, 2, "d3 and the root");
    let blob = repo.git(&["rev-parse", &format!("{}:d3/f1.txt", snapshot.tree)]);
    assert_eq!(repo.git(&["cat-file", "-p", blob.trim()]), "changed content\n");
}

#[test]
fn new_files_deletions_and_new_ignore_rules_are_seen() {
    let repo = aged_repo(3, 3);
    let store = store(&repo);
    store.snapshot().unwrap();
    repo.write("d1/new.txt", "new\n");
    std::fs::remove_file(repo.path("d2/f0.txt")).unwrap();
    repo.write("d0/.gitignore", "f1.txt\n");
    let tree = store.snapshot().unwrap().tree.to_string();
    let files = repo.tree_files(&tree);
    assert!(files.contains_key("d1/new.txt"));
    assert!(!files.contains_key("d2/f0.txt"));
    assert!(!files.contains_key("d0/f1.txt"), "a new .gitignore hides what it ignores");
    assert!(files.contains_key("d0/.gitignore") && files.contains_key("d0/f0.txt"));
    // Tracked files stay in the snapshot even when ignored, as in git.
    repo.git(&["add", "-f", "build/out.o"]);
    let tree = store.snapshot().unwrap().tree.to_string();
    assert!(repo.tree_files(&tree).contains_key("build/out.o"));
}

#[test]
fn the_first_snapshot_matches_git_add_all() {
    let repo = aged_repo(4, 5);
    std::os::unix::fs::symlink("d0/f0.txt", repo.path("link")).unwrap();
    let ours = store(&repo).snapshot().unwrap().tree.to_string();
    // git's own answer, through a throwaway index.
    let index = repo.home.join("scratch-index");
    let git = |args: &[&str]| {
        let out = std::process::Command::new("git")
            .args(args)
            .current_dir(&repo.root)
            .env("GIT_INDEX_FILE", &index)
            .env("HOME", &repo.home)
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    };
    git(&["add", "-A"]);
    let theirs = git(&["write-tree"]);
    assert_eq!(ours, theirs.trim(), "the same tree id as git would write");
}

#[test]
fn named_paths_give_the_same_tree_as_a_full_scan() {
    let repo = aged_repo(4, 4);
    let store = store(&repo);
    let mut session = store.start_session("fast path", None, None).unwrap();
    store
        .record_step(&mut session, StepRecord::new(StepKind::Prompt, "start", Changes::Scan))
        .unwrap();

    repo.write("d1/f1.txt", "edited\n");
    repo.write("d9/brand/new.txt", "created in a new directory\n");
    std::fs::remove_file(repo.path("d2/f2.txt")).unwrap();
    repo.write("build/ignored.txt", "an ignored path named by the agent\n");
    let named = ["d1/f1.txt", "d9/brand/new.txt", "d2/f2.txt", "build/ignored.txt"]
        .map(PathBuf::from)
        .to_vec();
    let fast = store
        .record_step(&mut session, StepRecord::new(StepKind::Tool, "edit", Changes::Paths(named)))
        .unwrap();
    let full = store
        .record_step(&mut session, StepRecord::new(StepKind::Manual, "scan", Changes::Scan))
        .unwrap();

    let fast_files = repo.tree_files(&fast.commit.to_string());
    assert_eq!(fast_files, repo.tree_files(&full.commit.to_string()));
    assert!(!fast_files.contains_key("build/ignored.txt"));
    assert!(fast_files.contains_key("d9/brand/new.txt"));
}

#[test]
fn named_paths_outside_the_workspace_are_refused_and_record_nothing() {
    let repo = aged_repo(1, 1);
    let store = store(&repo);
    let mut session = store.start_session("escape", None, None).unwrap();
    store
        .record_step(&mut session, StepRecord::new(StepKind::Prompt, "start", Changes::Scan))
        .unwrap();
    let tip = session.tip;
    for bad in
        ["../outside.txt", "/etc/passwd", ".git/config", ".cairn/state/step.json", "a/../../b"]
    {
        let record =
            StepRecord::new(StepKind::Tool, "bad", Changes::Paths(vec![PathBuf::from(bad)]));
        let err = store.record_step(&mut session, record).unwrap_err();
        assert!(err.to_string().contains("invalid path"), "{bad}: {err}");
        assert_eq!(session.tip, tip);
    }
    let name = format!("refs/cairn/sessions/{}", session.info.id);
    assert_eq!(repo.git(&["rev-parse", &name]).trim(), tip.unwrap().to_string());
}

#[test]
fn conversation_and_state_round_trip_append_only() {
    let repo = aged_repo(1, 1);
    let store = store(&repo);
    let mut session = store.start_session("state", Some("local/model".into()), None).unwrap();
    let mut first = StepRecord::new(StepKind::Prompt, "prompt: fix it", Changes::Scan);
    first.messages = vec![serde_json::json!({"role": "user", "content": "fix it"})];
    let one = store.record_step(&mut session, first).unwrap();
    let mut second = StepRecord::new(StepKind::Model, "model: reply", Changes::Unchanged);
    second.messages = vec![serde_json::json!({"role": "assistant", "content": "done"})];
    second.details.insert("usage".into(), serde_json::json!({"input": 10, "output": 2}));
    second.tools = vec!["edit_file".into()];
    let two = store.record_step(&mut session, second).unwrap();

    let state = store.read_state(two.commit).unwrap();
    assert_eq!(state.messages.len(), 2);
    assert_eq!(state.messages[1]["content"], "done");
    assert_eq!(state.step["usage"]["input"], 10);
    assert_eq!(state.session.model.as_deref(), Some("local/model"));
    // The first message's blob is shared, not rewritten.
    let path = |c: &str| format!("{c}:.cairn/state/messages/000001-user.json");
    assert_eq!(
        repo.git(&["rev-parse", &path(&one.commit.to_string())]),
        repo.git(&["rev-parse", &path(&two.commit.to_string())])
    );
    let message = repo.git(&["log", "-1", "--format=%B", &two.commit.to_string()]);
    assert!(
        message.contains("Cairn-Tools: edit_file") && message.contains("Cairn-Model: local/model"),
        "{message}"
    );
    assert_eq!(
        repo.git(&["log", "-1", "--format=%an", &two.commit.to_string()]).trim(),
        "cairn (local/model)"
    );
    // Reopening the session continues the numbering.
    let mut reopened = store.open_session(&session.info.id).unwrap();
    assert_eq!(reopened.steps, 2);
    let three = store
        .record_step(&mut reopened, StepRecord::new(StepKind::Manual, "more", Changes::Unchanged))
        .unwrap();
    assert_eq!(three.number, 3);
}

/// `git count-objects -v` as (loose objects, packs).
fn object_files(repo: &TestRepo) -> (u64, u64) {
    let out = repo.git(&["count-objects", "-v"]);
    let field = |name: &str| -> u64 {
        out.lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {out}"))
    };
    (field("count:"), field("packs:"))
}

#[test]
fn each_step_is_written_as_one_pack_and_no_loose_objects() {
    let repo = aged_repo(3, 3);
    let store = store(&repo);
    let mut session = store.start_session("packs", None, None).unwrap();
    let (loose, packs_before) = object_files(&repo);
    store
        .record_step(&mut session, StepRecord::new(StepKind::Prompt, "start", Changes::Scan))
        .unwrap();
    assert_eq!(object_files(&repo), (loose, packs_before + 1), "a scanned step: one pack");

    repo.write("d0/f0.txt", "changed\n");
    repo.write("d2/new.txt", "new\n");
    let paths = vec![PathBuf::from("d0/f0.txt"), PathBuf::from("d2/new.txt")];
    store
        .record_step(&mut session, StepRecord::new(StepKind::Tool, "edit", Changes::Paths(paths)))
        .unwrap();
    assert_eq!(object_files(&repo), (loose, packs_before + 2), "a named-paths step: one pack");

    // A snapshot with nothing new to write adds no pack at all.
    store.snapshot().unwrap();
    let (_, packs) = object_files(&repo);
    store.snapshot().unwrap();
    assert_eq!(object_files(&repo), (loose, packs));
    repo.assert_fsck_clean();
    let tip = TestRepo::session_ref(&session.info.id);
    assert_eq!(repo.git(&["show", &format!("{tip}:d2/new.txt")]), "new\n");
}

#[test]
fn a_large_first_snapshot_is_written_in_several_bounded_packs() {
    let repo = TestRepo::new();
    // 40 MiB of new content: more than one scan may buffer before writing a pack.
    let mebibyte: String = (0..(1 << 20) / 64).map(|i| format!("{i:063}\n")).collect();
    for n in 0..40 {
        repo.write(&format!("big/{n:02}.txt"), &format!("file {n}\n{mebibyte}"));
    }
    let (loose_before, _) = object_files(&repo);
    let snapshot = store(&repo).snapshot().unwrap();
    let (loose, packs) = object_files(&repo);
    assert_eq!(loose, loose_before, "no loose objects");
    assert!(packs >= 2, "expected the scan to write as it went, got {packs} pack(s)");
    repo.assert_fsck_clean();
    let listed = repo.git(&["ls-tree", "-r", "--name-only", &snapshot.tree.to_string()]);
    assert_eq!(listed.lines().filter(|l| l.starts_with("big/")).count(), 40);
}

#[test]
fn small_packs_are_merged_so_their_number_stays_bounded() {
    let repo = aged_repo(2, 2);
    // The user's own pack, which cairn must leave alone.
    repo.git(&["repack", "-adq"]);
    let user_packs: Vec<PathBuf> = std::fs::read_dir(repo.path(".git/objects/pack"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    assert!(!user_packs.is_empty());
    let mut store = store(&repo);
    let mut session = store.start_session("many steps", None, None).unwrap();
    let mut most_packs = 0;
    for step in 0..40 {
        if step % 10 == 0 {
            // A new process finds what the last one left.
            store = self::store(&repo);
        }
        repo.write("d0/f0.txt", &format!("version {step}\n"));
        let record = StepRecord::new(
            StepKind::Tool,
            format!("edit {step}"),
            Changes::Paths(vec![PathBuf::from("d0/f0.txt")]),
        );
        store.record_step(&mut session, record).unwrap();
        most_packs = most_packs.max(object_files(&repo).1);
    }
    assert!(
        most_packs <= cairn::git::objects::MAX_SMALL_PACKS as u64 + 1,
        "{most_packs} packs at once"
    );
    for pack in &user_packs {
        assert!(pack.exists(), "{} was removed", pack.display());
    }
    repo.assert_fsck_clean();
    // Every step is still whole, as git reads it.
    let tip = TestRepo::session_ref(&session.info.id);
    for back in 0..40 {
        let content = repo.git(&["show", &format!("{tip}~{back}:d0/f0.txt")]);
        assert_eq!(content, format!("version {}\n", 39 - back));
    }
}

#[test]
fn a_first_snapshot_takes_blob_ids_from_the_users_index() {
    let repo = TestRepo::empty();
    for n in 0..30 {
        repo.write(&format!("src/f{n}.txt"), &format!("file {n}\n"));
    }
    age_tree(&repo);
    // Staged after aging: the index's stat matches the files, which are older than it.
    repo.git(&["add", "-A"]);
    let snapshot = store(&repo).snapshot().unwrap();
    assert_eq!(snapshot.counts.files_hashed, 0, "every id came from the index");
    assert_eq!(snapshot.counts.files_reused, 30);
    let git_tree = repo.git(&["write-tree"]);
    assert_eq!(snapshot.tree.to_string(), git_tree.trim());
}

/// A change to one file appends its directories' records to the stat cache's journal, not
/// a new cache; a torn or garbled journal is ignored (its files are read again) and the
/// next snapshot writes the cache anew. Every tree matches the files, as git reads them.
#[test]
fn a_small_change_goes_to_the_stat_cache_journal_and_a_damaged_journal_is_ignored() {
    let repo = aged_repo(5, 4);
    let store = store(&repo);
    store.snapshot().unwrap();
    let cache_dir = repo.root.join(".git/cairn/worktrees/main");
    let base_path = cache_dir.join("stat-cache");
    let journal = cache_dir.join("stat-cache.log");
    let base = std::fs::read(&base_path).unwrap();
    assert!(!journal.exists());
    let file_in = |tree: gix::ObjectId, path: &str| repo.git(&["show", &format!("{tree}:{path}")]);

    repo.write("d1/f1.txt", "changed once\n");
    age(&repo.path("d1/f1.txt"));
    let changed = store.snapshot().unwrap();
    assert_eq!(changed.counts.files_hashed, 1);
    assert_eq!(std::fs::read(&base_path).unwrap(), base, "one change rewrote the whole cache");
    let appended = std::fs::read(&journal).unwrap();
    assert!(!appended.is_empty() && appended.len() < base.len(), "{} bytes", appended.len());
    let again = store.snapshot().unwrap();
    assert_eq!(
        (again.tree, again.counts.files_hashed),
        (changed.tree, 0),
        "the journal was not read"
    );

    for damaged in [&appended[..appended.len() - 3], b"no journal at all".as_slice()] {
        std::fs::write(&journal, damaged).unwrap();
        let rescanned = store.snapshot().unwrap();
        assert_eq!(rescanned.tree, changed.tree);
        assert_eq!(rescanned.counts.files_hashed, 1, "the damaged record was trusted");
        assert!(!journal.exists(), "appended after damaged bytes");
        assert_ne!(std::fs::read(&base_path).unwrap(), base, "the cache was not written anew");
        // Back to the first cache with its journal, for the next round.
        std::fs::write(&base_path, &base).unwrap();
    }
    std::fs::remove_file(&base_path).unwrap();
    repo.write("d2/f2.txt", "changed too\n");
    age(&repo.path("d2/f2.txt"));
    let last = store.snapshot().unwrap();
    assert_eq!(file_in(last.tree, "d1/f1.txt"), "changed once\n");
    assert_eq!(file_in(last.tree, "d2/f2.txt"), "changed too\n");
    assert_eq!(file_in(last.tree, "d3/f3.txt"), "dir 3 file 3\n");
}

/// Listing a directory again (a new file in it) takes what the last listing found of the
/// ignored names beside it while the index is unchanged: it does not read the index, whose
/// decoding at 200,000 files costs 16 MiB. An index that changed is read again.
#[test]
fn listing_a_directory_again_asks_the_index_only_for_ignored_names_it_has_not_seen() {
    let repo = aged_repo(2, 2);
    repo.write(".gitignore", "build/\ncache/\n");
    repo.write("build/kept.o", "tracked though ignored\n");
    repo.write("cache/tmp.bin", "untracked and ignored\n");
    repo.git(&["add", "-f", "build/kept.o"]);
    age_tree(&repo);
    let store = store(&repo);
    let files =
        |tree: gix::ObjectId| repo.git(&["ls-tree", "-r", "--name-only", &tree.to_string()]);
    let first = store.snapshot().unwrap();
    assert!(first.counts.index_read, "the first listing must ask the index");
    assert!(files(first.tree).contains("build/kept.o"));
    assert!(!files(first.tree).contains("cache/"));

    // A new directory changes the root's listing and brings no file to hash (a new file
    // would: in a repository this small, its blob id is looked up in the index).
    std::fs::create_dir(repo.path("empty")).unwrap();
    age(&repo.root);
    let second = store.snapshot().unwrap();
    assert!(second.counts.dirs_listed >= 1, "the root was not listed again");
    assert!(!second.counts.index_read, "the index was read to list the root again");
    assert_eq!(second.tree, first.tree);

    repo.git(&["add", "-f", "cache/tmp.bin"]);
    let third = store.snapshot().unwrap();
    assert!(third.counts.index_read, "a changed index was not read");
    assert!(files(third.tree).contains("cache/tmp.bin"), "a newly tracked ignored file is missing");
}

#[test]
fn a_check_for_user_edits_that_finds_none_keeps_its_scan_for_the_next_one() {
    let repo = aged_repo(5, 4);
    let store = store(&repo);
    let mut session = store.start_session("unchanged checks", None, None).unwrap();
    store
        .record_step(&mut session, StepRecord::new(StepKind::Prompt, "start", Changes::Scan))
        .unwrap();
    // The agent's edits are recorded by name, which leaves the stat cache as it was.
    for f in 0..3 {
        repo.write(&format!("d3/f{f}.txt"), &format!("edited by the agent {f}\n"));
        age(&repo.path(&format!("d3/f{f}.txt")));
    }
    age(&repo.path("d3"));
    let named = (0..3).map(|f| PathBuf::from(format!("d3/f{f}.txt"))).collect();
    store
        .record_step(&mut session, StepRecord::new(StepKind::Tool, "edit", Changes::Paths(named)))
        .unwrap();
    let tip = session.tip;
    let objects = object_files(&repo);

    let recorded = store.record_user_edits(&mut session, Changes::Scan).unwrap();
    assert!(recorded.is_none(), "the workspace is as the agent's step recorded it");
    assert_eq!(session.tip, tip);
    // The step holds the workspace tree the check built: it writes no pack of its own.
    assert_eq!(object_files(&repo), objects, "an unchanged check wrote objects");
    let next = store.snapshot().unwrap();
    assert_eq!(next.counts.files_hashed, 0, "the check's scan was kept, nothing read again");
    assert_eq!(next.counts.dirs_listed, 0);
    let recorded = repo.git(&["show", &format!("{}:d3/f2.txt", session.tip.unwrap())]);
    assert_eq!(recorded, "edited by the agent 2\n");
}
