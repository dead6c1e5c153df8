//! `read_file {path, offset?, limit?}`: numbered lines of a text file.
//!
//! The file is streamed, never loaded whole: lines before `offset` are skipped, a line
//! longer than [`MAX_LINE_CHARS`] is cut (without holding more of it than needed), and the
//! lines after the window are only counted, so the model can page through a file of any
//! size. Binary files are described by their size instead of dumped.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};

use serde_json::json;

use super::args::Args;
use super::paths::Workspace;
use super::{Access, ToolOutput, ToolSpec};

const DEFAULT_LIMIT: u64 = 2000;
const MAX_LINE_CHARS: usize = 2000;
/// At most four bytes per char: enough to show [`MAX_LINE_CHARS`] chars of any line.
const MAX_LINE_BYTES: usize = MAX_LINE_CHARS * 4;
/// The lines shown stop here even before `limit`, at a line boundary.
const MAX_OUTPUT_BYTES: usize = 100 * 1024;
/// How much of a file is examined to tell text from binary.
pub(super) const SNIFF_BYTES: usize = 8 * 1024;

pub(super) fn spec() -> ToolSpec {
    ToolSpec {
        name: "read_file",
        description: "Read a text file of the workspace. Returns numbered lines (line number, tab, text). \
            Reads up to `limit` lines (default 2000) from line `offset` (1-based, default 1); \
            says how many lines remain so you can read on with a larger offset. \
            Lines longer than 2000 characters are cut. Binary files are described, not shown.",
        parameters: json!({
            "type": "object",
            "properties": {
                "path": {"type": "string", "description": "File path relative to the workspace root"},
                "offset": {"type": "integer", "minimum": 1, "description": "First line to read, 1-based (default 1)"},
                "limit": {"type": "integer", "minimum": 1, "description": "Maximum number of lines (default 2000)"}
            },
            "required": ["path"]
        }),
        access: Access::Read,
    }
}

pub(super) fn run(args: &Args, workspace: &Workspace) -> Result<ToolOutput, String> {
    let path = args.string("path")?;
    let offset = args.opt_u64("offset")?.unwrap_or(1).max(1);
    let limit = args.opt_u64("limit")?.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 {
        return Err("`limit` must be at least 1".to_string());
    }
    let target = workspace.resolve(&path)?;
    let shown = target.display();
    let metadata = std::fs::metadata(&target.abs).map_err(|err| match err.kind() {
        io::ErrorKind::NotFound => format!("`{shown}` does not exist; use glob to find files"),
        _ => format!("cannot read `{shown}`: {err}"),
    })?;
    if metadata.is_dir() {
        return Err(format!("`{shown}` is a directory; use glob to list its files"));
    }
    if !metadata.is_file() {
        // Reading a FIFO or a device could block forever or never end.
        return Err(format!("`{shown}` is not a regular file"));
    }
    let size = metadata.len();
    let read_error = |err: io::Error| format!("cannot read `{shown}`: {err}");
    let mut file = File::open(&target.abs).map_err(read_error)?;
    let mut sample = Vec::with_capacity(SNIFF_BYTES);
    file.by_ref().take(SNIFF_BYTES as u64).read_to_end(&mut sample).map_err(read_error)?;
    if looks_binary(&sample) {
        return Ok(ToolOutput::text(format!(
            "`{shown}` is a binary file, {size} bytes; not shown"
        )));
    }
    if size == 0 {
        return Ok(ToolOutput::text(format!("`{shown}` is empty (0 bytes)")));
    }
    let mut reader = BufReader::new(io::Cursor::new(sample).chain(file));
    let page = read_page(&mut reader, offset, limit).map_err(read_error)?;

    if page.first > page.total_lines {
        return Err(format!(
            "`{shown}` has {} lines; offset {offset} is past the end",
            page.total_lines
        ));
    }
    let mut content = page.text;
    if page.lossy {
        content.push_str("(the file is not valid UTF-8; invalid bytes are shown as \u{FFFD})\n");
    }
    let remaining = page.total_lines - page.last;
    if remaining > 0 {
        let capped = if page.last - page.first + 1 < limit {
            format!("output capped at {} KiB; ", MAX_OUTPUT_BYTES / 1024)
        } else {
            String::new()
        };
        content.push_str(&format!(
            "… {capped}{remaining} more lines; use offset={} to read on\n",
            page.last + 1
        ));
    }
    Ok(ToolOutput::text(content))
}

/// The lines of one read.
struct Page {
    text: String,
    /// First and last line shown (1-based; `last` is `first - 1` when none was).
    first: u64,
    last: u64,
    total_lines: u64,
    lossy: bool,
}

