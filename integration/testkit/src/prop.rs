//! The one configuration every property test runs under.
//!
//! `make test` runs each property with [`DEFAULT_CASES`] cases; a longer campaign sets
//! [`CASES_VAR`] (e.g. `VPC_CNI_PROPTEST_CASES=100000`) and runs the same tests. Every
//! property test is named `prop_…`, so `cargo test --workspace prop_` runs exactly them.

use proptest::test_runner::Config;

/// The environment variable that sets how many cases each property runs.
pub const CASES_VAR: &str = "VPC_CNI_PROPTEST_CASES";

/// Cases per property when [`CASES_VAR`] is unset: proptest's 256 is too few for parsers
/// whose inputs come from outside, and 1,000 keeps the whole set well under a minute.
pub const DEFAULT_CASES: u32 = 1_000;

/// How many cases each property runs: [`CASES_VAR`], or [`DEFAULT_CASES`].
///
/// # Panics
///
/// When the variable is set to anything but a positive whole number: a typo must not
/// quietly run the default (or zero) cases in a campaign that claims 100,000.
#[must_use]
pub fn cases() -> u32 {
    match std::env::var(CASES_VAR) {
        Err(std::env::VarError::NotPresent) => DEFAULT_CASES,
        Ok(v) => match v.trim().parse::<u32>() {
            Ok(n) if n > 0 => n,
            _ => panic!("{CASES_VAR}={v:?}: expected a positive whole number of cases"),
        },
        Err(e) => panic!("{CASES_VAR}: {e}"),
    }
}

/// The proptest configuration of every property: [`cases`] cases, and no regression files
/// written into the source tree (a failure found is kept as an ordinary unit test beside the
/// property, where a reader sees it).
#[must_use]
pub fn config() -> Config {
    Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    }
}

/// A fresh directory on tmpfs (`/dev/shm`) where the machine has one, else in the default
/// temp dir: properties that write a file per case would otherwise wait on the disk's
/// journal, and ipamd's real state dir (`/run/vpc-cni`) is tmpfs too.
///
/// # Panics
///
/// When no directory can be made at all.
#[must_use]
pub fn scratch_dir() -> tempfile::TempDir {
    let shm = std::path::Path::new("/dev/shm");
    let made = if shm.is_dir() {
        tempfile::Builder::new()
            .prefix("vpc-cni-prop")
            .tempdir_in(shm)
    } else {
        tempfile::Builder::new().prefix("vpc-cni-prop").tempdir()
    };
    made.unwrap_or_else(|e| panic!("cannot make a scratch directory: {e}"))
}

/// Generators of hostile input shared by the property tests of every crate: any JSON value,
/// the JSON texts a `serde_json::Value` cannot hold (huge numbers, deep nesting), and byte
/// mutations of a valid input.
pub mod gen {
    use proptest::prelude::*;
    use proptest::sample::Index;
    use serde_json::{Map, Value};

    /// A string a parser may meet: short printable ones, any Unicode, control characters
    /// and escapes, and very long ones.
    pub fn string() -> BoxedStrategy<String> {
        prop_oneof![
            4 => "[ -~]{0,24}",
            3 => any::<String>(),
            1 => "[\\x00-\\x1f\"\\\\/\\u{7f}-\\u{ff}\\u{2028}\\u{fffd}\\u{1f600}]{0,16}",
            // Far past every length a parser allows (64 shown, 256 for an id), yet cheap
            // enough to print and parse a thousand times in a debug build.
            1 => (any::<char>(), 300usize..5_000).prop_map(|(c, n)| c.to_string().repeat(n)),
        ]
        .boxed()
    }

    /// A number as JSON carries it: small and edge integers, floats, and values at the
    /// limits of `u32`, `i64` and `u64`.
    pub fn number() -> BoxedStrategy<Value> {
        prop_oneof![
            (-2_000i64..20_000).prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            Just(Value::from(u64::from(u32::MAX) + 1)),
            Just(Value::from(u64::MAX)),
            Just(Value::from(i64::MIN)),
            any::<f64>().prop_filter_map("JSON has no NaN or infinity", |f| {
                serde_json::Number::from_f64(f).map(Value::Number)
            }),
        ]
        .boxed()
    }

