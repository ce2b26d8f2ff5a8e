//! Aligned text tables and fill levels, as every command prints them.

use std::fmt::Write as _;

/// Prints `rows` under `headers`, columns aligned, two spaces apart.
pub(super) fn print_table(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let n = cells.len();
        let mut s = String::new();
        for (i, (c, w)) in cells.into_iter().zip(&widths).enumerate() {
            if i + 1 == n {
                s.push_str(c);
            } else {
                // Writing into a String cannot fail.
                let _ = write!(s, "{c:<w$}  ");
            }
        }
        println!("  {}", s.trim_end());
    };
    line(headers.iter().map(|h| h.to_uppercase()).collect::<Vec<_>>().iter().map(String::as_str).collect());
    for r in rows {
        line(r.iter().map(String::as_str).collect());
    }
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
    use super::fill;

    #[test]
    fn fill_is_a_percentage() {
        assert_eq!(fill(Some(1), 65_536), "<0.1%");
        assert_eq!(fill(Some(0), 1024), "0.0%");
        assert_eq!(fill(Some(512), 1024), "50.0%");
        assert_eq!(fill(Some(3), 4), "75.0%");
        assert_eq!(fill(None, 4), "-");
    }
}
