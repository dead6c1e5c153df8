//! Hostile sessions, made the way an attacker would: raw tree objects (`git hash-object
//! -t tree --literally` with hand-built bytes, for names git's porcelain refuses) wrapped
//! as a cairn step with the right trailers and a real step's `.cairn/`, pushed to a bare
//! remote. A victim clone's `cairn fetch` must reject each into quarantine, and each must
//! also be refused by `rewind`, `resume`, `resume --fork` and `land` when it arrives
//! another way (plain `git fetch`), leaving the workspace, `.git` and the refs exactly
//! as they were. The real `git` CLI is the independent reader throughout.

use std::collections::BTreeMap;
use std::os::unix::ffi::OsStrExt as _;
use std::path::Path;
use std::process::Command;

use crate::support::TestRepo;

/// A tree entry to craft: anything git's object format can hold.
#[derive(Clone)]
enum Node {
    File(&'static str),
    Exec(&'static str),
    Link(String),
    Dir(Vec<(Vec<u8>, Node)>),
    /// A gitlink to this commit id.
    Gitlink(&'static str),
    /// A blob under a mode git never writes.
    Mode(&'static str, &'static str),
    /// A tree object whose bytes stop in the middle of an entry.
    Truncated,
}

fn dir(entries: Vec<(&[u8], Node)>) -> Node {
    Node::Dir(entries.into_iter().map(|(name, node)| (name.to_vec(), node)).collect())
}

/// The hook a planted `.git/hooks/post-checkout` would be: it leaves a marker beside the
/// workspace if it ever runs.
const HOOK: &str = "#!/bin/sh\ntouch ../PWNED\n";

/// `git` with bytes on stdin, in `dir`; returns stdout trimmed.
fn git_stdin(repo: &TestRepo, dir: &Path, args: &[&str], input: &[u8]) -> String {
    repo.git_stdin_in(dir, args, input)
}

fn hex_to_bytes(hex: &str) -> Vec<u8> {
    (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect()
}

/// Writes `node` into `repo`'s object store; returns (mode, id) and collects every
/// object id written in `made`.
fn write_node(repo: &TestRepo, node: &Node, made: &mut Vec<String>) -> (String, String) {
    let blob =
        |content: &[u8]| git_stdin(repo, &repo.root, &["hash-object", "-w", "--stdin"], content);
    let (mode, id) = match node {
        Node::File(content) => ("100644".to_string(), blob(content.as_bytes())),
        Node::Exec(content) => ("100755".to_string(), blob(content.as_bytes())),
        Node::Link(target) => ("120000".to_string(), blob(target.as_bytes())),
        Node::Mode(mode, content) => (mode.to_string(), blob(content.as_bytes())),
        Node::Gitlink(commit) => return ("160000".to_string(), commit.to_string()),
        Node::Truncated => {
            let file = blob(b"cut short\n");
            let mut bytes = b"100644 file\0".to_vec();
            bytes.extend_from_slice(&hex_to_bytes(&file)[..7]);
            ("40000".to_string(), raw_tree(repo, &bytes))
        }
        Node::Dir(entries) => {
            let mut written: Vec<(Vec<u8>, String, String)> = entries
                .iter()
                .map(|(name, node)| {
                    let (mode, id) = write_node(repo, node, made);
                    (name.clone(), mode, id)
                })
                .collect();
            // Git's order (directories compare as if followed by `/`), so only the names
            // are hostile, not the order.
            let key = |(name, mode, _): &(Vec<u8>, String, String)| {
                let mut key = name.clone();
                if mode == "40000" {
                    key.push(b'/');
                }
                key
            };
            written.sort_by_key(key);
            let mut bytes = Vec::new();
            for (name, mode, id) in &written {
                bytes.extend_from_slice(mode.as_bytes());
                bytes.push(b' ');
                bytes.extend_from_slice(name);
                bytes.push(0);
                bytes.extend_from_slice(&hex_to_bytes(id));
            }
            ("40000".to_string(), raw_tree(repo, &bytes))
        }
    };
    made.push(id.clone());
    (mode, id)
}

fn raw_tree(repo: &TestRepo, bytes: &[u8]) -> String {
    git_stdin(
        repo,
        &repo.root,
        &["hash-object", "-t", "tree", "--literally", "-w", "--stdin"],
        bytes,
    )
}

/// A session in `repo` whose step 1 is real (`cairn checkpoint --new`) and whose steps
/// after it hold `steps` as their workspace (beside `README.md`) with step 1's `.cairn/`.
struct Hostile {
    session: String,
    /// The hostile steps' commits, oldest first.
    commits: Vec<String>,
    /// Every object crafted (for telling fsck's reports on them from anything else).
    objects: Vec<String>,
}

fn craft(repo: &TestRepo, steps: &[Node]) -> Hostile {
    let (session, _, first) = repo.checkpoint(&["--new", "-m", "looks ordinary"]);
    let cairn = repo.git(&["rev-parse", &format!("{first}:.cairn")]).trim().to_string();
    let readme = repo.git(&["rev-parse", &format!("{first}:README.md")]).trim().to_string();
    let mut objects = Vec::new();
    let mut commits = Vec::new();
    let mut parent = first;
    for (at, workspace) in steps.iter().enumerate() {
        let Node::Dir(entries) = workspace else { panic!("a step's workspace is a directory") };
        let (_, tree) = {
            // Write the workspace entries, then add README.md and the real `.cairn`.
            let mut root_bytes: Vec<(Vec<u8>, String, String)> = entries
                .iter()
                .map(|(name, node)| {
                    let (mode, id) = write_node(repo, node, &mut objects);
                    (name.clone(), mode, id)
                })
                .collect();
            root_bytes.push((b"README.md".to_vec(), "100644".into(), readme.clone()));
            root_bytes.push((b".cairn".to_vec(), "40000".into(), cairn.clone()));
            let key = |(name, mode, _): &(Vec<u8>, String, String)| {
                let mut key = name.clone();
                if mode == "40000" {
                    key.push(b'/');
                }
                key
            };
            root_bytes.sort_by_key(key);
            let mut bytes = Vec::new();
            for (name, mode, id) in &root_bytes {
                bytes.extend_from_slice(mode.as_bytes());
                bytes.push(b' ');
                bytes.extend_from_slice(name);
                bytes.push(0);
                bytes.extend_from_slice(&hex_to_bytes(id));
            }
            let id = raw_tree(repo, &bytes);
            objects.push(id.clone());
            ("40000", id)
        };
        let number = at + 2;
        let message =
            format!("edit\n\nCairn-Session: {session}\nCairn-Step: {number}\nCairn-Kind: tool\n");
        let commit =
            git_stdin(repo, &repo.root, &["commit-tree", &tree, "-p", &parent], message.as_bytes());
        objects.push(commit.clone());
        commits.push(commit.clone());
        parent = commit;
    }
    let session_ref = TestRepo::session_ref(&session);
    repo.git(&["update-ref", &session_ref, &parent]);
    Hostile { session, commits, objects }
}

/// Everything a command could change, as text: every file of the workspace with its
/// content or link target (`.git` aside), the workspace's parent directory, and `.git`
/// itself except the object store and cairn's private caches (so hooks, config, refs and
/// reflogs, byte for byte).
fn state(repo: &TestRepo) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(repo.root.parent().unwrap()).unwrap() {
        let name = entry.unwrap().file_name();
        out.insert(format!("parent/{}", name.to_string_lossy()), Vec::new());
    }
    walk(&repo.root, "work", &mut out, &|rel| rel == "work/.git");
    walk(&repo.root.join(".git"), ".git", &mut out, &|rel| {
        rel == ".git/objects" || rel == ".git/cairn"
    });
    out
}

fn walk(dir: &Path, rel: &str, out: &mut BTreeMap<String, Vec<u8>>, skip: &dyn Fn(&str) -> bool) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries {
        let entry = entry.unwrap();
        let name = entry.file_name();
        let rel = format!("{rel}/{}", String::from_utf8_lossy(name.as_bytes()));
        if skip(&rel) {
            continue;
        }
        let path = entry.path();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&path).unwrap();
            out.insert(format!("{rel} -> "), target.as_os_str().as_bytes().to_vec());
        } else if meta.is_dir() {
            out.insert(format!("{rel}/"), Vec::new());
            walk(&path, &rel, out, skip);
        } else {
            let mode = std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o111;
            out.insert(format!("{rel} {mode:o}"), std::fs::read(&path).unwrap());
        }
    }
}

