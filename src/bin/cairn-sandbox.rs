//! `cairn-sandbox`: the sandbox launcher, a binary of its own so that each confined
//! command pays for starting this small program rather than all of cairn, and holds
//! none of cairn's state. See `cairn::sandbox`.

use std::process::ExitCode;

fn main() -> ExitCode {
    cairn::sandbox::launcher_main(std::env::args_os().skip(1).collect())
}
