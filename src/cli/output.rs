//! Writing command output: plain text, aligned tables, JSON.

use std::io::Write;

/// Writes to stdout. A closed pipe (`porter jobs list | head`) ends the output quietly.
pub fn print(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(anyhow::anyhow!("writing output: {e}"))
        }
        _ => Ok(()),
    }
}

/// Writes one line on stderr, dropping it when stderr is gone (`eprintln!` panics then: a
/// command whose log reader went away would exit 101 instead of its own code).
pub fn eprint_line(text: &str) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{text}");
}

/// Writes a value as one line of JSON, [`json_printable`].
pub fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    let mut line = json_printable(&serde_json::to_string(value)?).into_owned();
    line.push('\n');
    print(&line)
}

/// What [`printable`] writes out (a newline aside): control characters, the marks that
/// reorder text, invisible ones, and Unicode's line and paragraph separators.
fn written_out(c: char) -> bool {
    c.is_control()
        || crate::http::reorders_text(c)
        || crate::http::invisible(c)
        || matches!(c, '\u{2028}' | '\u{2029}')
}

/// Whether [`printable`] writes `c` out where JSON keeps it raw: serde_json escapes only the
/// controls below U+0020.
fn unsafe_in_json(c: char) -> bool {
    c >= '\u{7f}' && written_out(c)
}