    /// Any scalar: null, a boolean, a number or a string.
    pub fn scalar() -> BoxedStrategy<Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            number(),
            string().prop_map(Value::String),
        ]
        .boxed()
    }

    /// Any JSON value, nested a few levels (arrays and objects of up to 8 members).
    pub fn value() -> BoxedStrategy<Value> {
        scalar()
            .prop_recursive(4, 48, 8, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
                    prop::collection::vec((string(), inner), 0..8)
                        .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
                ]
            })
            .boxed()
    }

    /// JSON texts no `Value` in memory can stand for, to splice in with [`splice_raw`]:
    /// numbers past `u64` and `f64`, exotic spellings, and arrays or objects nested far
    /// deeper than any parser should recurse (a `Value` that deep would overflow the test's
    /// own stack when dropped).
    pub fn raw_json() -> BoxedStrategy<String> {
        prop_oneof![
            Just("18446744073709551616".to_owned()),
            Just("-9223372036854775809".to_owned()),
            Just("1e400".to_owned()),
            Just("-1e400".to_owned()),
            Just("1e-400".to_owned()),
            Just("-0".to_owned()),
            Just("1E3".to_owned()),
            Just("9001.0".to_owned()),
            "[1-9][0-9]{20,400}",
            (1usize..5_000).prop_map(|d| format!("{}{}", "[".repeat(d), "]".repeat(d))),
            (1usize..5_000).prop_map(|d| format!("{}{}", "{\"a\":".repeat(d), "}".repeat(d))),
        ]
        .boxed()
    }

    /// The placeholder [`splice_raw`] replaces: a JSON string no generator produces.
    pub const RAW_MARK: &str = "\u{0}vpc-cni-raw\u{0}";

    /// `doc` as JSON text with each `RAW_MARK` string replaced by the next of `raws`.
    #[must_use]
    pub fn splice_raw(doc: &Value, raws: &[String]) -> String {
        let mut text = doc.to_string();
        if raws.is_empty() {
            return text;
        }
        let mark = Value::String(RAW_MARK.to_owned()).to_string();
        for raw in raws {
            text = text.replacen(&mark, raw, 1);
        }
        text
    }

    /// One edit of a byte string.
    #[derive(Debug, Clone)]
    pub enum ByteEdit {
        /// Flips bits of one byte.
        Flip(Index, u8),
        /// Inserts a byte (often one that cannot start or continue UTF-8).
        Insert(Index, u8),
        Remove(Index),
        /// Cuts the input here, as a torn write or a short read would.
        Truncate(Index),
        /// Repeats a stretch (at most 64 bytes), as a botched append would.
        Duplicate(Index, Index),
    }

    /// Up to `max` edits of a byte string.
    pub fn byte_edits(max: usize) -> BoxedStrategy<Vec<ByteEdit>> {
        let hostile = prop_oneof![any::<u8>(), 0x80u8..=0xff, Just(0), Just(b'"'), Just(b'{')];
        let edit = prop_oneof![
            (any::<Index>(), 1u8..=255).prop_map(|(i, m)| ByteEdit::Flip(i, m)),
            (any::<Index>(), hostile).prop_map(|(i, b)| ByteEdit::Insert(i, b)),
            any::<Index>().prop_map(ByteEdit::Remove),
            any::<Index>().prop_map(ByteEdit::Truncate),
            (any::<Index>(), any::<Index>()).prop_map(|(a, b)| ByteEdit::Duplicate(a, b)),
        ];
        prop::collection::vec(edit, 1..=max).boxed()
    }

    /// `bytes` with `edits` applied in order.
    #[must_use]
    pub fn apply_edits(mut bytes: Vec<u8>, edits: &[ByteEdit]) -> Vec<u8> {
        for edit in edits {
            let len = bytes.len();
            match edit {
                ByteEdit::Flip(i, mask) if len > 0 => bytes[i.index(len)] ^= mask,
                ByteEdit::Insert(i, b) => bytes.insert(i.index(len + 1), *b),
                ByteEdit::Remove(i) if len > 0 => {
                    bytes.remove(i.index(len));
                }
                ByteEdit::Truncate(i) => bytes.truncate(i.index(len + 1)),
                ByteEdit::Duplicate(a, b) if len > 0 => {
                    let start = a.index(len);
                    let end = (start + b.index(64)).min(len - 1);
                    let stretch = bytes[start..=end].to_vec();
                    let at = end + 1;
                    bytes.splice(at..at, stretch);
                }
                _ => {}
            }
        }
        bytes
    }

    /// Arbitrary bytes, or a valid input (from `valid`) mutated byte-wise: the two halves of
    /// "any input" for a parser of files and streams.
    pub fn bytes_around(valid: BoxedStrategy<Vec<u8>>) -> BoxedStrategy<Vec<u8>> {
        prop_oneof![
            prop::collection::vec(any::<u8>(), 0..2_048),
            (valid, byte_edits(8)).prop_map(|(bytes, edits)| apply_edits(bytes, &edits)),
        ]
        .boxed()
    }
}