fn victim(url: &str) -> TestRepo {
    let b = TestRepo::clone_of(url);
    b.write("mine.txt", "the victim's own work\n");
    b
}

/// What `git fsck --strict` says, as lines; each must be about one of `ours` (the
/// crafted objects: fsck itself rightly reports several of them), never anything cairn
/// wrote.
fn assert_fsck_only_reports(repo: &TestRepo, ours: &[String]) {
    let out = Command::new("git")
        .args(["fsck", "--strict", "--no-dangling", "--no-progress"])
        .current_dir(&repo.root)
        .env("HOME", &repo.home)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .unwrap();
    let text =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    // git's tree parser says this once per read of a truncated tree, naming no object;
    // fsck then names the tree in its own lines.
    let unnamed = ["error: too-short tree object"];
    for line in text.lines().filter(|line| !line.trim().is_empty()) {
        assert!(
            ours.iter().any(|id| line.contains(id.as_str())) || unnamed.contains(&line.trim()),
            "git fsck reports something cairn wrote: {line}\n{text}"
        );
    }
}

/// One hostile session: its steps, what the refusal must name, and whether the remote
/// transport carries it at all.
struct Case {
    name: &'static str,
    steps: Vec<Node>,
    /// Text the rejection and every refusal must contain (the entry, as cairn quotes it).
    names: &'static str,
}