fn read_page(reader: &mut impl BufRead, offset: u64, limit: u64) -> io::Result<Page> {
    let mut page =
        Page { text: String::new(), first: offset, last: offset - 1, total_lines: 0, lossy: false };
    let mut line = Vec::new();
    let mut taking = true;
    while let Some(length) = read_line_capped(reader, MAX_LINE_BYTES, &mut line)? {
        page.total_lines += 1;
        let number = page.total_lines;
        if number < offset || !taking {
            continue;
        }
        if number - offset >= limit || page.text.len() >= MAX_OUTPUT_BYTES {
            taking = false;
            continue;
        }
        let (text, lossy) = render_line(&line, length);
        page.lossy |= lossy;
        page.text.push_str(&format!("{number:>6}\t{text}\n"));
        page.last = number;
    }
    Ok(page)
}

/// Reads one line (without its `\n`) into `line`, keeping at most `cap` bytes of it.
/// Returns the line's full length in bytes, or `None` at the end of the input.
fn read_line_capped(
    reader: &mut impl BufRead,
    cap: usize,
    line: &mut Vec<u8>,
) -> io::Result<Option<u64>> {
    line.clear();
    let mut length = 0u64;
    let mut started = false;
    loop {
        let buffer = reader.fill_buf()?;
        if buffer.is_empty() {
            return Ok(started.then_some(length));
        }
        started = true;
        let newline = buffer.iter().position(|&b| b == b'\n');
        let chunk = &buffer[..newline.unwrap_or(buffer.len())];
        let room = cap.saturating_sub(line.len()).min(chunk.len());
        line.extend_from_slice(&chunk[..room]);
        length += chunk.len() as u64;
        let consumed = chunk.len() + usize::from(newline.is_some());
        reader.consume(consumed);
        if newline.is_some() {
            return Ok(Some(length));
        }
    }
}

/// One line as shown: decoded (lossily, saying so), without a `\r` before its end, and cut
/// at [`MAX_LINE_CHARS`] with a marker stating its full length.
fn render_line(bytes: &[u8], length: u64) -> (String, bool) {
    let (text, lossy) = match std::str::from_utf8(bytes) {
        Ok(text) => (text.to_string(), false),
        // A char cut by the byte cap is not an encoding problem.
        Err(err) if err.error_len().is_none() && (bytes.len() as u64) < length => {
            (String::from_utf8_lossy(&bytes[..err.valid_up_to()]).into_owned(), false)
        }
        Err(_) => (String::from_utf8_lossy(bytes).into_owned(), true),
    };
    let text = text.strip_suffix('\r').map(str::to_string).unwrap_or(text);
    match text.char_indices().nth(MAX_LINE_CHARS) {
        Some((cut, _)) => (format!("{} [… line cut; {length} bytes in all]", &text[..cut]), lossy),
        None if (bytes.len() as u64) < length => {
            (format!("{text} [… line cut; {length} bytes in all]"), lossy)
        }
        None => (text, lossy),
    }
}

