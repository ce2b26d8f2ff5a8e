//! The node tree straight from the YAML parser's events, for the documents chain files are.
//!
//! serde-saphyr parses with granit-parser and then deserializes every node through its
//! `Spanned` wrapper; for a file of 100,000 classifiers that took most of reading it, the
//! parser's own scanning about a quarter (BENCHMARKS.md, "Reading the file from the parser's
//! events"). This builds the same tree from the same parser's
//! events: the same parser options, the same positions (each node's event span, as serde-saphyr
//! turns it into a location), and plain scalars resolved by serde-saphyr's rules for an untyped
//! value: null (`~`, `null`, empty), a YAML 1.1 boolean (`yes`, `on`, ...), an integer, a float,
//! else a string. The spellings only its number parsers can settle (signs, dots, radix prefixes,
//! exponents) are handed to serde-saphyr one scalar at a time, so the answer is its own.
//!
//! Anything else returns `None`, and the caller parses the whole text with serde-saphyr, whose
//! tree or error message is then the one given: a tag, an anchor, an alias, a merge key (`<<`),
//! a `%YAML` directive, a second document, a mapping or list used as a key, a syntax error, or a
//! document near one of the limits of serde-saphyr's budget (depth, nodes, scalar bytes).

use granit_parser::{Event, Parser, ScalarStyle, Span};

use super::node::{At, Node};

/// Nesting past which the document goes to serde-saphyr (its budget's limit is 64).
const MAX_DEPTH: usize = 48;
/// Scalar bytes past which the document goes to serde-saphyr (its budget's limit is 64 MiB).
const MAX_SCALAR_BYTES: usize = 32 << 20;

/// Where a node is, from its event's span, as serde-saphyr's `location_from_span` has it.
struct Loc {
    line: u32,
    offset: Option<u64>,
    span: Option<(u64, u64)>,
}

impl Loc {
    fn of(span: &Span) -> Self {
        let line = u32::try_from(span.start.line()).unwrap_or(0);
        // serde-saphyr leaves byte positions out past 4 GiB.
        let bytes = span.start.byte_offset().zip(span.end.byte_offset()).and_then(|(start, end)| {
            let len = end.saturating_sub(start);
            Some((u64::from(u32::try_from(start).ok()?), u64::from(u32::try_from(len).ok()?)))
        });
        Loc { line, offset: bytes.map(|(start, _)| start), span: bytes }
    }

    fn at(self, value: Node) -> At<Node> {
        At { value, line: self.line, offset: self.offset, span: self.span }
    }
}

/// An open list or mapping: where its items (entries) start in the shared stack of them, and
/// for a mapping a key waiting for its value. A container's items are moved out of the stack
/// into a list of their exact number when it ends: a list grown item by item ends with up to
/// twice the room it needs (a classifier's five entries in room for eight), and the tree of a
/// file of 100,000 classifiers is hundreds of megabytes while it is read.
enum Frame {
    Seq(usize, Loc),
    Map(usize, Option<At<Node>>, Loc),
}