fn cases() -> Vec<Case> {
    let hook = || dir(vec![(b"post-checkout", Node::Exec(HOOK))]);
    let in_dir = |name: &'static [u8], inner: Node| dir(vec![(name, inner)]);
    vec![
        Case {
            name: ".git/hooks/post-checkout",
            steps: vec![in_dir(b".git", in_dir(b"hooks", hook()))],
            names: r#"".git" (a .git directory)"#,
        },
        Case {
            name: ".GIT",
            steps: vec![in_dir(b".GIT", in_dir(b"hooks", hook()))],
            names: r#"".GIT" (a .git directory in another case"#,
        },
        Case {
            name: "GIT~1",
            steps: vec![in_dir(b"GIT~1", dir(vec![(b"config", Node::File("[core]\n"))]))],
            names: r#""GIT~1" (a .git directory in another spelling (NTFS 8.3))"#,
        },
        Case {
            name: "'.git ' (trailing space)",
            steps: vec![in_dir(b".git ", dir(vec![(b"config", Node::File("[core]\n"))]))],
            names: r#"".git " (a .git directory in another spelling (NTFS"#,
        },
        Case {
            name: "'.git.' (trailing dot)",
            steps: vec![in_dir(b".git.", dir(vec![(b"config", Node::File("[core]\n"))]))],
            names: r#"".git." (a .git directory in another spelling (NTFS"#,
        },
        Case {
            name: ".git::$INDEX_ALLOCATION",
            steps: vec![in_dir(
                b".git::$INDEX_ALLOCATION",
                dir(vec![(b"config", Node::File("[core]\n"))]),
            )],
            names: r#"".git::$INDEX_ALLOCATION" (a .git directory in another spelling (NTFS"#,
        },
        Case {
            name: "HFS+ .g\\u{200c}it",
            steps: vec![in_dir(".g\u{200c}it".as_bytes(), in_dir(b"hooks", hook()))],
            names: "(a .git directory in another spelling (HFS+",
        },
        Case {
            name: "..",
            steps: vec![in_dir(b"..", dir(vec![(b"escaped", Node::File("x\n"))]))],
            names: r#"".." (a `..` component, which leads outside)"#,
        },
        Case {
            name: "a/../../x",
            steps: vec![in_dir(
                b"a",
                in_dir(b"..", in_dir(b"..", dir(vec![(b"x", Node::File("x\n"))]))),
            )],
            names: r#""a/.." (a `..` component"#,
        },
        Case {
            name: "absolute /tmp-style name",
            steps: vec![dir(vec![(b"/escaped", Node::File("x\n"))])],
            names: r#""/escaped" (a `/` inside one name)"#,
        },
        Case {
            name: r"backslash ..\x",
            steps: vec![dir(vec![(br"..\x", Node::File("x\n"))])],
            names: r#"(a `\`, a path separator on Windows)"#,
        },
        Case {
            name: "gitlink named .git",
            steps: vec![dir(vec![(
                b".git",
                Node::Gitlink("0123456789012345678901234567890123456789"),
            )])],
            names: r#"".git" (a .git directory)"#,
        },
        Case {
            name: "unknown mode 100664",
            steps: vec![dir(vec![(b"odd", Node::Mode("100664", "x\n"))])],
            names: r#""odd" (an unknown mode 100664)"#,
        },
        Case {
            name: "truncated tree",
            steps: vec![dir(vec![(b"sub", Node::Truncated)])],
            names: r#""sub" (a tree that is missing, truncated or malformed)"#,
        },
        Case {
            name: "root .CAIRN from the workspace part",
            steps: vec![in_dir(b".CAIRN", dir(vec![(b"session.toml", Node::File("id = 'x'\n"))]))],
            names: r#"".CAIRN" (the reserved .cairn directory)"#,
        },
        Case {
            name: "symlinked .gitmodules",
            steps: vec![dir(vec![(b".gitmodules", Node::Link("/etc/passwd".into()))])],
            names: r#"".gitmodules" (a .gitmodules that is a symlink)"#,
        },
    ]
}

