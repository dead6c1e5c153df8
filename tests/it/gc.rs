//! `cairn gc`: old archive refs, stale caches and crash leftovers go; sessions, recent
//! archives and everything of the user's stay.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::support::{TestRepo, age};

/// A session of three steps, rewound once (so one archive ref exists, made just now).
fn rewound_session(repo: &TestRepo) -> (String, String) {
    let (session, _, first) = repo.checkpoint(&["-m", "one", "--new"]);
    repo.write("a.txt", "a\n");
    repo.checkpoint(&["-m", "two"]);
    repo.write("a.txt", "b\n");
    repo.checkpoint(&["-m", "three"]);
    repo.ok(&["rewind", &format!("{session}@1")]);
    (session, first)
}

fn cairn_refs(repo: &TestRepo) -> String {
    repo.git(&["for-each-ref", "--format=%(refname) %(objectname)", "refs/cairn"])
}

#[test]
fn old_archives_go_and_sessions_and_recent_archives_stay() {
    let repo = TestRepo::new();
    let (session, first) = rewound_session(&repo);
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let old = format!("refs/cairn/archive/{session}/{}", now - 40 * 86_400);
    repo.git(&["update-ref", &old, &first]);
    let before = cairn_refs(&repo);
    let user = repo.user_state();

    let out = repo.ok(&["gc"]);
    assert!(out.contains(&format!("Removed {old} (40 days old")), "{out}");
    let after = cairn_refs(&repo);
    assert!(!after.contains(&old));
    let kept: Vec<&str> = before.lines().filter(|line| !line.starts_with(&old)).collect();
    assert_eq!(after.lines().collect::<Vec<_>>(), kept, "sessions and recent archives stay");
    assert!(after.contains(&TestRepo::session_ref(&session)));
    assert_eq!(repo.user_state(), user);
    repo.assert_fsck_clean();

    // A shorter window takes the recent archive too; a dry run only says so.
    let dry = repo.ok(&["gc", "--keep", "0s", "--dry-run"]);
    assert!(dry.contains(&format!("Would remove refs/cairn/archive/{session}/")), "{dry}");
    assert_eq!(cairn_refs(&repo), after);
    repo.ok(&["gc", "--keep", "0s"]);
    assert_eq!(
        cairn_refs(&repo).trim(),
        format!("{} {first}", TestRepo::session_ref(&session)),
        "only the session is left"
    );
}

#[test]
fn a_window_that_is_not_a_duration_is_refused_and_changes_nothing() {
    let repo = TestRepo::new();
    rewound_session(&repo);
    let before = cairn_refs(&repo);
    for bad in ["banana", "-5d", ""] {
        let out = repo.cairn(&["gc", &format!("--keep={bad}")]);
        assert_eq!(out.status.code(), Some(2), "--keep {bad:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("--keep"), "{stderr}");
    }
    assert_eq!(cairn_refs(&repo), before);
}

#[test]
fn stale_caches_and_crash_leftovers_go_and_fresh_files_stay() {
    let repo = TestRepo::new();
    rewound_session(&repo);
    let private = repo.path(".git/cairn");
    let ghost = private.join("worktrees/linked-ghost");
    std::fs::create_dir_all(&ghost).unwrap();
    std::fs::write(ghost.join("stat-cache"), "old").unwrap();
    let leftovers = [private.join(".tmpA1b2C3"), repo.path(".git/objects/pack/.tmpXyZ123")];
    for path in &leftovers {
        std::fs::write(path, "half written").unwrap();
        age(path);
    }
    let fresh = private.join(".tmpNow000");
    std::fs::write(&fresh, "in use").unwrap();

    let out = repo.ok(&["gc"]);
    assert!(!ghost.exists(), "{out}");
    for path in &leftovers {
        assert!(!path.exists(), "{} is still there: {out}", path.display());
    }
    assert!(fresh.exists(), "a temporary file younger than an hour may be in use");
    assert!(repo.path(".git/cairn/worktrees/main").exists(), "the live worktree's cache stays");
}

#[test]
fn cairns_packs_are_merged_and_every_step_still_reads() {
    let repo = TestRepo::new();
    let (session, _, _) = repo.checkpoint(&["-m", "start", "--new"]);
    for n in 0..5 {
        repo.write("counter.txt", &format!("{n}\n"));
        repo.checkpoint(&["-m", &format!("count {n}")]);
    }
    let packs = || {
        std::fs::read_dir(repo.path(".git/objects/pack"))
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "pack"))
            .count()
    };
    assert_eq!(packs(), 6, "one pack per step");
    let out = repo.ok(&["gc"]);
    assert!(out.contains("Merged 6 of cairn's packs into one."), "{out}");
    assert_eq!(packs(), 1);
    repo.assert_fsck_clean();
    let tip = TestRepo::session_ref(&session);
    for n in 0..5 {
        assert_eq!(repo.git(&["show", &format!("{tip}~{}:counter.txt", 4 - n)]), format!("{n}\n"));
    }
    assert_eq!(repo.ok(&["gc"]).trim(), "Nothing to remove.");
}

/// Merging copies entries as they are stored, so it checks each against the CRC-32 its
/// index holds: one flipped byte in a pack fails `cairn gc`, naming the pack, and every
/// pack stays as it was.
#[test]
fn a_pack_whose_bytes_do_not_match_its_index_is_not_merged_and_nothing_is_removed() {
    let repo = TestRepo::new();
    repo.checkpoint(&["-m", "start", "--new"]);
    for n in 0..3 {
        repo.write("counter.txt", &format!("{n}\n"));
        repo.checkpoint(&["-m", &format!("count {n}")]);
    }
    let pack_dir = repo.path(".git/objects/pack");
    let mut packs: Vec<_> = std::fs::read_dir(&pack_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "pack"))
        .collect();
    packs.sort();
    let damaged = &packs[1];
    let mut bytes = std::fs::read(damaged).unwrap();
    // The last byte of the last entry, just before the pack's trailing checksum.
    let at = bytes.len() - 21;
    bytes[at] ^= 0x40;
    std::fs::write(damaged, &bytes).unwrap();
    let object_dir = || {
        let mut files: Vec<_> = std::fs::read_dir(&pack_dir)
            .unwrap()
            .map(|e| {
                let path = e.unwrap().path();
                (path.clone(), std::fs::read(&path).unwrap())
            })
            .collect();
        files.sort();
        files
    };
    let before = (object_dir(), std::fs::read(repo.path(".git/cairn/packs")).unwrap());
    let refs = cairn_refs(&repo);

    let err = repo.fails(&["gc"]);
    let name = damaged.file_name().unwrap().to_str().unwrap();
    assert!(err.contains(name), "{err}");
    assert!(err.contains("does not match the CRC-32 its index holds"), "{err}");
    assert!(err.contains("hint: no pack was changed or removed"), "{err}");
    assert_eq!((object_dir(), std::fs::read(repo.path(".git/cairn/packs")).unwrap()), before);
    assert_eq!(cairn_refs(&repo), refs);
}
