//! One file's diff on the review page: its header with the line counts, and its hunks,
//! long runs of unchanged lines folded into `<details>`. Every line goes through
//! [`text`], like all session content on the page.

use std::fmt::Write as _;

use similar::ChangeTag;

use super::text;
use crate::history::export::{DiffBody, DiffLine, FileDiff, FileStatus};

/// Unchanged lines shown on each side of a change; longer runs fold into `<details>`.
const SHOWN_CONTEXT: usize = 3;

/// `file` as a collapsible section: its path, status and counts, then its hunks.
pub(super) fn file_diff(out: &mut String, file: &FileDiff) {
    let status = match file.status {
        FileStatus::Added => " <span class=\"file-status added\">added</span>",
        FileStatus::Deleted => " <span class=\"file-status deleted\">deleted</span>",
        FileStatus::Modified => "",
    };
    let _ = writeln!(
        out,
        "<details class=\"file\" open><summary><span class=\"path\">{}</span>{status} <span class=\"add\">+{}</span> <span class=\"del\">−{}</span></summary>",
        text(&file.path),
        file.added,
        file.removed
    );
    match &file.body {
        DiffBody::Binary => out.push_str("<p class=\"no-diff\">Binary file</p>\n"),
        DiffBody::TooLarge => out.push_str(
            "<p class=\"no-diff\">Too large to show here; <code>cairn diff</code> shows it.</p>\n",
        ),
        DiffBody::Text(hunks) => {
            out.push_str("<div class=\"code\">\n");
            for hunk in hunks {
                let _ = writeln!(
                    out,
                    "<div class=\"hunk\">@@ -{},{} +{},{} @@</div>",
                    hunk.old_start, hunk.old_len, hunk.new_start, hunk.new_len
                );
                let lines = &hunk.lines;
                let mut index = 0;
                while index < lines.len() {
                    if lines[index].tag != ChangeTag::Equal {
                        diff_line(out, &lines[index]);
                        index += 1;
                        continue;
                    }
                    let end = lines[index..]
                        .iter()
                        .position(|l| l.tag != ChangeTag::Equal)
                        .map_or(lines.len(), |n| index + n);
                    // Keep a few lines next to each change; fold the middle of the run.
                    let head = if index == 0 { 0 } else { SHOWN_CONTEXT };
                    let tail = if end == lines.len() { 0 } else { SHOWN_CONTEXT };
                    if end - index > head + tail + 1 {
                        for line in &lines[index..index + head] {
                            diff_line(out, line);
                        }
                        let folded = &lines[index + head..end - tail];
                        let _ = writeln!(
                            out,
                            "<details class=\"fold\"><summary>⋯ {} unchanged line{}</summary>",
                            folded.len(),
                            if folded.len() == 1 { "" } else { "s" }
                        );
                        for line in folded {
                            diff_line(out, line);
                        }
                        out.push_str("</details>\n");
                        for line in &lines[end - tail..end] {
                            diff_line(out, line);
                        }
                    } else {
                        for line in &lines[index..end] {
                            diff_line(out, line);
                        }
                    }
                    index = end;
                }
                if hunk.dropped > 0 {
                    let _ = writeln!(
                        out,
                        "<div class=\"hunk\">… {} more lines; <code>cairn diff</code> shows them</div>",
                        hunk.dropped
                    );
                }
            }
            out.push_str("</div>\n");
        }
    }
    out.push_str("</details>\n");
}

fn diff_line(out: &mut String, line: &DiffLine) {
    let (class, sign) = match line.tag {
        ChangeTag::Insert => ("l add", '+'),
        ChangeTag::Delete => ("l del", '-'),
        ChangeTag::Equal => ("l ctx", ' '),
    };
    let number = |n: Option<usize>| n.map(|n| n.to_string()).unwrap_or_default();
    let _ = writeln!(
        out,
        "<div class=\"{class}\"><span class=\"ln\">{}</span><span class=\"ln\">{}</span><span class=\"c\">{sign}{}</span></div>",
        number(line.old_number),
        number(line.new_number),
        text(&line.text)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_unchanged_runs_fold_and_short_ones_do_not() {
        let lines = |changed: usize| -> Vec<u8> {
            (1..=100)
                .map(|i| if i == changed { "new\n".to_string() } else { format!("{i}\n") })
                .collect::<String>()
                .into_bytes()
        };
        let file = crate::history::export::file_diff(
            "f".into(),
            FileStatus::Modified,
            lines(0),
            lines(50),
        );
        let mut out = String::new();
        file_diff(&mut out, &file);
        // 20 lines of context kept on each side of the change, 3 of them shown.
        assert_eq!(
            out.matches("<details class=\"fold\"><summary>⋯ 17 unchanged lines</summary>").count(),
            2,
            "{out}"
        );
        let shown = |n: usize| format!("<span class=\"c\"> {n}</span>");
        assert!(out.contains(&shown(47)) && out.contains(&shown(53)));
        let file =
            crate::history::export::file_diff("f".into(), FileStatus::Modified, lines(0), lines(3));
        let mut out = String::new();
        file_diff(&mut out, &file);
        assert_eq!(
            out.matches("class=\"fold\"").count(),
            1,
            "only the run after the change: {out}"
        );
    }
}