/// Runs one hostile case end to end; returns a line describing its outcome.
fn run_case(case: &Case) -> String {
    let attacker = TestRepo::new();
    let url = attacker.bare_remote();
    let hostile = craft(&attacker, &case.steps);
    let session = hostile.session.clone();
    let step = hostile.commits.len() + 1;
    let pushed = Command::new("git")
        .args(["push", "-q", &url, &format!("{0}:{0}", TestRepo::session_ref(&session))])
        .current_dir(&attacker.root)
        .env("HOME", &attacker.home)
        .output()
        .unwrap();
    let travels = pushed.status.success();
    // Step 1 is ordinary and always travels (on a branch), so a victim has its objects.
    let first = attacker.git(&["rev-parse", &format!("{}~{}", hostile.commits[0], 1)]);
    attacker.git(&["push", "-q", &url, &format!("{}:refs/heads/step-1", first.trim())]);

    let b = victim(&url);
    b.git(&["add", "-A"]);
    b.git(&["commit", "-qm", "the victim's commit"]);
    let before = state(&b);
    if travels {
        // (a) `cairn fetch` rejects the session into quarantine and nothing else.
        let fetched = fetch_rejecting(&b, &["fetch"]);
        let expected = format!("rejected   {session}: step {step} holds an unsafe path");
        assert!(fetched.contains(&expected), "{}: {fetched}", case.name);
        assert!(fetched.contains(case.names), "{}: {fetched}", case.name);
        let tip = hostile.commits.last().unwrap();
        let quarantine = format!("refs/cairn/remotes/origin/rejected/{session}");
        assert_eq!(b.git(&["rev-parse", &quarantine]).trim(), tip, "{}", case.name);
        let cairn_refs = b.git(&["for-each-ref", "--format=%(refname)", "refs/cairn/"]);
        assert_eq!(cairn_refs.trim(), quarantine, "{}: only the quarantine ref", case.name);
        let json: serde_json::Value =
            serde_json::from_str(&fetch_rejecting(&b, &["fetch", "--json"])).unwrap();
        let outcome = &json["sessions"][0];
        assert_eq!(outcome["outcome"], "rejected", "{}: {json}", case.name);
        assert!(outcome["reason"].as_str().unwrap().contains(case.names), "{}: {json}", case.name);
        // The refs were compared above; the rest must be as it was: the workspace, its
        // parent, and `.git`'s hooks, config and info.
        let kept = |state: BTreeMap<String, Vec<u8>>| -> BTreeMap<String, Vec<u8>> {
            state
                .into_iter()
                .filter(|(key, _)| {
                    !key.starts_with(".git/")
                        || [".git/hooks", ".git/config", ".git/info"]
                            .iter()
                            .any(|p| key.starts_with(p))
                })
                .collect()
        };
        assert_eq!(kept(state(&b)), kept(before.clone()), "{}: fetch changed files", case.name);
    } else {
        // Git's own transport refuses to carry it (it cannot pack a tree it cannot read).
        let pack = String::from_utf8_lossy(&pushed.stderr).to_string();
        assert!(case.name == "truncated tree", "{}: push failed: {pack}", case.name);
        // The objects then reach the victim by hand, as a fetch by other means would.
        for object in &hostile.objects {
            copy_object(&attacker, &b, object);
        }
    }

    // (b) The session arrives by plain `git fetch` (or by hand): restore's own defence.
    let session_ref = TestRepo::session_ref(&session);
    if travels {
        b.git(&["fetch", "-q", "origin", &format!("+{session_ref}:{session_ref}")]);
    } else {
        b.git(&["update-ref", &session_ref, hostile.commits.last().unwrap()]);
    }
    let before = state(&b);
    // A session that arrived from elsewhere is never the one `resume` picks by itself.
    let said = b.fails(&["resume"]);
    assert!(said.contains("no sessions started in this clone"), "{}: {said}", case.name);
    let at = format!("{session}@{step}");
    let refusal = format!("refusing session {session}: step {step} holds an unsafe path");
    for args in [
        vec!["rewind", at.as_str()],
        vec!["resume", at.as_str(), "go on", "--fork"],
        vec!["resume", at.as_str(), "go on"],
        vec!["land", session.as_str()],
    ] {
        let said = b.fails(&args);
        assert!(said.contains(&refusal), "{} {args:?}: {said}", case.name);
        assert!(said.contains(case.names), "{} {args:?}: {said}", case.name);
        assert_eq!(state(&b), before, "{} {args:?} changed something", case.name);
    }
    // No hook was planted: a checkout runs none.
    b.git(&["checkout", "-q", "-b", "probe"]);
    assert!(!b.root.parent().unwrap().join("PWNED").exists(), "{}: a hook ran", case.name);
    assert_fsck_only_reports(&b, &hostile.objects);
    let via = if travels { "fetch rejected it" } else { "git would not push it" };
    format!("{}: {via}; rewind, resume, resume --fork and land refused it", case.name)
}

