//! Tool calls with arbitrary arguments, as a model might send them: never a panic, and
//! nothing is ever created outside the workspace. (`shell` is left out: its arguments
//! are a command to run.)
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use cairn::agent::tools::{self, ToolContext};
use cairn::llm::CancellationToken;
use libfuzzer_sys::fuzz_target;

const TOOLS: [&str; 5] = ["read_file", "write_file", "edit_file", "glob", "grep"];

struct Fixture {
    runtime: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
    outside: PathBuf,
    root: PathBuf,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        let outside = dir.path().to_path_buf();
        let root = outside.join("workspace");
        std::fs::create_dir_all(root.join("src")).expect("workspace");
        std::fs::write(root.join("src/lib.rs"), "fn main() {}\n").expect("a file");
        std::fs::write(root.join("notes.txt"), "one\ntwo\nthree\n").expect("a file");
        std::os::unix::fs::symlink("..", root.join("up")).expect("a symlink out");
        let runtime =
            tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        Fixture { runtime, _dir: dir, outside, root }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, json)) = data.split_first() else { return };
    let Ok(arguments) = serde_json::from_slice::<serde_json::Value>(json) else { return };
    let f = fixture();
    let name = TOOLS[usize::from(which) % TOOLS.len()];
    let cancel = CancellationToken::new();
    let ctx = ToolContext { root: &f.root, cancel: &cancel, hidden_env: &[] };
    f.runtime.block_on(tools::run(name, &arguments, &ctx));
    let outside: Vec<_> = std::fs::read_dir(&f.outside)
        .expect("the parent")
        .filter_map(|e| e.ok().map(|e| e.file_name()))
        .collect();
    assert_eq!(outside, ["workspace"], "{name} {arguments} wrote outside the workspace");
});