/// Structure-aware edits of a JSON document: any node (the root, a field, an array element,
/// however deep) removed, replaced by any value, or replaced by a text no `Value` can hold.
pub mod json_edit {
    use proptest::prelude::*;
    use proptest::sample::Index;
    use serde_json::Value;

    use super::gen;

    /// One edit; the node is picked among all of the document's nodes, in pre-order.
    #[derive(Debug, Clone)]
    pub enum JsonEdit {
        Remove(Index),
        Replace(Index, Value),
        Raw(Index, String),
    }

    /// Up to `max` edits.
    pub fn edits(max: usize) -> BoxedStrategy<Vec<JsonEdit>> {
        let edit = prop_oneof![
            any::<Index>().prop_map(JsonEdit::Remove),
            (any::<Index>(), gen::value()).prop_map(|(i, v)| JsonEdit::Replace(i, v)),
            (any::<Index>(), gen::raw_json()).prop_map(|(i, r)| JsonEdit::Raw(i, r)),
        ];
        prop::collection::vec(edit, 1..=max).boxed()
    }

    /// One step from a node to a child.
    #[derive(Debug, Clone)]
    enum Step {
        Key(String),
        At(usize),
    }

    fn paths(value: &Value, here: &mut Vec<Step>, out: &mut Vec<Vec<Step>>) {
        out.push(here.clone());
        match value {
            Value::Object(map) => {
                for (key, child) in map {
                    here.push(Step::Key(key.clone()));
                    paths(child, here, out);
                    here.pop();
                }
            }
            Value::Array(items) => {
                for (i, child) in items.iter().enumerate() {
                    here.push(Step::At(i));
                    paths(child, here, out);
                    here.pop();
                }
            }
            _ => {}
        }
    }

    fn node<'v>(mut value: &'v mut Value, path: &[Step]) -> Option<&'v mut Value> {
        for step in path {
            value = match step {
                Step::Key(k) => value.get_mut(k.as_str())?,
                Step::At(i) => value.get_mut(*i)?,
            };
        }
        Some(value)
    }

    /// The marker standing for raw text number `n` until the document is printed.
    fn mark(n: usize) -> Value {
        Value::String(format!("\u{0}vpc-cni-raw-{n}\u{0}"))
    }

    /// The document's text after `edits` (empty when the root itself was removed).
    #[must_use]
    pub fn apply(mut doc: Value, edits: &[JsonEdit]) -> Vec<u8> {
        let mut raws = Vec::new();
        for edit in edits {
            let mut all = Vec::new();
            paths(&doc, &mut Vec::new(), &mut all);
            let (JsonEdit::Remove(i) | JsonEdit::Replace(i, _) | JsonEdit::Raw(i, _)) = edit;
            let path = &all[i.index(all.len())];
            match edit {
                JsonEdit::Remove(_) => {
                    let Some((last, parent)) = path.split_last() else {
                        return Vec::new();
                    };
                    match (node(&mut doc, parent), last) {
                        (Some(Value::Object(map)), Step::Key(k)) => {
                            map.remove(k);
                        }
                        (Some(Value::Array(items)), Step::At(i)) => {
                            items.remove(*i);
                        }
                        _ => {}
                    }
                }
                JsonEdit::Replace(_, value) => {
                    if let Some(n) = node(&mut doc, path) {
                        *n = value.clone();
                    }
                }
                JsonEdit::Raw(_, raw) => {
                    if let Some(n) = node(&mut doc, path) {
                        *n = mark(raws.len());
                        raws.push(raw.clone());
                    }
                }
            }
        }
        let mut text = doc.to_string();
        for (n, raw) in raws.iter().enumerate() {
            text = text.replacen(&mark(n).to_string(), raw, 1);
        }
        text.into_bytes()
    }
}
