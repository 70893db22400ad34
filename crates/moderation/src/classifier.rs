//! The content score: a naive Bayes classifier over binary token features, trained from the
//! labelled corpus in `crates/moderation/corpus/` by `parlor-train-classifier` and shipped in
//! the binary (`src/model.json`).
//!
//! Features of a message (each counted once, whatever how often it occurs):
//!
//! - `w:<token>`: every token (see [`crate::normalize`]; numbers become `<n2>`, `<n4>` or `<n5+>`
//!   by their length) of the text outside links;
//! - `b:<token> <token>`: every pair of neighbouring tokens;
//! - `h:<label>` and `t:<tld>`: the labels of each link's host (without `www` and the top-level
//!   domain) and its top-level domain;
//! - `m:...`: the shape of the message: how many links (`m:links0`..`m:links3+`), how many tokens
//!   (`m:len1-3`, `m:len4-11`, `m:len12-39`, `m:len40+`), mostly capitals (`m:caps`),
//!   exclamation marks (`m:bang`, `m:bang3`), currency symbols (`m:currency`), emoji (`m:emoji`,
//!   `m:emoji3`), a mention (`m:mention`), code (`m:code`).
//!
//! The score is the log-odds `Σ weight(feature)` over the features the model knows (unknown ones
//! are left out), where `weight = ln P(f | spam) − ln P(f | normal)` with add-α smoothing; no class
//! prior is added (spam is far rarer in real chat than in the corpus: the threshold carries that).
//! [`Classifier::spam_probability`] maps it to a probability with the logistic function.

use crate::normalize::for_each_token;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::LazyLock;

/// The trained model shipped with the binary.
const BUILTIN_MODEL: &str = include_str!("model.json");

/// The probability above which a message is spam, unless configured otherwise. Chosen from the
/// held-back part of the corpus so that normal chat is practically never refused (see
/// docs/moderation.md).
pub const DEFAULT_SPAM_THRESHOLD: f64 = 0.995;

static BUILTIN: LazyLock<Classifier> =
    LazyLock::new(|| Classifier::from_json(BUILTIN_MODEL).unwrap_or_default());

/// 64-bit FNV-1a.
#[derive(Clone, Copy)]
struct Fnv(u64);

impl Fnv {
    const fn new() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
    fn bytes(mut self, bytes: &[u8]) -> Self {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
        self
    }
}

/// FNV-1a of a string: the corpus split and the feature keys use it.
pub fn fnv1a(s: &str) -> u64 {
    Fnv::new().bytes(s.as_bytes()).0
}

fn hash_parts(parts: &[&str]) -> u64 {
    parts.iter().fold(Fnv::new(), |h, p| h.bytes(p.as_bytes())).0
}

fn number_class(len: usize) -> &'static str {
    match len {
        0..=2 => "<n2>",
        3..=4 => "<n4>",
        _ => "<n5+>",
    }
}

fn is_emoji(c: char) -> bool {
    matches!(c, '\u{1F000}'..='\u{1FAFF}' | '\u{2600}'..='\u{27BF}' | '\u{2B50}' | '\u{2B06}' | '\u{2934}' | '\u{2935}')
}

/// Character statistics of the text outside links.
#[derive(Default)]
struct Shape {
    upper: usize,
    lower: usize,
    bangs: usize,
    emoji: usize,
    currency: bool,
    mention: bool,
    code: bool,
    last: char,
}

impl Shape {
    fn add(&mut self, text: &str) {
        for c in text.chars() {
            if c.is_uppercase() {
                self.upper += 1;
            } else if c.is_lowercase() {
                self.lower += 1;
            }
            match c {
                '!' => self.bangs += 1,
                '$' | '€' | '£' | '₿' | '¥' => self.currency = true,
                '`' => self.code = true,
                c if c.is_alphanumeric() && self.last == '@' => self.mention = true,
                c if is_emoji(c) => self.emoji += 1,
                _ => {}
            }
            self.last = c;
        }
    }
}

