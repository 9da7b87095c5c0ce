//! Column alignment with the semantics of Go's `text/tabwriter`, as
//! docker-machine's `ls` used it (`NewWriter(out, 5, 1, 3, ' ', 0)`), so that
//! listings are padded byte for byte like the original's.
//!
//! Text is split into lines at `\n` and lines into cells at `\t`. A cell is
//! *tab-terminated* when a `\t` follows it; the last cell of a line is not and
//! takes no part in alignment. A column block is a run of consecutive lines
//! that all have a tab-terminated cell in that column; its width is the widest
//! cell plus the padding, at least `min_width`. A line without any tab ends
//! all blocks (Go flushes there). Widths count characters, not bytes.

/// Go's `tabwriter` settings (padding character and flags are fixed to `' '` and 0).
#[derive(Debug, Clone, Copy)]
pub struct TabWriter {
    pub min_width: usize,
    pub padding: usize,
}

impl Default for TabWriter {
    /// docker-machine's settings: minimum width 5, padding 3.
    fn default() -> Self {
        TabWriter {
            min_width: 5,
            padding: 3,
        }
    }
}

struct Cell {
    text: String,
    width: usize,
}

impl TabWriter {
    /// Align `text` and return the result.
    pub fn format(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len() * 2);
        let mut segment: Vec<Vec<Cell>> = Vec::new();
        let ends_with_newline = text.ends_with('\n');
        let raw_lines: Vec<&str> = text.split('\n').collect();
        let n = raw_lines.len();
        for (i, raw) in raw_lines.into_iter().enumerate() {
            // The piece after a final newline is empty and is not a line.
            if i + 1 == n && ends_with_newline {
                break;
            }
            let cells: Vec<Cell> = raw
                .split('\t')
                .map(|t| Cell {
                    text: t.to_string(),
                    width: t.chars().count(),
                })
                .collect();
            let single = cells.len() == 1;
            segment.push(cells);
            if single {
                // A line without tabs ends every column block.
                self.flush(&mut segment, &mut out, true);
            }
        }
        self.flush(&mut segment, &mut out, ends_with_newline);
        out
    }

    fn flush(&self, lines: &mut Vec<Vec<Cell>>, out: &mut String, last_newline: bool) {
        if lines.is_empty() {
            return;
        }
        let mut widths = Vec::new();
        self.format_block(lines, 0, lines.len(), &mut widths, out, last_newline);
        lines.clear();
    }

    /// Go's recursive `format`: find the blocks of column `widths.len()` in
    /// `lines[line0..line1]` and print the lines once all widths are known.
    fn format_block(
        &self,
        lines: &[Vec<Cell>],
        mut line0: usize,
        line1: usize,
        widths: &mut Vec<usize>,
        out: &mut String,
        last_newline: bool,
    ) {
        let column = widths.len();
        let mut this = line0;
        while this < line1 {
            if column + 1 >= lines[this].len() {
                this += 1;
                continue;
            }
            // A cell exists in this column: print the lines before the block.
            self.write_lines(lines, line0, this, widths, out, last_newline);
            line0 = this;
            let mut width = self.min_width;
            while this < line1 && column + 1 < lines[this].len() {
                width = width.max(lines[this][column].width + self.padding);
                this += 1;
            }
            widths.push(width);
            self.format_block(lines, line0, this, widths, out, last_newline);
            widths.pop();
            line0 = this;
        }
        self.write_lines(lines, line0, line1, widths, out, last_newline);
    }

    fn write_lines(
        &self,
        lines: &[Vec<Cell>],
        line0: usize,
        line1: usize,
        widths: &[usize],
        out: &mut String,
        last_newline: bool,
    ) {
        for (i, line) in lines.iter().enumerate().take(line1).skip(line0) {
            for (j, c) in line.iter().enumerate() {
                out.push_str(&c.text);
                if j < widths.len() && j + 1 < line.len() {
                    for _ in c.width..widths[j] {
                        out.push(' ');
                    }
                }
            }
            if i + 1 < lines.len() || last_newline {
                out.push('\n');
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tw(s: &str) -> String {
        TabWriter::default().format(s)
    }

    #[test]
    fn pads_columns_like_go() {
        // Expected output computed by Go's text/tabwriter with (5, 1, 3, ' ', 0).
        let got = tw(
            "NAME\tACTIVE\tDRIVER\tSTATE\nab\t-\tnone\tRunning\nlonger-name\t*\tgeneric\tStopped\n",
        );
        assert_eq!(
            got,
            "NAME          ACTIVE   DRIVER    STATE\n\
             ab            -        none      Running\n\
             longer-name   *        generic   Stopped\n"
        );
    }

    #[test]
    fn minimum_width_and_empty_cells() {
        assert_eq!(tw("a\tb\n\t\n"), "a    b\n     \n");
        assert_eq!(tw("x\t\ty\n"), "x         y\n");
    }

    #[test]
    fn a_line_without_tabs_ends_the_block() {
        assert_eq!(
            tw("aaaaaaaa\tb\nplain\nc\td\n"),
            "aaaaaaaa   b\nplain\nc    d\n"
        );
    }

    #[test]
    fn width_counts_characters() {
        assert_eq!(tw("é\tx\nab\ty\n"), "é    x\nab   y\n");
    }

    #[test]
    fn ragged_lines_form_separate_blocks() {
        // The third column exists only in the first line: its block is that line alone.
        assert_eq!(
            tw("a\tbbbbbbbbbb\tc\nd\te\n"),
            "a    bbbbbbbbbb   c\nd    e\n"
        );
    }
}
