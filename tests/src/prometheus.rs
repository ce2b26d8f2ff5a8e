//! A reader for the metrics text the daemon serves: `OpenMetrics` (what `prometheus-client`
//! writes), which also reads the older Prometheus text format (0.0.4).

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail};

/// One sample of a Prometheus text exposition.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// The value as written.
    pub value: String,
}

impl Sample {
    /// The value as an integer (counters and gauges here are whole numbers).
    pub fn as_u64(&self) -> Option<u64> {
        self.value.parse().ok()
    }
}

/// A parsed metrics exposition (`OpenMetrics` or Prometheus text).
#[derive(Debug, Clone, Default)]
pub struct Exposition {
    pub samples: Vec<Sample>,
    /// `# HELP` and `# TYPE` by family name.
    pub help: BTreeMap<String, String>,
    pub types: BTreeMap<String, String>,
}

impl Exposition {
    pub fn parse(text: &str) -> Result<Exposition> {
        let mut e = Exposition::default();
        for (i, line) in text.lines().enumerate() {
            let ctx = || format!("line {}: {line:?}", i + 1);
            if line.trim().is_empty() {
                continue;
            }
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
                e.help.insert(name.to_owned(), help.to_owned());
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').with_context(ctx)?;
                e.types.insert(name.to_owned(), kind.to_owned());
                // An OpenMetrics counter family `x` has the samples `x_total`: they are typed
                // (and helped) under that name too, so a sample's name finds its family.
                if kind == "counter" && !name.ends_with("_total") {
                    e.types.insert(format!("{name}_total"), kind.to_owned());
                    if let Some(h) = e.help.get(name).cloned() {
                        e.help.insert(format!("{name}_total"), h);
                    }
                }
            } else if line.starts_with('#') {
            } else {
                e.samples.push(parse_sample(line).with_context(ctx)?);
            }
        }
        Ok(e)
    }

    /// Every sample of family `name`.
    pub fn family(&self, name: &str) -> Vec<&Sample> {
        self.samples.iter().filter(|s| s.name == name).collect()
    }

    /// The one sample of `name` whose labels are exactly `labels`.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<&Sample> {
        let want: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        self.samples
            .iter()
            .find(|s| s.name == name && s.labels == want)
    }

    /// As [`Exposition::get`], the value as an integer.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<u64> {
        self.get(name, labels).and_then(Sample::as_u64)
    }
}

/// `name{k="v",...} value` (no timestamp), label values unescaped.
fn parse_sample(line: &str) -> Result<Sample> {
    let name_end = line.find(['{', ' ']).context("no value")?;
    let name = line[..name_end].to_owned();
    let mut labels = BTreeMap::new();
    let mut rest = &line[name_end..];
    if let Some(inner) = rest.strip_prefix('{') {
        let mut chars = inner.char_indices().peekable();
        let end = loop {
            let Some(&(start, c)) = chars.peek() else {
                bail!("unterminated labels")
            };
            if c == '}' {
                break start + 1;
            }
            let mut key = String::new();
            for (_, c) in chars.by_ref() {
                if c == '=' {
                    break;
                }
                key.push(c);
            }
            if chars.next().map(|(_, c)| c) != Some('"') {
                bail!("label {key}: value not quoted");
            }
            let mut value = String::new();
            let mut closed = false;
            while let Some((_, c)) = chars.next() {
                match c {
                    '\\' => match chars.next().map(|(_, c)| c) {
                        Some('n') => value.push('\n'),
                        Some(c) => value.push(c),
                        None => bail!("dangling escape"),
                    },
                    '"' => {
                        closed = true;
                        break;
                    }
                    c => value.push(c),
                }
            }
            if !closed {
                bail!("label {key}: unterminated value");
            }
            labels.insert(key.trim().to_owned(), value);
            if let Some(&(_, ',')) = chars.peek() {
                chars.next();
            }
        };
        rest = &inner[end..];
    }
    let value = rest.trim();
    if value.is_empty() || value.contains(' ') {
        bail!("expected one value, got {value:?}");
    }
    Ok(Sample {
        name,
        labels,
        value: value.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_samples_with_labels_and_escapes() {
        let text = "# HELP a_total Things.\n# TYPE a_total counter\n\
                    a_total{x=\"1\",y=\"q\\\"\\\\z\"} 7\nb 0\n";
        let e = Exposition::parse(text).unwrap();
        assert_eq!(e.types["a_total"], "counter");
        assert_eq!(e.help["a_total"], "Things.");
        assert_eq!(e.value("a_total", &[("x", "1"), ("y", "q\"\\z")]), Some(7));
        assert_eq!(e.value("b", &[]), Some(0));
        assert_eq!(e.value("a_total", &[("x", "1")]), None);
    }

    #[test]
    fn openmetrics_counters_are_typed_under_their_samples_name() {
        let text = "# HELP c Things.\n# TYPE c counter\nc_total{x=\"1\"} 3\n# HELP g Level.\n# TYPE g gauge\ng 2\n# EOF\n";
        let e = Exposition::parse(text).unwrap();
        assert_eq!((e.types["c_total"].as_str(), e.help["c_total"].as_str()), ("counter", "Things."));
        assert_eq!((e.types.get("g_total"), e.value("g", &[])), (None, Some(2)));
        assert_eq!(e.value("c_total", &[("x", "1")]), Some(3));
        assert_eq!(e.samples.len(), 2);
    }
}
