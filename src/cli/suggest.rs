//! Mistyped commands. `cairn [PROMPT]` takes any word as a prompt, so without this
//! `cairn sesions` would start a session about "sesions". A one-word prompt that is a
//! near miss of a command is caught instead: a usage error naming the command, or a
//! question at a terminal. `cairn -- WORD` always means the prompt.

use std::ffi::OsString;

use clap::CommandFactory as _;

use super::Cli;

/// The command `word` is a near miss of, if any: the same letters in another case, or
/// within one edit (an insertion, deletion, substitution or swap of neighbours) of a
/// command name of up to four letters, two of a longer one.
pub fn near_command(word: &str) -> Option<String> {
    if word.is_empty() || word.starts_with('-') || word.chars().any(char::is_whitespace) {
        return None;
    }
    let typed = word.to_lowercase();
    let cli = Cli::command();
    cli.get_subcommands()
        .filter(|command| !command.is_hide_set())
        .map(|command| command.get_name())
        .filter(|name| *name != word)
        .map(|name| (strsim::osa_distance(&typed, name), name))
        .filter(|(distance, name)| *distance <= if name.len() <= 4 { 1 } else { 2 })
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, name)| name.to_string())
}

/// Whether the command line forced its words to be a prompt with `--`.
pub fn prompt_forced(args: &[OsString]) -> bool {
    args.iter().skip(1).any(|arg| arg == "--")
}

/// The first argument, when clap could not parse the line and it is a near miss of a
/// command (`cairn sesions --json`): (what was typed, the command).
pub fn mistyped_first_word(args: &[OsString]) -> Option<(String, String)> {
    if prompt_forced(args) {
        return None;
    }
    let word = args.get(1)?.to_str()?;
    near_command(word).map(|command| (word.to_string(), command))
}

/// `args` with the prompt `word` replaced by `command`, to run what was meant.
pub fn corrected(args: &[OsString], word: &str, command: &str) -> Vec<OsString> {
    let mut out = args.to_vec();
    if let Some(at) = out.iter().rposition(|arg| arg == word) {
        out[at] = command.into();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn near_misses_of_commands_are_found() {
        for (typed, meant) in [
            ("sesions", "sessions"),
            ("sessoins", "sessions"),
            ("Sessions", "sessions"),
            ("lgo", "log"),
            ("complet1ons", "completions"),
            ("checkpiont", "checkpoint"),
            ("rewnd", "rewind"),
        ] {
            assert_eq!(near_command(typed).as_deref(), Some(meant), "{typed}");
        }
    }

    #[test]
    fn ordinary_one_word_prompts_are_left_alone() {
        for word in ["refactor", "hello", "fix", "tests", "explain", "why?", "", "-x", "two words"]
        {
            assert_eq!(near_command(word), None, "{word}");
        }
    }

    #[test]
    fn hidden_commands_are_never_suggested() {
        assert_eq!(near_command("generate-men"), None);
    }

    #[test]
    fn a_double_dash_forces_a_prompt() {
        let args: Vec<OsString> = ["cairn", "--", "sesions"].map(OsString::from).to_vec();
        assert!(prompt_forced(&args));
        assert_eq!(mistyped_first_word(&args), None);
        let args: Vec<OsString> = ["cairn", "sesions", "--json"].map(OsString::from).to_vec();
        assert!(!prompt_forced(&args));
        assert_eq!(mistyped_first_word(&args), Some(("sesions".into(), "sessions".into())));
        assert_eq!(
            corrected(&args, "sesions", "sessions"),
            ["cairn", "sessions", "--json"].map(OsString::from).to_vec()
        );
    }
}