/// Whether the first bytes of a file say it is binary: a NUL byte, or so much invalid
/// UTF-8 and control bytes that it is not text in a legacy encoding (a Latin-1 comment in
/// otherwise ASCII source still counts as text).
pub(super) fn looks_binary(sample: &[u8]) -> bool {
    if sample.contains(&0) {
        return true;
    }
    match std::str::from_utf8(sample) {
        Ok(_) => false,
        // Only a char cut at the end of the sample.
        Err(err) if err.error_len().is_none() => false,
        Err(_) => {
            let texty =
                sample.iter().filter(|b| b.is_ascii_graphic() || b.is_ascii_whitespace()).count();
            texty * 10 < sample.len() * 9
        }
    }
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::path::Path;

    use super::*;

    fn read(root: &Path, arguments: serde_json::Value) -> Result<String, String> {
        let workspace = Workspace::new(root).unwrap();
        run(&Args::parse(&arguments).unwrap(), &workspace).map(|out| {
            assert!(!out.is_error && out.changed_paths.is_empty() && !out.may_change_anything);
            out.content
        })
    }

    fn numbered(lines: std::ops::RangeInclusive<u64>) -> String {
        lines.map(|n| format!("{n:>6}\tline {n}\n")).collect()
    }

    fn write_lines(root: &Path, name: &str, count: u64) {
        let text: String = (1..=count).map(|n| format!("line {n}\n")).collect();
        fs::write(root.join(name), text).unwrap();
    }

    #[test]
    fn shows_numbered_lines() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("a.txt"), "first\r\n\tsecond\n\nlast without newline").unwrap();
        let out = read(dir.path(), json!({"path": "a.txt"})).unwrap();
        assert_eq!(
            out,
            "     1\tfirst\n     2\t\tsecond\n     3\t\n     4\tlast without newline\n"
        );
    }

    #[test]
    fn pages_with_offset_and_limit_and_says_what_remains() {
        let dir = tempfile::tempdir().unwrap();
        write_lines(dir.path(), "a.txt", 10);
        let out = read(dir.path(), json!({"path": "a.txt", "offset": 3, "limit": 4})).unwrap();
        assert_eq!(out, numbered(3..=6) + "… 4 more lines; use offset=7 to read on\n");
        let out = read(dir.path(), json!({"path": "a.txt", "offset": 7})).unwrap();
        assert_eq!(out, numbered(7..=10));
        let err = read(dir.path(), json!({"path": "a.txt", "offset": 11})).unwrap_err();
        assert_eq!(err, "`a.txt` has 10 lines; offset 11 is past the end");
        let err = read(dir.path(), json!({"path": "a.txt", "limit": 0})).unwrap_err();
        assert!(err.contains("`limit` must be at least 1"));
    }

    #[test]
    fn default_limit_is_2000_lines() {
        let dir = tempfile::tempdir().unwrap();
        write_lines(dir.path(), "a.txt", 2500);
        let out = read(dir.path(), json!({"path": "a.txt"})).unwrap();
        assert!(out.starts_with(&numbered(1..=3)));
        assert!(out.ends_with(
            &(numbered(2000..=2000) + "… 500 more lines; use offset=2001 to read on\n")
        ));
    }

    #[test]
    fn output_is_capped_at_a_line_boundary() {
        let dir = tempfile::tempdir().unwrap();
        let line = "x".repeat(1000);
        fs::write(dir.path().join("wide.txt"), format!("{line}\n").repeat(500)).unwrap();
        let out = read(dir.path(), json!({"path": "wide.txt"})).unwrap();
        let shown = out.lines().filter(|l| l.ends_with(&line)).count() as u64;
        assert!(out.len() < MAX_OUTPUT_BYTES + 2000);
        assert!(
            out.ends_with(&format!(
                "… output capped at 100 KiB; {} more lines; use offset={} to read on\n",
                500 - shown,
                shown + 1
            )),
            "{}",
            &out[out.len() - 200..]
        );
    }

    #[test]
    fn long_lines_are_cut_with_a_marker() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("min.js"), format!("{}\nshort\n", "é".repeat(100_000))).unwrap();
        let out = read(dir.path(), json!({"path": "min.js"})).unwrap();
        let first = out.lines().next().unwrap();
        assert_eq!(
            first,
            format!("     1\t{} [… line cut; 200000 bytes in all]", "é".repeat(2000))
        );
        assert!(out.ends_with("     2\tshort\n"));
    }

    #[test]
    fn binary_files_are_described_not_dumped() {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = b"\x7fELF".to_vec();
        bytes.extend((0..12_341u32).map(|i| (i * 7 % 256) as u8));
        fs::write(dir.path().join("a.out"), &bytes).unwrap();
        let out = read(dir.path(), json!({"path": "a.out"})).unwrap();
        assert_eq!(out, "`a.out` is a binary file, 12345 bytes; not shown");
        // No NUL, but mostly invalid UTF-8.
        let noise: Vec<u8> = (0..4096u32).map(|i| 0x80 + (i % 100) as u8).collect();
        fs::write(dir.path().join("noise"), &noise).unwrap();
        assert!(
            read(dir.path(), json!({"path": "noise"})).unwrap().contains("binary file, 4096 bytes")
        );
    }

    #[test]
    fn latin1_text_is_shown_and_flagged() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("old.c"), b"/* caf\xe9 */\nint x;\n").unwrap();
        let out = read(dir.path(), json!({"path": "old.c"})).unwrap();
        assert!(out.starts_with("     1\t/* caf\u{FFFD} */\n     2\tint x;\n"), "{out}");
        assert!(out.contains("not valid UTF-8"));
    }

    #[test]
    fn directories_missing_files_and_escapes_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("src")).unwrap();
        fs::write(dir.path().join("empty"), "").unwrap();
        assert_eq!(
            read(dir.path(), json!({"path": "empty"})).unwrap(),
            "`empty` is empty (0 bytes)"
        );
        assert_eq!(
            read(dir.path(), json!({"path": "src"})).unwrap_err(),
            "`src` is a directory; use glob to list its files"
        );
        assert!(
            read(dir.path(), json!({"path": "nope.rs"})).unwrap_err().contains("does not exist")
        );
        assert!(
            read(dir.path(), json!({"path": "../x"}))
                .unwrap_err()
                .contains("outside the workspace")
        );
        assert!(read(dir.path(), json!({})).unwrap_err().contains("missing required field `path`"));
    }

    #[test]
    fn fifos_are_refused_instead_of_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("pipe");
        let status = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
        assert!(status.success());
        assert_eq!(
            read(dir.path(), json!({"path": "pipe"})).unwrap_err(),
            "`pipe` is not a regular file"
        );
    }
}