/// The document's tree, or `None`: serde-saphyr must read this text (see the module comment).
/// `alone` resolves one plain scalar by serde-saphyr's rules; `max_nodes` is its budget's.
pub(super) fn tree(text: &str, max_nodes: usize, alone: impl Fn(&str) -> Option<Node>) -> Option<At<Node>> {
    // serde-saphyr's parser options under the budget `config::parse` gives it.
    let options = granit_parser::options! {
        simple_key_max_lookahead: 1024,
        flow_nesting_limit: 255,
        block_nesting_limit: 255,
        emit_comments: false,
    };
    let mut stack: Vec<Frame> = Vec::new();
    let mut items: Vec<At<Node>> = Vec::new();
    let mut entries: Vec<(At<Node>, At<Node>)> = Vec::new();
    let mut root = None;
    let (mut documents, mut nodes, mut scalar_bytes) = (0usize, 0usize, 0usize);
    for event in Parser::new_from_str_with_options(text, options) {
        let (event, span) = event.ok()?;
        let node = match event {
            Event::StreamStart | Event::StreamEnd | Event::DocumentEnd => continue,
            Event::DocumentStart(_, version) => {
                documents += 1;
                if documents > 1 || version.is_some() {
                    return None;
                }
                continue;
            }
            Event::Scalar(v, style, anchor, tag) => {
                if anchor != 0 || tag.is_some() || v == "<<" {
                    return None;
                }
                nodes += 1;
                scalar_bytes += v.len();
                let value = if style == ScalarStyle::Plain { plain(&v, &alone)? } else { Node::Str(v.into_owned()) };
                Loc::of(&span).at(value)
            }
            Event::SequenceStart(_, anchor, tag) => {
                if anchor != 0 || tag.is_some() {
                    return None;
                }
                nodes += 1;
                stack.push(Frame::Seq(items.len(), Loc::of(&span)));
                if stack.len() > MAX_DEPTH {
                    return None;
                }
                continue;
            }
            Event::MappingStart(_, anchor, tag) => {
                if anchor != 0 || tag.is_some() {
                    return None;
                }
                nodes += 1;
                stack.push(Frame::Map(entries.len(), None, Loc::of(&span)));
                if stack.len() > MAX_DEPTH {
                    return None;
                }
                continue;
            }
            Event::SequenceEnd => match stack.pop()? {
                Frame::Seq(start, loc) => loc.at(Node::Seq(items.drain(start..).collect())),
                Frame::Map(..) => return None,
            },
            Event::MappingEnd => match stack.pop()? {
                Frame::Map(start, None, loc) => loc.at(Node::Map(entries.drain(start..).collect())),
                Frame::Map(_, Some(_), _) | Frame::Seq(..) => return None,
            },
            // Aliases, anchors' names, comments: serde-saphyr's.
            _ => return None,
        };
        if nodes.saturating_add(16) > max_nodes || scalar_bytes > MAX_SCALAR_BYTES {
            return None;
        }
        match stack.last_mut() {
            None if root.is_none() => root = Some(node),
            None => return None,
            Some(Frame::Seq(..)) => items.push(node),
            Some(Frame::Map(_, key, _)) => match key.take() {
                Some(k) => entries.push((k, node)),
                None if matches!(node.value, Node::Seq(_) | Node::Map(_)) => return None,
                None => *key = Some(node),
            },
        }
    }
    if documents == 1 && stack.is_empty() { root } else { None }
}

/// A plain scalar's value by serde-saphyr's rules for an untyped value (`deserialize_any`, with
/// `config::parse`'s options: YAML 1.1 booleans, no legacy octal); `None` when `alone` cannot
/// settle it.
fn plain(v: &str, alone: &impl Fn(&str) -> Option<Node>) -> Option<Node> {
    if matches!(v, "" | "~" | "null" | "Null" | "NULL") {
        return Some(Node::Null);
    }
    if let Some(b) = yaml11_bool(v) {
        return Some(Node::Bool(b));
    }
    let b = v.as_bytes();
    // Every integer and float spelling starts with a digit, a sign or a dot (Rust's float
    // parser also takes `inf` and `nan`, which serde-saphyr refuses as not finite and keeps as
    // strings): anything else is a string.
    if !matches!(b.first(), Some(b'0'..=b'9' | b'+' | b'-' | b'.')) {
        return Some(Node::Str(v.to_owned()));
    }
    // Decimal digits, no leading zero: an integer; 19 digits always fit the u64 it reads.
    if b.len() <= 19 && b.iter().all(u8::is_ascii_digit) && (b.len() == 1 || b[0] != b'0') {
        return v.parse::<u64>().ok().map(|n| Node::Int(n.into()));
    }
    // Numbers are written with letters, digits, `_`, signs and at most one dot: an address
    // (`10.0.0.1`), a prefix (`10.0.0.0/8`), a time (`12:30`) is a string.
    let numeric = |c: &u8| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'+' | b'-' | b'.');
    if v.find('.') != v.rfind('.') || !b.iter().all(numeric) {
        return Some(Node::Str(v.to_owned()));
    }
    // After its sign a number goes on with a digit or a dot (`-inf` is a string, as above).
    // What is left is, alone, again one plain scalar, which serde-saphyr reads as it would here.
    let unsigned = v.strip_prefix(['+', '-']).unwrap_or(v).as_bytes();
    if !matches!(unsigned.first(), Some(b'0'..=b'9' | b'.')) {
        return Some(Node::Str(v.to_owned()));
    }
    alone(v).filter(|n| !matches!(n, Node::Seq(_) | Node::Map(_)))
}

