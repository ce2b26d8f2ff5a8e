//! Aligned text tables and fill levels, as every command prints them.

/// Prints `rows` under `headers`, columns aligned, two spaces apart.
pub(super) fn print_table(headers: &[&str], rows: &[Vec<String>]) {
    print!("{}", format_table(headers, rows));
}

/// `rows` under upper-cased `headers`: columns aligned two spaces apart (tabled, no borders),
/// each line indented by two and without trailing blanks.
fn format_table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut b = tabled::builder::Builder::default();
    b.push_record(headers.iter().map(|h| h.to_uppercase()));
    for r in rows {
        b.push_record(r.iter().cloned());
    }
    let table = b.build().with(tabled::settings::Style::empty()).with(tabled::settings::Padding::new(0, 2, 0, 0)).to_string();
    let mut out = String::new();
    for l in table.lines() {
        out.push_str("  ");
        out.push_str(l.trim_end());
        out.push('\n');
    }
    out
}

/// `a, b, c`.
pub(super) fn list<T: std::fmt::Display>(items: &[T]) -> String {
    items.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

/// `entries / max` as a percentage with one decimal.
pub(super) fn fill(entries: Option<u64>, max: u32) -> String {
    match entries {
        Some(e) if max > 0 => {
            let permille = e.saturating_mul(1000) / u64::from(max);
            if e > 0 && permille == 0 {
                "<0.1%".to_owned()
            } else {
                format!("{}.{}%", permille / 10, permille % 10)
            }
        }
        _ => "-".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::{fill, format_table};

    #[test]
    fn tables_align_columns_two_spaces_apart() {
        let rows = vec![vec!["pp1".to_owned(), "12".to_owned(), "up".to_owned()], vec!["member-two".to_owned(), "3".to_owned(), "down".to_owned()]];
        assert_eq!(format_table(&["port pair", "packets", "state"], &rows), "  PORT PAIR   PACKETS  STATE\n  pp1         12       up\n  member-two  3        down\n");
        assert_eq!(format_table(&["a"], &[]), "  A\n");
    }

    #[test]
    fn fill_is_a_percentage() {
        assert_eq!(fill(Some(1), 65_536), "<0.1%");
        assert_eq!(fill(Some(0), 1024), "0.0%");
        assert_eq!(fill(Some(512), 1024), "50.0%");
        assert_eq!(fill(Some(3), 4), "75.0%");
        assert_eq!(fill(None, 4), "-");
    }
}