/// JSON text made as safe to print on a terminal as [`printable`] makes text: the characters
/// it writes out that JSON keeps raw (DEL and the C1 controls, U+009B among them, which some
/// terminals obey; the marks that reorder text; invisible ones; U+2028 and U+2029) are written
/// as `\uXXXX` escapes, which read back as the same characters. Outside its strings JSON text
/// is ASCII, so each such character is inside a string. (Until 6 Dec `--json` output and JSON
/// logs wrote them raw, where the text output escapes them.)
pub fn json_printable(json: &str) -> std::borrow::Cow<'_, str> {
    if !json.chars().any(unsafe_in_json) {
        return std::borrow::Cow::Borrowed(json);
    }
    let mut out = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        if unsafe_in_json(c) {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// The JSON log's stderr: each event (one write of a whole line) [`json_printable`].
pub struct JsonLogWriter;

impl Write for JsonLogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut err = std::io::stderr().lock();
        match std::str::from_utf8(buf) {
            Ok(text) => err.write_all(json_printable(text).as_bytes())?,
            Err(_) => err.write_all(buf)?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// Text from the database made safe to print on a terminal: a unique key or a job's error
/// can hold escape sequences (from whatever the job failed on) that would recolour, retitle
/// or rewrite the operator's terminal. Control characters, the marks that reorder what is
/// shown ([`crate::http::reorders_text`]), invisible ones ([`crate::http::invisible`]: a
/// name with a zero-width space read as another), and Unicode's line and paragraph separators
/// (U+2028, U+2029: a line break to some pagers) are printed escaped (`\u{1b}`); newlines
/// are kept.
pub fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if written_out(c) && c != '\n' {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

/// [`printable`] for text that must stay on its line (a table cell, a field of `jobs show`):
/// newlines, and Unicode's line and paragraph separators (U+2028, U+2029), are escaped too
/// (`\u{a}`), so a name or key holding one cannot forge a line.
pub fn field(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in printable(text).chars() {
        match c {
            '\n' | '\u{2028}' | '\u{2029}' => out.extend(c.escape_unicode()),
            _ => out.push(c),
        }
    }
    out
}

/// Cuts text to one line of at most `max` characters (runs of whitespace, newlines among
/// them, become one space), printable: for prose, such as an error's message.
pub fn one_line(text: &str, max: usize) -> String {
    cut(
        printable(&text.split_whitespace().collect::<Vec<_>>().join(" ")),
        max,
    )
}

/// [`field`] cut to at most `max` characters, for a name in a list (the command that shows
/// the thing shows its name whole): a carriage return, a tab or a second space is what tells
/// two names apart, so each is written out or kept, and the cut never splits one written out.
pub fn name(text: &str, max: usize) -> String {
    let whole = field(text);
    if whole.chars().count() <= max {
        return whole;
    }
    let mut out = String::new();
    let mut width = 0;
    for c in text.chars() {
        let piece = field(c.encode_utf8(&mut [0; 4]));
        let n = piece.chars().count();
        if width + n > max.saturating_sub(1) {
            break;
        }
        out.push_str(&piece);
        width += n;
    }
    out.push('…');
    out
}

fn cut(text: String, max: usize) -> String {
    if text.chars().count() <= max {
        text
    } else {
        let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
        cut.push('…');
        cut
    }
}

/// The line under a table that says how to list the next page (`--before-id`), when there
/// may be one: the command as given (its filters and limit in `flags`, and the database when
/// the command line named it rather than `DATABASE_URL`), so that running it lists the next
/// page of the same listing. (Until 6 Dec it named the bare command: followed, it listed every
/// state, kind and queue, and without `DATABASE_URL` the default database.)
pub fn more(
    g: &super::GlobalArgs,
    command: &str,
    flags: &[(&str, String)],
    next_before_id: Option<i64>,
) -> String {
    let Some(id) = next_before_id else {
        return String::new();
    };
    let mut line = format!("(more: {command}");
    let from_env = std::env::var("DATABASE_URL").ok();
    let implied = from_env.as_deref().unwrap_or(super::DEFAULT_DATABASE_URL);
    let mut redacted = false;
    // Named when the command line named it, or when it is a relative SQLite file (the default
    // `sqlite://porter.db` among them): run from another directory, the line would open
    // another file (review of 6 Dec).
    let absolute = absolute_sqlite_url(&g.database_url);
    if g.database_url != implied || absolute != g.database_url {
        let url = crate::store::redact_url(&absolute);
        redacted = url.contains("***");
        line.push_str(&format!(" --database-url {}", shell_word(&url)));
    }
    for (flag, value) in flags {
        line.push_str(&format!(" --{flag} {}", shell_word(value)));
    }
    line.push_str(&format!(" --before-id {id})"));
    if redacted {
        line.push_str(" (its password written as ***: give it again, or set DATABASE_URL)");
    }
    field(&line) + "\n"
}

/// A `sqlite:` URL with a relative path, made absolute (its path percent-encoded where porter
/// decodes it), so that the line works from another directory; any other URL as it is.
fn absolute_sqlite_url(url: &str) -> String {
    let Some(path) = crate::store::sqlite_file(url).filter(|p| p.is_relative()) else {
        return url.to_string();
    };
    let Ok(path) = std::path::absolute(&path) else {
        return url.to_string();
    };
    let query = url
        .split_once('?')
        .map_or(String::new(), |(_, q)| format!("?{q}"));
    format!("{}{query}", crate::store::sqlite_url(&path))
}

/// A word as a POSIX shell reads it back: as it is when it holds only characters no shell
/// treats specially, in single quotes otherwise.
fn shell_word(text: &str) -> String {
    let plain = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-./:@=,%+".contains(c));
    if plain {
        text.to_string()
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}

/// A time as the tables show it.
pub fn time(t: Option<chrono::DateTime<chrono::Utc>>) -> String {
    t.map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|| "-".to_string())
}

/// Renders an aligned table: columns padded to their widest cell, numeric columns aligned
/// right; the last column is not padded.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    // Cells come from the database (names another program wrote among them): each stays on
    // its line and cannot drive the terminal.
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|row| row.iter().map(|cell| field(cell)).collect())
        .collect();
    let rows = &rows;
    let cols = headers.len();
    let mut width: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    // A column is numeric (aligned right) when it holds numbers, and "-" for none, only.
    let mut numeric = vec![true; cols];
    let mut any_number = vec![false; cols];
    for row in rows {
        for (i, cell) in row.iter().enumerate().take(cols) {
            width[i] = width[i].max(cell.chars().count());
            let number = cell.parse::<f64>().is_ok();
            any_number[i] |= number;
            numeric[i] &= number || cell == "-";
        }
    }
    for (n, any) in numeric.iter_mut().zip(&any_number) {
        *n &= *any;
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let mut text = String::new();
        for (i, cell) in cells.iter().enumerate() {
            let pad = width[i].saturating_sub(cell.chars().count());
            let last = i + 1 == cols;
            if numeric[i] {
                text.push_str(&" ".repeat(pad));
                text.push_str(cell);
            } else {
                text.push_str(cell);
                if !last {
                    text.push_str(&" ".repeat(pad));
                }
            }
            if !last {
                text.push_str("  ");
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(headers.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align() {
        let t = table(
            &["ID", "KIND", "ERROR"],
            &[
                vec!["7".into(), "fail".into(), "boom".into()],
                vec!["12".into(), "noop".into(), "-".into()],
            ],
        );
        assert_eq!(t, "ID  KIND  ERROR\n 7  fail  boom\n12  noop  -\n");
        let dashes = table(&["ID", "LAST ERROR"], &[vec!["3".into(), "-".into()]]);
        assert_eq!(
            dashes, "ID  LAST ERROR\n 3  -\n",
            "a column of dashes only is text"
        );
    }

    #[test]
    fn terminal_escapes_are_printed_escaped() {
        // The directional marks reorder text too (found by review: left-to-right, right-to-left
        // and Arabic letter marks went out raw).
        assert_eq!(
            printable("k\u{200e}a\u{200f}b\u{61c}c"),
            "k\\u{200e}a\\u{200f}b\\u{61c}c"
        );
        assert_eq!(
            printable("ok\u{1b}[31mred\u{7}\nnext"),
            "ok\\u{1b}[31mred\\u{7}\nnext"
        );
        assert_eq!(printable("\u{202e}olleh"), "\\u{202e}olleh");
        assert_eq!(
            one_line("a\u{1b}]0;title\u{7}", 40),
            "a\\u{1b}]0;title\\u{7}"
        );
        assert_eq!(printable("ключ 🔑"), "ключ 🔑");
    }

    #[test]
    fn a_field_writes_out_every_line_break() {
        // Unicode's line and paragraph separators break lines in editors and pagers too (found
        // by review: a queue named with U+2028 went out raw in `porter stats`).
        assert_eq!(
            field("a\nb\u{2028}c\u{2029}d"),
            "a\\u{a}b\\u{2028}c\\u{2029}d"
        );
    }

    #[test]
    fn names_keep_their_whitespace_and_are_not_cut_inside_an_escape() {
        assert_eq!(name("a\r  b\t", 40), "a\\u{d}  b\\u{9}");
        assert_eq!(name("abcdef", 4), "abc…");
        // `\u{1}` is five characters: two fit in 11, and the cut does not split the third.
        assert_eq!(name("\u{1}\u{1}\u{1}x", 13), "\\u{1}\\u{1}…");
    }

    #[test]
    fn one_line_flattens_and_cuts() {
        assert_eq!(one_line("a\n  b", 10), "a b");
        assert_eq!(one_line("abcdef", 4), "abc…");
    }
}