/// The tree of `commit` with the file at `path` replaced by `content`.
fn with_file(repo: &TestRepo, commit: &str, path: &str, content: &[u8]) -> String {
    let blob = git_stdin(repo, &repo.root, &["hash-object", "-w", "--stdin"], content);
    let index = repo.home.join("crafting-index");
    let git = |args: &[&str]| {
        let out = Command::new("git")
            .args(args)
            .current_dir(&repo.root)
            .env("GIT_INDEX_FILE", &index)
            .env("HOME", &repo.home)
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    git(&["read-tree", commit]);
    git(&["update-index", "--cacheinfo", &format!("100644,{blob},{path}")]);
    git(&["write-tree"])
}

/// Copies one object from `from`'s store to `to`'s, byte for byte.
fn copy_object(from: &TestRepo, to: &TestRepo, id: &str) {
    let kind = from.git(&["cat-file", "-t", id]).trim().to_string();
    let out =
        Command::new("git").args(["cat-file", &kind, id]).current_dir(&from.root).output().unwrap();
    let written = git_stdin(
        to,
        &to.root,
        &["hash-object", "-t", &kind, "--literally", "-w", "--stdin"],
        &out.stdout,
    );
    assert_eq!(written, id);
}

#[test]
fn hostile_sessions_are_rejected_by_fetch_and_refused_by_every_restore() {
    let cases = cases();
    let outcomes: Vec<String> = cases.iter().map(run_case).collect();
    for outcome in &outcomes {
        println!("{outcome}");
    }
    println!("{} hostile cases, all refused", outcomes.len());
    assert_eq!(outcomes.len(), 16);
}

/// A victim clone that fetched `hostile` with `cairn fetch` (it is not rejected), with an
/// empty directory `outside` beside its workspace.
fn fetched_by_victim(attacker: &TestRepo, url: &str, hostile: &Hostile) -> TestRepo {
    let session_ref = TestRepo::session_ref(&hostile.session);
    attacker.git(&["push", "-q", url, &format!("{session_ref}:{session_ref}")]);
    let b = victim(url);
    std::fs::create_dir(b.root.parent().unwrap().join("outside")).unwrap();
    let fetched = b.ok(&["fetch"]);
    assert!(fetched.contains(&format!("new        {}", hostile.session)), "{fetched}");
    b
}

fn outside_is_empty(repo: &TestRepo) -> bool {
    let outside = repo.root.parent().unwrap().join("outside");
    std::fs::read_dir(outside).unwrap().next().is_none()
}

#[test]
fn a_symlink_replaced_by_a_directory_of_the_same_name_is_removed_not_followed() {
    let attacker = TestRepo::new();
    let url = attacker.bare_remote();
    let link = || Node::Link("../outside".into());
    let hostile = craft(
        &attacker,
        &[
            dir(vec![(b"d", link())]),
            dir(vec![(b"d", dir(vec![(b"pwned", Node::File("written through\n"))]))]),
        ],
    );
    let b = fetched_by_victim(&attacker, &url, &hostile);
    b.ok(&["rewind", &hostile.commits[0]]);
    assert_eq!(std::fs::read_link(b.path("d")).unwrap(), Path::new("../outside"));
    b.ok(&["rewind", &hostile.commits[1]]);
    assert!(std::fs::symlink_metadata(b.path("d")).unwrap().is_dir(), "a real directory now");
    assert_eq!(b.read("d/pwned"), "written through\n");
    assert!(outside_is_empty(&b), "nothing was written through the old link");
    b.assert_fsck_clean();
}

#[test]
fn a_symlink_the_snapshot_does_not_hold_is_never_written_through() {
    // The link is ignored, so no snapshot holds it and no deletion removes it: the same
    // position a case-insensitive file system puts a link `A` in for a directory `a/`.
    let attacker = TestRepo::new();
    let url = attacker.bare_remote();
    let hostile = craft(
        &attacker,
        &[
            dir(vec![(b".gitignore", Node::File("d\n")), (b"d", Node::Link("../outside".into()))]),
            dir(vec![
                (b".gitignore", Node::File("d\n")),
                (b"d", dir(vec![(b"pwned", Node::File("written through\n"))])),
            ]),
        ],
    );
    let b = fetched_by_victim(&attacker, &url, &hostile);
    b.ok(&["rewind", &hostile.commits[0]]);
    let out = b.cairn(&["rewind", &hostile.commits[1]]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("left d/pwned as it is: d is a symlink the snapshot did not hold"),
        "{said}"
    );
    assert!(std::fs::symlink_metadata(b.path("d")).unwrap().file_type().is_symlink());
    assert!(outside_is_empty(&b), "nothing was written through the link");
}

#[test]
fn a_symlink_and_a_directory_differing_only_in_case_stay_apart() {
    let attacker = TestRepo::new();
    let url = attacker.bare_remote();
    let hostile = craft(
        &attacker,
        &[dir(vec![
            (b"A", Node::Link("../outside".into())),
            (b"a", dir(vec![(b"x", Node::File("inside\n"))])),
        ])],
    );
    let b = fetched_by_victim(&attacker, &url, &hostile);
    b.ok(&["rewind", &format!("{}@2", hostile.session)]);
    // On Linux both exist; the per-component lstat means that where `a` folds onto the
    // link (macOS, Windows) the write is refused as in the test above, never followed.
    assert!(std::fs::symlink_metadata(b.path("A")).unwrap().file_type().is_symlink());
    assert!(std::fs::symlink_metadata(b.path("a")).unwrap().is_dir());
    assert_eq!(b.read("a/x"), "inside\n");
    assert!(outside_is_empty(&b));
}

#[test]
fn a_gitlink_is_never_checked_out_and_creates_no_git_directory() {
    let attacker = TestRepo::new();
    let url = attacker.bare_remote();
    let head = attacker.git(&["rev-parse", "HEAD"]).trim().to_string();
    let head: &'static str = Box::leak(head.into_boxed_str());
    let hostile = craft(&attacker, &[dir(vec![(b"sub", Node::Gitlink(head))])]);
    let b = fetched_by_victim(&attacker, &url, &hostile);
    let out = b.cairn(&["rewind", &format!("{}@2", hostile.session)]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("left sub as it is: nested repository"));
    assert!(!b.path("sub").exists(), "no directory, so no .git of its own");
    b.assert_fsck_clean();
}

#[test]
fn ordinary_odd_names_round_trip_through_push_fetch_and_rewind() {
    let a = TestRepo::new();
    let url = a.bare_remote();
    let names = [
        "aux.c",
        "con.rs",
        "a:b",
        "nul.txt",
        "ünïcödé/日本語.md",
        "with space/and more.txt",
        ".github/workflows/ci.yml",
        ".gitmodules",
        "src/.cairn/not-the-reserved-one",
        "trailing.dot.",
    ];
    // `git fsck` parses a `.gitmodules`, so that one holds config text.
    let content = |name: &str| format!("# {name}\n");
    for name in names {
        a.write(name, &content(name));
    }
    let (session, _, first) = a.checkpoint(&["--new", "-m", "odd names"]);
    let recorded = a.tree_files(&first);
    for name in names {
        assert!(recorded.contains_key(name), "{name} missing from {recorded:?}");
    }
    a.ok(&["push"]);

    let b = victim(&url);
    let fetched = b.ok(&["fetch"]);
    assert!(fetched.contains(&format!("new        {session}")), "{fetched}");
    b.ok(&["rewind", &session]);
    for name in names {
        assert_eq!(b.read(name), content(name), "{name}");
    }
    assert!(!b.path(".cairn").exists(), "the step's own .cairn is never written to the workspace");
    b.assert_fsck_clean();
}

#[test]
fn workspace_files_with_names_a_restore_would_refuse_are_left_out_and_listed() {
    let repo = TestRepo::new();
    for name in [".GIT/x", r"a\b", "GIT~1", ".git./y", ".CAIRN"] {
        repo.write(name, "not recordable\n");
    }
    repo.write("fine.txt", "recorded\n");
    let out = repo.cairn(&["checkpoint", "--new", "--json", "-m", "scan"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let skipped = report["skipped"].as_array().unwrap();
    let listed: Vec<(&str, &str)> = skipped
        .iter()
        .map(|s| (s["path"].as_str().unwrap(), s["reason"].as_str().unwrap()))
        .collect();
    for (name, rule) in [
        (".GIT", "a .git directory in another case"),
        (r"a\b", r"a `\`"),
        ("GIT~1", "NTFS 8.3"),
        (".git.", "NTFS trailing dots"),
        (".CAIRN", "the reserved .cairn directory"),
    ] {
        assert!(
            listed.iter().any(|(path, reason)| *path == name
                && reason.starts_with("unsafe name: ")
                && reason.contains(rule)),
            "{name}: {listed:?}"
        );
    }
    let commit = report["commit"].as_str().unwrap();
    let files = repo.tree_files(commit);
    assert_eq!(files.keys().collect::<Vec<_>>(), ["README.md", "fine.txt"]);
    repo.assert_fsck_clean();
}

#[test]
fn fetch_rejects_steps_that_are_not_steps_of_the_session_and_keeps_the_accepted_tip() {
    let a = TestRepo::new();
    let url = a.bare_remote();
    let (session, _, first) = a.checkpoint(&["--new", "-m", "ordinary"]);
    a.ok(&["push"]);
    let b = victim(&url);
    assert!(b.ok(&["fetch"]).contains(&format!("new        {session}")));

    let tree = a.git(&["rev-parse", &format!("{first}^{{tree}}")]).trim().to_string();
    let readme_only = a.git(&["rev-parse", &format!("{first}^{{tree}}:README.md")]);
    let bare_tree = git_stdin(
        &a,
        &a.root,
        &["mktree"],
        format!("100644 blob {}\tREADME.md\n", readme_only.trim()).as_bytes(),
    );
    let trailers = |session: &str, step: u64| {
        format!("edit\n\nCairn-Session: {session}\nCairn-Step: {step}\nCairn-Kind: tool\n")
    };
    let cases = [
        ("no trailers", tree.clone(), "plain commit\n".to_string(), "is not a cairn step"),
        (
            "another session's trailers",
            tree.clone(),
            trailers("20200101-0000-else", 2),
            "is a step of session 20200101-0000-else",
        ),
        ("a skipped step number", tree.clone(), trailers(&session, 5), "step 5 follows step 1"),
        ("no .cairn/session.toml", bare_tree, trailers(&session, 2), "has no .cairn/session.toml"),
        (
            "a session.toml of another session",
            with_file(&a, &first, ".cairn/session.toml", b"id = \"20200101-0000-else\"\n"),
            trailers(&session, 2),
            "names session 20200101-0000-else",
        ),
        (
            // A newline would make the reflog message invalid (and the fetch fail every
            // time); an escape would reach the terminal.
            "a session.toml id with a newline and an escape",
            with_file(&a, &first, ".cairn/session.toml", b"id = \"x\\ny\\u001b]0;pwned\\u0007\"\n"),
            trailers(&session, 2),
            r"names session x\ny\u{1b}]0;pwned\u{7}, not",
        ),
    ];
    let session_ref = TestRepo::session_ref(&session);
    let tracking = format!("refs/cairn/remotes/origin/sessions/{session}");
    for (name, tree, message, reason) in cases {
        let commit =
            git_stdin(&a, &a.root, &["commit-tree", &tree, "-p", &first], message.as_bytes());
        a.git(&["push", "-q", "-f", &url, &format!("{commit}:{session_ref}")]);
        let fetched = fetch_rejecting(&b, &["fetch"]);
        assert!(fetched.contains(&format!("rejected   {session}: ")), "{name}: {fetched}");
        assert!(fetched.contains(reason), "{name}: {fetched}");
        assert!(!fetched.contains('\x1b'), "{name}: a raw escape was printed: {fetched:?}");
        let quarantine = format!("refs/cairn/remotes/origin/rejected/{session}");
        assert_eq!(b.git(&["rev-parse", &quarantine]).trim(), commit, "{name}");
        // What was accepted before stays: the local session and the tracking ref.
        assert_eq!(b.git(&["rev-parse", &session_ref]).trim(), first, "{name}");
        assert_eq!(b.git(&["rev-parse", &tracking]).trim(), first, "{name}");
        let incoming = b.git(&["for-each-ref", "refs/cairn/remotes/origin/incoming/"]);
        assert!(incoming.is_empty(), "{name}: {incoming}");
    }
    println!("6 non-step cases, all rejected");
}

#[test]
fn resume_without_a_checkpoint_picks_a_session_started_here_not_a_fetched_one() {
    let a = TestRepo::new();
    let url = a.bare_remote();
    let b = victim(&url);
    let (mine, _, _) = b.checkpoint(&["--new", "-m", "mine"]);
    // A remote's session whose id sorts after every real one, so it is the newest.
    let (_, _, step) = a.checkpoint(&["--new", "-m", "theirs"]);
    let theirs = "29991231-2359-zzzz";
    let toml = a.git(&["show", &format!("{step}:.cairn/session.toml")]);
    let id_line = toml.lines().find(|line| line.starts_with("id = ")).unwrap();
    let toml = toml.replace(id_line, &format!("id = \"{theirs}\""));
    let tree = with_file(&a, &step, ".cairn/session.toml", toml.as_bytes());
    let message = format!("theirs\n\nCairn-Session: {theirs}\nCairn-Step: 1\nCairn-Kind: manual\n");
    let commit = git_stdin(&a, &a.root, &["commit-tree", &tree, "-p", "HEAD"], message.as_bytes());
    a.git(&["push", "-q", &url, &format!("{commit}:{}", TestRepo::session_ref(theirs))]);
    assert!(b.ok(&["fetch"]).contains(&format!("new        {theirs}")));
    assert!(b.ok(&["sessions"]).find(theirs) < b.ok(&["sessions"]).find(&mine), "newest first");

    // Without a prompt or a terminal, resume says which session it chose, then stops.
    let out = b.cairn(&["resume"]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains(&format!("Resuming session {mine} ")), "{said}");
    assert_eq!(out.status.code(), Some(2), "{said}");
    // Named, a fetched session resumes as any other.
    let out = b.cairn(&["resume", theirs]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains(&format!("Resuming session {theirs} ")), "{said}");
}

/// Runs a `cairn fetch` that rejects a session: it exits 1, as `git fetch` does for a
/// rejected ref, and says what it did on stdout.
fn fetch_rejecting(repo: &TestRepo, args: &[&str]) -> String {
    let out = repo.cairn(args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(1), "{args:?}: {stdout}");
    stdout
}

#[test]
fn resume_without_a_checkpoint_passes_over_a_session_of_ours_a_remote_extended() {
    let a = TestRepo::new();
    let url = a.bare_remote();
    let b = victim(&url);
    let (ours, _, _) = b.checkpoint(&["--new", "-m", "started in b"]);
    b.ok(&["push", ours.as_str()]);
    assert!(a.ok(&["fetch"]).contains(&format!("new        {ours}")));
    // A resumes b's session (headless, without a prompt it stops after choosing) and adds
    // a step of its own, which b then fast-forwards to.
    let out = a.cairn(&["resume", &ours]);
    assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("Resuming session {ours} ")));
    a.write("theirs.txt", "a remote's step\n");
    let (same, step, theirs) = a.checkpoint(&["-m", "from a"]);
    assert_eq!((same.as_str(), step), (ours.as_str(), 2));
    a.ok(&["push", ours.as_str()]);
    assert!(b.ok(&["fetch"]).contains(&format!("updated    {ours}")));
    let local = b.git(&["rev-parse", &TestRepo::session_ref(&ours)]);
    assert_eq!(local.trim(), theirs, "b's session now ends in a's step");

    // The session was started in b, but its tip came from elsewhere: not picked by itself.
    let said = b.fails(&["resume"]);
    assert!(said.contains("there are no sessions started in this clone to resume"), "{said}");
    assert_eq!(b.git(&["rev-parse", &TestRepo::session_ref(&ours)]), local);
    assert!(!b.path("theirs.txt").exists(), "nothing was restored");
    // Named, it resumes as any other.
    let out = b.cairn(&["resume", &ours]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains(&format!("Resuming session {ours} at step 2 ")), "{said}");
}

/// Every ref under `refs/cairn/`, with its target.
fn cairn_refs(repo: &TestRepo) -> String {
    repo.git(&["for-each-ref", "--format=%(refname) %(objectname)", "refs/cairn/"])
}

#[test]
fn resume_to_a_diverged_remote_tip_is_refused_unless_forked() {
    let a = TestRepo::new();
    let url = a.bare_remote();
    let b = victim(&url);
    let (session, _, _) = b.checkpoint(&["--new", "-m", "started in b"]);
    b.ok(&["push", session.as_str()]);
    assert!(a.ok(&["fetch"]).contains(&format!("new        {session}")));
    let _ = a.cairn(&["resume", &session]);
    a.write("theirs.txt", "a remote's step\n");
    let (_, _, theirs) = a.checkpoint(&["-m", "from a"]);
    a.ok(&["push", session.as_str()]);
    b.write("mine.txt", "b's own step 2\n");
    let (_, _, ours) = b.checkpoint(&["-m", "from b"]);
    assert!(b.ok(&["fetch"]).contains(&format!("diverged   {session}")));
    let tracking = format!("refs/cairn/remotes/origin/sessions/{session}");
    assert_eq!(b.git(&["rev-parse", &tracking]).trim(), theirs);

    let refs_before = cairn_refs(&b);
    let files_before = state(&b);
    for args in [vec!["resume", tracking.as_str(), "go on"], vec!["rewind", tracking.as_str()]] {
        let said = b.fails(&args);
        assert!(said.contains("is not one of the steps of session"), "{args:?}: {said}");
        assert!(said.contains("--fork"), "{args:?}: {said}");
        assert_eq!(cairn_refs(&b), refs_before, "{args:?} moved a ref");
        assert_eq!(state(&b), files_before, "{args:?} changed a file");
    }
    assert_eq!(b.git(&["rev-parse", &TestRepo::session_ref(&session)]).trim(), ours);

    // Forked, the remote's tip becomes a new session and the local one stays as it was.
    let out = b.cairn(&["resume", &tracking, "--fork"]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains(&format!("Forked {session}@2 as session ")), "{said}");
    assert_eq!(b.read("theirs.txt"), "a remote's step\n");
    assert_eq!(b.git(&["rev-parse", &TestRepo::session_ref(&session)]).trim(), ours);
    b.assert_fsck_clean();
}

#[test]
fn a_quarantined_session_is_refused_by_every_restore_even_by_revision() {
    let a = TestRepo::new();
    let url = a.bare_remote();
    let (session, _, first) = a.checkpoint(&["--new", "-m", "ordinary"]);
    a.ok(&["push"]);
    let b = victim(&url);
    assert!(b.ok(&["fetch"]).contains(&format!("new        {session}")));
    // A step claiming this session with a skipped number: fetch quarantines it.
    let tree = with_file(&a, &first, "README.md", b"the attacker's version\n");
    let message = format!("edit\n\nCairn-Session: {session}\nCairn-Step: 5\nCairn-Kind: tool\n");
    let commit = git_stdin(&a, &a.root, &["commit-tree", &tree, "-p", &first], message.as_bytes());
    a.git(&["push", "-q", "-f", &url, &format!("{commit}:{}", TestRepo::session_ref(&session))]);
    assert!(fetch_rejecting(&b, &["fetch"]).contains(&format!("rejected   {session}: ")));
    let quarantine = format!("refs/cairn/remotes/origin/rejected/{session}");
    assert_eq!(b.git(&["rev-parse", &quarantine]).trim(), commit);

    let refs_before = cairn_refs(&b);
    let files_before = state(&b);
    let short = format!("cairn/remotes/origin/rejected/{session}~0");
    for name in [quarantine.as_str(), short.as_str(), commit.as_str()] {
        for args in [
            vec!["rewind", name],
            vec!["resume", name, "go on"],
            vec!["resume", name, "go on", "--fork"],
            vec!["land", name],
        ] {
            let said = b.fails(&args);
            assert!(said.contains("quarantined as unsafe"), "{args:?}: {said}");
            assert!(said.contains(&format!("git log --stat {quarantine}")), "{args:?}: {said}");
            assert_eq!(cairn_refs(&b), refs_before, "{args:?} moved a ref");
            assert_eq!(state(&b), files_before, "{args:?} changed a file");
        }
    }
    assert_ne!(b.read("README.md"), "the attacker's version\n");
}

#[test]
fn resume_fork_with_no_current_session_records_the_workspace_as_a_new_session_first() {
    let a = TestRepo::new();
    let url = a.bare_remote();
    let (theirs, _, _) = a.checkpoint(&["--new", "-m", "theirs"]);
    a.ok(&["push", theirs.as_str()]);
    // A fresh clone has no current session, and an untracked file of its own.
    let b = victim(&url);
    assert!(b.ok(&["fetch"]).contains(&format!("new        {theirs}")));

    let out = b.cairn(&["resume", &theirs, "--fork"]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains(&format!("Forked {theirs}@1 as session ")), "{said}");
    assert!(!b.path("mine.txt").exists(), "the fork made the workspace equal {theirs}");
    let tips =
        b.git(&["for-each-ref", "--format=%(objectname) %(subject)", "refs/cairn/sessions/"]);
    let saved = tips
        .lines()
        .find(|line| line.ends_with(" user edits before fork"))
        .unwrap_or_else(|| panic!("no session holds the edits: {tips}"));
    let commit = saved.split(' ').next().unwrap();
    assert!(b.git(&["log", "-1", "--format=%B", commit]).contains("Cairn-Step: 1\n"));
    assert_eq!(b.git(&["show", &format!("{commit}:mine.txt")]), "the victim's own work\n");
    b.assert_fsck_clean();
}