/// Calls `sink` with the parts of every feature of a message (a feature's name is its parts
/// joined). `links` is the number of links the renderer found.
fn features(body: &str, links: usize, sink: &mut impl FnMut(&[&str])) {
    let mut finder = linkify::LinkFinder::new();
    finder.kinds(&[linkify::LinkKind::Url]);
    let mut prev = String::with_capacity(32);
    let mut have_prev = false;
    let mut count = 0usize;
    let mut words = |text: &str, prev: &mut String, have_prev: &mut bool, count: &mut usize| {
        for_each_token(text, |t, number| {
            let t = if number { number_class(t.len()) } else { t };
            sink(&["w:", t]);
            if *have_prev {
                sink(&["b:", prev.as_str(), " ", t]);
            }
            prev.clear();
            prev.push_str(t);
            *have_prev = true;
            *count += 1;
        });
    };
    let mut hosts: Vec<String> = Vec::new();
    let mut shape = Shape::default();
    for span in finder.spans(body) {
        if span.kind().is_some() {
            if let Some(h) = crate::links::host(span.as_str()) {
                hosts.push(h);
            }
            have_prev = false;
        } else {
            words(span.as_str(), &mut prev, &mut have_prev, &mut count);
            shape.add(span.as_str());
        }
    }
    for h in &hosts {
        let labels: Vec<&str> = h.split('.').filter(|l| !l.is_empty()).collect();
        if let Some((tld, rest)) = labels.split_last() {
            if !rest.is_empty() {
                sink(&["t:", tld]);
            }
            for label in rest.iter().filter(|l| **l != "www") {
                sink(&["h:", label]);
            }
        }
    }
    sink(&[match links {
        0 => "m:links0",
        1 => "m:links1",
        2 => "m:links2",
        _ => "m:links3+",
    }]);
    sink(&[match count {
        0..=3 => "m:len1-3",
        4..=11 => "m:len4-11",
        12..=39 => "m:len12-39",
        _ => "m:len40+",
    }]);
    let Shape { upper, lower, bangs, emoji, currency, mention, code, .. } = shape;
    if upper >= 6 && upper * 10 >= (upper + lower) * 6 {
        sink(&["m:caps"]);
    }
    if bangs >= 3 {
        sink(&["m:bang3"]);
    } else if bangs >= 1 {
        sink(&["m:bang"]);
    }
    if emoji >= 3 {
        sink(&["m:emoji3"]);
    } else if emoji >= 1 {
        sink(&["m:emoji"]);
    }
    if currency {
        sink(&["m:currency"]);
    }
    if mention {
        sink(&["m:mention"]);
    }
    if code {
        sink(&["m:code"]);
    }
}

/// The names of a message's features, without repeats, sorted.
pub fn feature_names(body: &str, links: usize) -> Vec<String> {
    let mut names = HashSet::new();
    features(body, links, &mut |parts| {
        names.insert(parts.concat());
    });
    let mut names: Vec<String> = names.into_iter().collect();
    names.sort();
    names
}

/// The model file (`src/model.json`).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ModelFile {
    /// Format version of this file.
    pub format: u32,
    /// What the file is and how it was made.
    pub note: String,
    /// The smoothing constant.
    pub alpha: f64,
    /// Added to every score.
    pub prior_log_odds: f64,
    /// Messages trained on.
    pub trained_on: Counts,
    /// Messages held back, and how the model did on them at the default threshold.
    pub held_back: Evaluation,
    /// Feature name → weight (log-likelihood ratio, spam over normal).
    pub features: BTreeMap<String, f64>,
}

/// Messages per class.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
pub struct Counts {
    pub normal: usize,
    pub spam: usize,
}

/// A confusion matrix and its summary.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
pub struct Evaluation {
    pub threshold: f64,
    pub normal: usize,
    pub spam: usize,
    pub true_positives: usize,
    pub false_positives: usize,
    pub false_negatives: usize,
    pub precision: f64,
    pub recall: f64,
}

/// A loaded model.
#[derive(Clone, Debug, Default)]
pub struct Classifier {
    prior: f64,
    weights: HashMap<u64, f32>,
}

