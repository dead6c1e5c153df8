//! Checkpoint names (`<session>@<n>`, `@~k`, prefixes, git revisions) resolved against a
//! repository with one two-step session: an answer or an error, never a panic.
#![no_main]

use cairn::checkpoint::{Changes, StepKind, StepRecord, Store, StoreOptions};
use libfuzzer_sys::fuzz_target;

struct Fixture {
    _dir: tempfile::TempDir,
    store: Store,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("temp dir");
    let status = std::process::Command::new("git")
        .args(["init", "-q"])
        .current_dir(dir.path())
        .status()
        .expect("git runs");
    assert!(status.success());
    std::fs::write(dir.path().join("a.txt"), "a\n").expect("a file");
    let store = Store::discover(dir.path(), StoreOptions::default()).expect("store");
    let mut session = store.start_session("fuzz", None, None).expect("session");
    for subject in ["one", "two"] {
        let record = StepRecord::new(StepKind::Manual, subject, Changes::Scan);
        store.record_step(&mut session, record).expect("a step");
    }
    store.set_current_session(&session.info.id).expect("current session");
    Fixture { _dir: dir, store }
}

thread_local! {
    // The store is not thread-safe, and the fuzzer runs one input at a time.
    static FIXTURE: Fixture = fixture();
}

fuzz_target!(|data: &[u8]| {
    let Ok(name) = std::str::from_utf8(data) else { return };
    FIXTURE.with(|f| {
        let _ = f.store.resolve(name);
    });
});
