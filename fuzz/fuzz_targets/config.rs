//! Configuration files: any text gives a configuration or an error, never a panic.
#![no_main]

use std::sync::OnceLock;

use cairn::config::{self, Env, Flags};
use libfuzzer_sys::fuzz_target;

fn file() -> &'static (tempfile::TempDir, std::path::PathBuf) {
    static FILE: OnceLock<(tempfile::TempDir, std::path::PathBuf)> = OnceLock::new();
    FILE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("config.toml");
        (dir, path)
    })
}

fuzz_target!(|data: &[u8]| {
    let (_, path) = file();
    std::fs::write(path, data).expect("write the config");
    let env = Env::from_pairs([("CAIRN_CONFIG", path.to_string_lossy().into_owned())]);
    if let Ok(config) = config::load(None, &env, &Flags::default()) {
        let _ = format!("{config:?}");
    }
});