/// serde-saphyr's `parse_yaml11_bool` (the value is a plain scalar: no padding to trim).
fn yaml11_bool(v: &str) -> Option<bool> {
    let is = |w: &str| v.eq_ignore_ascii_case(w);
    if is("true") || is("yes") || is("y") || is("on") {
        Some(true)
    } else if is("false") || is("no") || is("n") || is("off") {
        Some(false)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn saphyr(text: &str) -> Result<At<Node>, String> {
        serde_saphyr::from_str_with_options(text, super::super::saphyr_options()).map_err(|e| e.to_string())
    }

    fn fast(text: &str) -> Option<At<Node>> {
        tree(text, super::super::MAX_NODES, |v| serde_saphyr::from_str_with_options(v, super::super::saphyr_options()).ok())
    }

    /// The first difference between two trees (value, kind, line, byte position), as a path.
    fn differ(a: &At<Node>, b: &At<Node>, path: &str) -> Option<String> {
        if (a.line, a.offset, a.span) != (b.line, b.offset, b.span) {
            return Some(format!("{path}: at line {} {:?} {:?}, serde-saphyr: line {} {:?} {:?}", a.line, a.offset, a.span, b.line, b.offset, b.span));
        }
        let scalar = |n: &Node| match n {
            Node::Float(f) => format!("Float({:?})", f.to_bits()),
            Node::Seq(_) | Node::Map(_) => n.kind().to_owned(),
            other => format!("{other:?}"),
        };
        match (&a.value, &b.value) {
            (Node::Seq(x), Node::Seq(y)) if x.len() == y.len() => x.iter().zip(y).enumerate().find_map(|(i, (p, q))| differ(p, q, &format!("{path}[{i}]"))),
            (Node::Map(x), Node::Map(y)) if x.len() == y.len() => x.iter().zip(y).enumerate().find_map(|(i, ((k1, v1), (k2, v2)))| {
                differ(k1, k2, &format!("{path}.key{i}")).or_else(|| differ(v1, v2, &format!("{path}.{i}")))
            }),
            (x, y) if scalar(x) == scalar(y) && !matches!(x, Node::Seq(_) | Node::Map(_)) => None,
            (x, y) => Some(format!("{path}: {} here, serde-saphyr: {}", scalar(x), scalar(y))),
        }
    }

    /// `text` is read by the event path to the tree serde-saphyr gives; or, only where
    /// serde-saphyr refuses it, left to serde-saphyr (whose error `parse` then reports).
    fn same(text: &str) {
        match (fast(text), saphyr(text)) {
            (Some(ours), Ok(theirs)) => {
                if let Some(d) = differ(&ours, &theirs, "") {
                    panic!("{d}\nin:\n{text}");
                }
            }
            (Some(_), Err(e)) => panic!("read by events, but serde-saphyr refuses it ({e}):\n{text}"),
            (None, Ok(_)) => panic!("left to serde-saphyr, which reads it:\n{text}"),
            (None, Err(_)) => {}
        }
    }

    #[test]
    fn scalars_resolve_as_serde_saphyr_resolves_them() {
        // Every spelling on its own line, in a block list, a flow list and as a mapping's key
        // and value: nulls, YAML 1.1 booleans, integers of every radix, signs and
        // underscores, floats and their non-finite forms, leading zeros, addresses, prefixes,
        // times, words that Rust's float parser reads (inf, nan), and strings.
        let words = [
            "", "~", "null", "Null", "NULL", "nULL", "true", "True", "TRUE", "tRuE", "false", "yes", "Yes", "no", "NO", "y", "Y", "n", "N", "on",
            "On", "off", "OFF", "0", "00", "007", "10", "-10", "+10", "-0", "+0", "1_000", "1__0", "_1", "1_", "0x1F", "0X1F", "0o17", "0O17",
            "0b101", "0B101", "0x", "0xg", "-0x10", "+0b1", "18446744073709551615", "18446744073709551616", "9223372036854775807",
            "-9223372036854775808", "-9223372036854775809", "99999999999999999999", "1.5", "-1.5", "+1.5", ".5", "5.", "1e5", "1E5", "1e-5",
            "1.5e+3", "1e999", "-1e999", ".inf", ".Inf", ".INF", "-.inf", "+.inf", ".nan", ".NaN", "-.nan", "+.NAN", "inf", "-inf", "nan", "NaN",
            "infinity", "1.2.3", "10.0.0.1", "10.0.0.0/8", "2001:db8::1/64", "::1", "12:30", "1:20:30", "1-2", "1+2", "-", "+", ".", "..",
            "-.", "+.", "e5", "1e", "1e+", "0.0.0.0/0", "udp", "tcp", "IPv4", "fc-1", "a b", "a  b", "über", "1 2", "-5 x", "v1.2",
        ];
        for w in words {
            let w = if w.is_empty() { String::new() } else { w.to_owned() };
            same(&format!("k: {w}\n"));
            if !w.is_empty() && w != "-" {
                same(&format!("- {w}\n- x\n"));
                same(&format!("[{w}, x]\n"));
                same(&format!("{w}: v\n"));
            }
        }
    }

    #[test]
    fn structure_and_positions_are_serde_saphyr_s() {
        let docs = [
            "port_pairs:\n  - name: pp1\n    ingress: a\n    egress: b\n  - {name: pp2, ingress: c, egress: d}\n",
            "# a comment\nport_pairs: # after\n  - name: pp1 # and here\n\n    ingress: 'a b'\n    egress: \"c\\td\"\n",
            "k: |\n  line one\n  line two\nm: >\n  folded\n  text\n\nn: |-\n  kept\n",
            "k: a plain\n  scalar over\n  three lines\nn: 'single\n  quoted'\n",
            "k:\n  - [1, [2, 3], {a: b}]\n  - {}\n  - []\n",
            "a: 1\na: 2\n",
            "? complex\n: value\n",
            "k: \"\\u00fc\\x41\"\nü: ü\n",
            "a: 1\r\nb:\r\n  - 2\r\n",
            "\u{feff}a: 1\n",
            "---\na: 1\n",
            "---\na: 1\n...\n",
            "{\"port_pairs\": [{\"name\": \"pp1\", \"ingress\": \"a\", \"egress\": \"b\", \"weight\": 2}], \"x\": null, \"y\": true}\n",
            "a:\n\tb\n",
            "  a: 1\n  b: 2\n",
            "- a\n- - b\n  - c\n",
            "a: 1 # trailing\n# only a comment\n",
            "{a, b: , c: ~}\n",
            "[a: b, c]\n",
            "? a\n? b\n: c\n",
            "~: v\nnull: w\n",
            "k: ''\nl: \"\"\nm: 'null'\nn: \"5\"\no: \"yes\"\np: '1.5'\n",
            "k: |\n  5\nl: >-\n  true\n",
            "k: [a,\n  # inside\n  b]\n",
            "just a scalar\n",
            "- 1\n- -2\n- 3.0\n",
        ];
        for d in docs {
            same(d);
        }
    }

    #[test]
    fn the_repository_s_chain_files_and_fixtures_are_read_by_events() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut files = vec![root.join("deploy/debian/chains.yaml"), root.join("deploy/grafana/sfc.yaml"), root.join("deploy/grafana/sfc.json")];
        let neutron = root.join("sfc-user/tests/neutron");
        for dir in [neutron.clone(), neutron.join("api-ref")] {
            for e in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
                let p = e.expect("a directory entry").path();
                if p.extension().is_some_and(|x| x == "json" || x == "yaml") {
                    files.push(p);
                }
            }
        }
        assert!(files.len() > 15, "the fixtures are where this looks: {files:?}");
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            assert!(fast(&text).is_some(), "{} is left to serde-saphyr", f.display());
            same(&text);
        }
    }

    /// Asserts that every list and mapping under `n` has no room beyond its items.
    fn exact(n: &At<Node>, path: &str) {
        match &n.value {
            Node::Seq(items) => {
                assert_eq!(items.capacity(), items.len(), "{path}: room for {} items, {} used", items.capacity(), items.len());
                items.iter().enumerate().for_each(|(i, x)| exact(x, &format!("{path}[{i}]")));
            }
            Node::Map(entries) => {
                assert_eq!(entries.capacity(), entries.len(), "{path}: room for {} entries, {} used", entries.capacity(), entries.len());
                entries.iter().enumerate().for_each(|(i, (k, v))| {
                    exact(k, &format!("{path}.key{i}"));
                    exact(v, &format!("{path}.{i}"));
                });
            }
            _ => {}
        }
    }

    #[test]
    fn a_generated_file_of_many_classifiers_is_read_by_events() {
        use std::fmt::Write as _;
        let mut t = String::from("port_pairs:\n  - {name: pp1, ingress: sf-in, egress: sf-out, weight: 2}\nport_pair_groups:\n  - name: pg1\n    port_pairs: [pp1]\nflow_classifiers:\n");
        for i in 0..2000u32 {
            let (a, b) = (i >> 8, i & 255);
            let _ = writeln!(t, "  - {{name: fc{i}, protocol: udp, destination_ip_prefix: 10.{a}.{b}.0/24, source_port_range_min: {i}, logical_source_port: src}}");
        }
        t.push_str("port_chains:\n  - name: pc1\n    chain_id: 7\n    port_pair_groups: [pg1]\n    flow_classifiers: [fc0, fc1]\n    chain_parameters: {symmetric: yes}\n");
        let tree = fast(&t).expect("left to serde-saphyr");
        same(&t);
        // Each list and mapping takes the room it needs, not the room it grew into (a
        // classifier's 5 entries in room for 8, the 2,000 classifiers in room for 2,048).
        exact(&tree, "");
    }

    #[test]
    fn what_events_do_not_take_is_left_to_serde_saphyr() {
        let left = [
            "a: &x 1\nb: *x\n",
            "a: !!str 1\n",
            "!!map\na: 1\n",
            "base: &b {x: 1}\nc:\n  <<: *b\n",
            "<<: {x: 1}\n",
            "a: 1\n---\nb: 2\n",
            "%YAML 1.2\n---\na: 1\n",
            "? [a, b]\n: c\n",
            "a: [1, 2\n",
            "a: b: c\n",
            "",
            "# nothing\n",
            "k: \"+\"\n- x\n",
            "k: 1e999\n",
        ];
        for d in left {
            assert!(fast(d).is_none(), "read by events:\n{d}");
        }
        // And `parse` then gives serde-saphyr's answer: its error for a syntax error.
        let e = super::super::parse("t.yaml", "a: [1, 2\n").expect_err("a syntax error");
        assert!(e.to_string().contains("t.yaml: YAML syntax error"), "{e}");
        let c = super::super::parse("t.yaml", "port_pairs:\n  - &p {name: pp1, ingress: a, egress: b}\n").expect("an anchor is read");
        assert_eq!(c.port_pairs.len(), 1);
    }
}
