//! Text helpers shared by the agent and the command line.

/// Lines added and removed between two texts (a line diff, as `git diff --stat` counts).
pub fn line_counts(old: &str, new: &str) -> (usize, usize) {
    let diff = similar::TextDiff::from_lines(old, new);
    let mut added = 0;
    let mut removed = 0;
    for change in diff.iter_all_changes() {
        match change.tag() {
            similar::ChangeTag::Insert => added += 1,
            similar::ChangeTag::Delete => removed += 1,
            similar::ChangeTag::Equal => {}
        }
    }
    (added, removed)
}

/// Whether content is binary by git's rule: a NUL byte in its first 8,000 bytes.
pub fn is_binary(bytes: &[u8]) -> bool {
    bytes.iter().take(8000).any(|b| *b == 0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn counts_added_and_removed_lines() {
        assert_eq!(super::line_counts("a\nb\nc\n", "a\nB\nc\nd\n"), (2, 1));
        assert_eq!(super::line_counts("", "x\n"), (1, 0));
        assert_eq!(super::line_counts("same\n", "same\n"), (0, 0));
    }
}