impl Classifier {
    /// The model shipped with the binary.
    pub fn builtin() -> &'static Self {
        &BUILTIN
    }

    /// A model from its JSON file.
    pub fn from_json(json: &str) -> Result<Self, serde_json::Error> {
        let file: ModelFile = serde_json::from_str(json)?;
        Ok(Self::from_file(&file))
    }

    /// A model from its parsed file.
    pub fn from_file(file: &ModelFile) -> Self {
        let weights = file.features.iter().map(|(name, w)| (fnv1a(name), *w as f32)).collect();
        Self { prior: file.prior_log_odds, weights }
    }

    /// How many features the model knows.
    pub fn len(&self) -> usize {
        self.weights.len()
    }

    /// Whether the model knows no feature (then every score is the prior).
    pub fn is_empty(&self) -> bool {
        self.weights.is_empty()
    }

    /// The log-odds that a message is spam.
    pub fn log_odds(&self, body: &str, links: usize) -> f64 {
        let mut seen: Vec<u64> = Vec::with_capacity(64);
        features(body, links, &mut |parts| seen.push(hash_parts(parts)));
        seen.sort_unstable();
        seen.dedup();
        self.prior + seen.iter().filter_map(|h| self.weights.get(h)).map(|w| f64::from(*w)).sum::<f64>()
    }

    /// The probability that a message is spam.
    pub fn spam_probability(&self, body: &str, links: usize) -> f64 {
        1.0 / (1.0 + (-self.log_odds(body, links)).exp())
    }
}

/// Reads a corpus file: one message a line; blank lines and lines starting with `#` are
/// skipped; `\n` in a line stands for a line break and `\\` for a backslash.
pub fn parse_corpus(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let mut out = String::with_capacity(l.len());
            let mut chars = l.chars();
            while let Some(c) = chars.next() {
                if c == '\\' {
                    match chars.next() {
                        Some('n') => out.push('\n'),
                        Some('\\') => out.push('\\'),
                        Some(other) => {
                            out.push('\\');
                            out.push(other);
                        }
                        None => out.push('\\'),
                    }
                } else {
                    out.push(c);
                }
            }
            out
        })
        .collect()
}

/// Whether a corpus line belongs to the held-back part (about one in five, by its hash).
pub fn held_back(line: &str) -> bool {
    fnv1a(line).is_multiple_of(5)
}

/// Trains a model on labelled messages (each with its link count).
pub fn train(
    normal: &[(String, usize)],
    spam: &[(String, usize)],
    alpha: f64,
    min_count: usize,
) -> ModelFile {
    let count = |set: &[(String, usize)]| {
        let mut counts: HashMap<String, usize> = HashMap::new();
        for (body, links) in set {
            for name in feature_names(body, *links) {
                *counts.entry(name).or_default() += 1;
            }
        }
        counts
    };
    let (n, s) = (count(normal), count(spam));
    let vocabulary: HashSet<&String> = n
        .keys()
        .chain(s.keys())
        .filter(|k| n.get(*k).unwrap_or(&0) + s.get(*k).unwrap_or(&0) >= min_count)
        .collect();
    let v = vocabulary.len() as f64;
    let total =
        |c: &HashMap<String, usize>| vocabulary.iter().map(|k| *c.get(*k).unwrap_or(&0) as f64).sum::<f64>();
    let (n_total, s_total) = (total(&n), total(&s));
    let features = vocabulary
        .iter()
        .map(|k| {
            let ps = (*s.get(*k).unwrap_or(&0) as f64 + alpha) / (s_total + alpha * v);
            let pn = (*n.get(*k).unwrap_or(&0) as f64 + alpha) / (n_total + alpha * v);
            ((*k).clone(), ((ps.ln() - pn.ln()) * 1e4).round() / 1e4)
        })
        .filter(|(_, w)| *w != 0.0)
        .collect();
    ModelFile {
        format: 1,
        note: String::new(),
        alpha,
        prior_log_odds: 0.0,
        trained_on: Counts { normal: normal.len(), spam: spam.len() },
        held_back: Evaluation::default(),
        features,
    }
}

