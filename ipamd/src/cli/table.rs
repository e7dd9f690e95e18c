//! Plain text tables for the terminal, kubectl-style: a header of capitals, columns padded to
//! their widest cell, two spaces apart.

/// Rows of cells under `header`, padded into columns (the last one unpadded).
#[must_use]
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let columns = header.len();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut text = String::new();
    let header: Vec<String> = header.iter().map(|h| (*h).to_owned()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, cell) in row.iter().take(columns).enumerate() {
            if i + 1 == columns {
                line.push_str(cell);
            } else {
                let pad = widths[i].saturating_sub(cell.chars().count()) + 2;
                line.push_str(cell);
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}

/// `name  value` lines, the names padded to one width.
#[must_use]
pub fn pairs(rows: &[(&str, String)]) -> String {
    let width = rows
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0);
    rows.iter()
        .map(|(k, v)| format!("{k:<width$}  {v}\n"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_line_up_under_the_widest_cell() {
        let text = table(
            &["NAME", "IP"],
            &[
                vec!["a".into(), "10.0.0.5".into()],
                vec!["longer-name".into(), "10.0.0.10".into()],
            ],
        );
        assert_eq!(
            text,
            "NAME         IP\na            10.0.0.5\nlonger-name  10.0.0.10\n"
        );
    }

    #[test]
    fn pairs_pad_their_names() {
        assert_eq!(
            pairs(&[("MODE", "vpc".into()), ("ASSIGNED", "3".into())]),
            "MODE      vpc\nASSIGNED  3\n"
        );
    }
}