/// Trains a logistic regression on the same binary features (full-batch gradient descent with
/// AdaGrad steps and an L2 penalty; deterministic). Features seen in fewer than `min_count`
/// training messages are left out.
pub fn train_logistic(
    normal: &[(String, usize)],
    spam: &[(String, usize)],
    l2: f64,
    epochs: usize,
    min_count: usize,
) -> ModelFile {
    let mut docs: Vec<(Vec<String>, f64)> = Vec::with_capacity(normal.len() + spam.len());
    docs.extend(normal.iter().map(|(b, l)| (feature_names(b, *l), 0.0)));
    docs.extend(spam.iter().map(|(b, l)| (feature_names(b, *l), 1.0)));
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for (names, _) in &docs {
        for n in names {
            *counts.entry(n.as_str()).or_default() += 1;
        }
    }
    let names: Vec<&str> = counts.iter().filter(|(_, c)| **c >= min_count).map(|(n, _)| *n).collect();
    let index: HashMap<&str, usize> = names.iter().enumerate().map(|(i, n)| (*n, i)).collect();
    let rows: Vec<(Vec<usize>, f64)> = docs
        .iter()
        .map(|(f, y)| (f.iter().filter_map(|n| index.get(n.as_str()).copied()).collect(), *y))
        .collect();
    let (mut w, mut bias) = (vec![0.0f64; names.len()], 0.0f64);
    let (mut g2, mut b2) = (vec![1e-8f64; names.len()], 1e-8f64);
    let rate = 0.5;
    let m = rows.len().max(1) as f64;
    for _ in 0..epochs {
        let mut grad = vec![0.0f64; names.len()];
        let mut grad_b = 0.0;
        for (features, y) in &rows {
            let z = bias + features.iter().map(|i| w[*i]).sum::<f64>();
            let err = 1.0 / (1.0 + (-z).exp()) - y;
            grad_b += err;
            for i in features {
                grad[*i] += err;
            }
        }
        for i in 0..w.len() {
            let g = grad[i] / m + l2 * w[i];
            g2[i] += g * g;
            w[i] -= rate * g / g2[i].sqrt();
        }
        let g = grad_b / m;
        b2 += g * g;
        bias -= rate * g / b2.sqrt();
    }
    let features = names
        .iter()
        .zip(&w)
        .map(|(n, w)| ((*n).to_owned(), (w * 1e4).round() / 1e4))
        .filter(|(_, w)| *w != 0.0)
        .collect();
    ModelFile {
        format: 1,
        note: String::new(),
        alpha: 0.0,
        prior_log_odds: (bias * 1e4).round() / 1e4,
        trained_on: Counts { normal: normal.len(), spam: spam.len() },
        held_back: Evaluation::default(),
        features,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_model_loads() {
        let json: ModelFile = serde_json::from_str(BUILTIN_MODEL).expect("model.json parses");
        assert!(!json.features.is_empty());
        assert!(!Classifier::builtin().is_empty());
        assert_eq!(Classifier::builtin().len(), json.features.len());
    }

    #[test]
    fn features_cover_words_pairs_links_and_shape() {
        let names = feature_names("FREE CRYPTO!!! at https://win.bit-cash.xyz/now @bob 12345", 1);
        for expected in [
            "w:free",
            "w:crypto",
            "b:free crypto",
            "w:<n5+>",
            "t:xyz",
            "h:bit-cash",
            "h:win",
            "m:links1",
            "m:caps",
            "m:bang3",
            "m:mention",
            "m:len4-11",
        ] {
            assert!(names.iter().any(|n| n == expected), "{expected} in {names:?}");
        }
        assert!(!names.iter().any(|n| n == "w:https"), "link text is not tokenised: {names:?}");
    }

    #[test]
    fn the_corpus_format_unescapes_line_breaks() {
        let lines = parse_corpus("# comment\n\nfirst\\nsecond\nback\\\\slash\n");
        assert_eq!(lines, vec!["first\nsecond".to_owned(), "back\\slash".to_owned()]);
    }

    #[test]
    fn training_separates_the_classes() {
        let normal: Vec<(String, usize)> =
            ["see you at lunch", "the build is green", "lunch at noon?", "merged the build fix"]
                .iter()
                .map(|s| ((*s).to_owned(), 0))
                .collect();
        let spam: Vec<(String, usize)> =
            ["free crypto giveaway", "claim free crypto now", "crypto giveaway claim now"]
                .iter()
                .map(|s| ((*s).to_owned(), 0))
                .collect();
        let model = Classifier::from_file(&train(&normal, &spam, 1.0, 1));
        assert!(model.log_odds("free crypto claim", 0) > 1.0);
        assert!(model.log_odds("lunch after the build", 0) < -1.0);
        assert!((0.0..=1.0).contains(&model.spam_probability("anything", 0)));
    }
}
