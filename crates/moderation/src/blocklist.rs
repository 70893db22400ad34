//! Blocked words and phrases, matched with Aho-Corasick over normalised text.
//!
//! Both the list and the message go through the same steps:
//!
//! 1. every character is folded ([`crate::normalize::fold_char`]: invisible characters dropped,
//!    NFKD, lower case, diacritics stripped) and look-alikes mapped ([`crate::normalize::lookalike`]);
//!    `!` between two letters reads as `i` and `|` between two letters as `1`;
//! 2. letters and digits form words; everything else is a separator. Separators are then dropped,
//!    so the matcher sees one stream of letters, with each position remembering whether a word
//!    starts or ends there and whether a separator stood before it;
//! 3. runs of the same letter collapse to one, keeping their length: the automaton runs over the
//!    collapsed "skeleton", and a hit is then checked run by run: each run of the text must be at
//!    least as long as the list's (`freeeee` holds `free`, but `as` does not hold `ass`);
//! 4. `1` may stand for `i` or `l`: each blocked term is compiled with both readings of each of its
//!    first few `i`/`l` letters.
//!
//! A hit counts only if it starts where a word starts and ends where a word ends, so `ass` is
//! not found in `class`, `passage` or `assume`. Because separators are dropped, a hit may span
//! several words of the text. Each separator inside a hit must be justified: either the blocked
//! phrase has a word break there too (`buy   followers`, `fr33 m0ney`), or one of the two words it
//! separates is a single character (`f r e e`, `f.r.e.e`, `f-r-e-e m-o-n-e-y`). That keeps
//! `pen is` from matching a blocked `penis`; the trade-off is that words written one letter apart
//! are always joined, so a blocked `ass` also fires on the rare `a ss`.

use crate::normalize::{fold_char, is_standalone, lookalike};
use aho_corasick::{AhoCorasick, MatchKind};

/// How many `i`/`l` letters of one term get the `1` reading (2^n variants).
const MAX_AMBIGUOUS: usize = 5;

/// What stood before a letter of the stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Gap {
    /// Nothing: the letter continues the previous one.
    None,
    /// A separator between two words of two or more letters.
    Break,
    /// A separator next to a one-letter word (spelled-out text).
    Spelled,
}

#[derive(Clone, Copy, Debug)]
struct Letter {
    c: char,
    /// A word starts here.
    start: bool,
    /// A word ends here.
    end: bool,
    gap: Gap,
}

/// A run of one letter in the stream.
#[derive(Clone, Copy, Debug)]
struct Run {
    c: char,
    /// Index of its first letter.
    first: usize,
    len: usize,
}

/// A text reduced to its letter stream and its collapsed skeleton.
#[derive(Debug, Default)]
struct Stream {
    letters: Vec<Letter>,
    runs: Vec<Run>,
    skeleton: String,
    /// Byte offset in `skeleton` of each run.
    offsets: Vec<u32>,
}

impl Stream {
    /// Normalises a text into its letter stream.
    fn new(text: &str) -> Self {
        let mut letters: Vec<Letter> = Vec::with_capacity(text.len());
        // A separator was seen since the last letter.
        let mut pending_gap = false;
        // A `!` or `|` right after a letter, waiting to see whether a letter follows.
        let mut held: Option<char> = None;
        let mut prev_standalone = false;
        let push = |letters: &mut Vec<Letter>, c: char, gap: bool, prev_standalone: &mut bool| {
            let standalone = is_standalone(c);
            let start = letters.is_empty() || gap || standalone || *prev_standalone;
            if start && let Some(last) = letters.last_mut() {
                last.end = true;
            }
            let gap = if gap && !letters.is_empty() { Gap::Break } else { Gap::None };
            letters.push(Letter { c, start, end: false, gap });
            *prev_standalone = standalone;
        };
        for c in text.chars() {
            fold_char(c, &mut |d| {
                let d = lookalike(d);
                if d.is_alphanumeric() {
                    if let Some(h) = held.take() {
                        push(&mut letters, h, false, &mut prev_standalone);
                    }
                    push(&mut letters, d, pending_gap, &mut prev_standalone);
                    pending_gap = false;
                } else if (d == '!' || d == '|') && !pending_gap && held.is_none() && !letters.is_empty() {
                    held = Some(if d == '!' { 'i' } else { '1' });
                } else {
                    held = None;
                    pending_gap = true;
                }
            });
        }
        if let Some(last) = letters.last_mut() {
            last.end = true;
        }
        // A separator next to a one-letter word is spelling, not a word break.
        let mut word_start = 0usize;
        let mut prev_len = 0usize;
        for i in 1..=letters.len() {
            if i == letters.len() || letters[i].start {
                let len = i - word_start;
                if word_start > 0 && letters[word_start].gap == Gap::Break && (len == 1 || prev_len == 1) {
                    letters[word_start].gap = Gap::Spelled;
                }
                prev_len = len;
                word_start = i;
            }
        }
        let mut runs: Vec<Run> = Vec::new();
        let mut skeleton = String::with_capacity(letters.len());
        let mut offsets = Vec::new();
        for (i, l) in letters.iter().enumerate() {
            match runs.last_mut() {
                Some(run) if run.c == l.c => run.len += 1,
                _ => {
                    runs.push(Run { c: l.c, first: i, len: 1 });
                    offsets.push(u32::try_from(skeleton.len()).unwrap_or(u32::MAX));
                    skeleton.push(l.c);
                }
            }
        }
        Self { letters, runs, skeleton, offsets }
    }
}

/// One compiled reading of a blocked term.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Variant {
    /// Minimum length of each run.
    min: Vec<usize>,
    /// Whether the term has a word break before or inside each run.
    breaks: Vec<bool>,
    /// The term as written in the list.
    term: usize,
}

/// A compiled list of blocked words and phrases.
#[derive(Debug)]
pub struct BlockList {
    terms: Vec<String>,
    variants: Vec<Variant>,
    automaton: Option<AhoCorasick>,
}

impl BlockList {
    /// Compiles a list: one word or phrase a line; blank lines and lines starting with `#` are
    /// skipped.
    pub fn new(list: &str) -> Self {
        let mut terms = Vec::new();
        let mut variants: Vec<Variant> = Vec::new();
        let mut skeletons: Vec<String> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for line in list.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
            let stream = Stream::new(line);
            if stream.letters.is_empty() {
                continue;
            }
            let term = terms.len();
            terms.push(line.to_owned());
            let ambiguous: Vec<usize> = stream
                .letters
                .iter()
                .enumerate()
                .filter(|(_, l)| matches!(l.c, 'i' | 'l'))
                .map(|(i, _)| i)
                .take(MAX_AMBIGUOUS)
                .collect();
            for mask in 0u32..(1 << ambiguous.len()) {
                let mut letters = stream.letters.clone();
                for (bit, &i) in ambiguous.iter().enumerate() {
                    if mask & (1 << bit) != 0 {
                        letters[i].c = '1';
                    }
                }
                let mut skeleton = String::new();
                let mut min: Vec<usize> = Vec::new();
                let mut breaks: Vec<bool> = Vec::new();
                let mut last: Option<char> = None;
                for l in &letters {
                    let gap = l.gap != Gap::None;
                    if last == Some(l.c) {
                        if let Some(m) = min.last_mut() {
                            *m += 1;
                        }
                        if let Some(b) = breaks.last_mut() {
                            *b |= gap;
                        }
                    } else {
                        skeleton.push(l.c);
                        min.push(1);
                        breaks.push(gap);
                        last = Some(l.c);
                    }
                }
                if seen.insert((skeleton.clone(), min.clone(), breaks.clone())) {
                    skeletons.push(skeleton);
                    variants.push(Variant { min, breaks, term });
                }
            }
        }
        let automaton = if skeletons.is_empty() {
            None
        } else {
            AhoCorasick::builder().match_kind(MatchKind::Standard).build(&skeletons).ok()
        };
        Self { terms, variants, automaton }
    }

    /// How many terms the list holds.
    pub fn len(&self) -> usize {
        self.terms.len()
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// The first blocked term the text holds, as written in the list.
    pub fn find(&self, text: &str) -> Option<&str> {
        let automaton = self.automaton.as_ref()?;
        let stream = Stream::new(text);
        self.find_in(automaton, &stream)
    }

    fn find_in(&self, automaton: &AhoCorasick, stream: &Stream) -> Option<&str> {
        for hit in automaton.find_overlapping_iter(stream.skeleton.as_str()) {
            let variant = &self.variants[hit.pattern().as_usize()];
            let Ok(offset) = u32::try_from(hit.start()) else { continue };
            let Ok(first) = stream.offsets.binary_search(&offset) else { continue };
            if verify(stream, first, variant) {
                return self.terms.get(variant.term).map(String::as_str);
            }
        }
        None
    }
}

/// Checks a skeleton hit starting at run `first` against the run lengths, the word boundaries
/// and the separators inside it.
fn verify(stream: &Stream, first: usize, v: &Variant) -> bool {
    let n = v.min.len();
    let Some(runs) = stream.runs.get(first..first + n) else { return false };
    let letters = &stream.letters;
    // A separator before letter `i` is acceptable inside a hit on the run of index `k`.
    let justified = |i: usize, k: usize| match letters[i].gap {
        Gap::None | Gap::Spelled => true,
        Gap::Break => v.breaks[k],
    };
    if n == 1 {
        // Within one run: split it at unjustified separators; some piece must hold a word start,
        // then a word end at least `min` letters further.
        let run = runs[0];
        let mut start: Option<usize> = None;
        for (i, letter) in letters.iter().enumerate().skip(run.first).take(run.len) {
            if i > run.first && !justified(i, 0) {
                start = None;
            }
            if start.is_none() && letter.start {
                start = Some(i);
            }
            if let Some(s) = start
                && letter.end
                && i + 1 - s >= v.min[0]
            {
                return true;
            }
        }
        return false;
    }
    // First run: some word start at least `min` letters before its end, no unjustified
    // separator after it.
    let head = runs[0];
    let head_last = head.first + head.len - 1;
    let mut found = false;
    for i in (head.first..=head_last).rev() {
        if i + v.min[0] <= head_last + 1 && letters[i].start {
            found = true;
            break;
        }
        if !justified(i, 0) {
            break;
        }
    }
    if !found {
        return false;
    }
    // Middle runs: long enough, every separator justified.
    for (k, run) in runs.iter().enumerate().take(n - 1).skip(1) {
        if run.len < v.min[k] || (run.first..run.first + run.len).any(|i| !justified(i, k)) {
            return false;
        }
    }
    // Last run: a word end at least `min` letters in, no unjustified separator before it.
    let tail = runs[n - 1];
    for (i, letter) in letters.iter().enumerate().skip(tail.first).take(tail.len) {
        if !justified(i, n - 1) {
            return false;
        }
        if i + 1 >= tail.first + v.min[n - 1] && letter.end {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list() -> BlockList {
        BlockList::new("# comment\nfree money\nass\nbuy followers\npenis\nkill\ncheap viagra\n\nxxx\n東京\n")
    }

    fn hit(text: &str) -> Option<String> {
        list().find(text).map(str::to_owned)
    }

    #[test]
    fn plain_words_and_phrases_match() {
        assert_eq!(hit("get free money now"), Some("free money".into()));
        assert_eq!(hit("Want to BUY   Followers?!"), Some("buy followers".into()));
        assert_eq!(hit("you ass"), Some("ass".into()));
        assert_eq!(hit("nothing to see"), None);
        assert_eq!(list().len(), 8);
    }

    #[test]
    fn case_and_full_width() {
        assert_eq!(hit("FREE MONEY"), Some("free money".into()));
        assert_eq!(hit("ｆｒｅｅ ｍｏｎｅｙ"), Some("free money".into()));
        assert_eq!(hit("ＦＲＥＥ　ＭＯＮＥＹ"), Some("free money".into()));
    }

    #[test]
    fn lookalike_digits() {
        assert_eq!(hit("fr33 m0ney"), Some("free money".into()));
        assert_eq!(hit("FR33 M0N3Y!!"), Some("free money".into()));
        assert_eq!(hit("ch3ap v1agra"), Some("cheap viagra".into()), "1 read as i");
        assert_eq!(hit("ki11 it"), Some("kill".into()), "1 read as l");
        assert_eq!(hit("k1ll"), Some("kill".into()));
        assert_eq!(hit("@$$"), Some("ass".into()));
        assert_eq!(hit("cheap v!agra"), Some("cheap viagra".into()), "! between letters read as i");
        assert_eq!(hit("fr€€ money"), None);
    }

    #[test]
    fn separators_inside_words() {
        assert_eq!(hit("f.r.e.e m.o.n.e.y"), Some("free money".into()));
        assert_eq!(hit("f r e e money"), Some("free money".into()));
        assert_eq!(hit("f-r-e-e m-o-n-e-y"), Some("free money".into()));
        assert_eq!(hit("f_r_e_e   m o n e y"), Some("free money".into()));
        assert_eq!(hit("freemoney"), Some("free money".into()), "a phrase written as one word");
        assert_eq!(hit("b.u.y f.o.l.l.o.w.e.r.s"), Some("buy followers".into()));
    }

    #[test]
    fn zero_width_and_soft_hyphen() {
        assert_eq!(hit("fr\u{200B}ee mo\u{200D}ney"), Some("free money".into()));
        assert_eq!(hit("f\u{FEFF}ree m\u{AD}oney"), Some("free money".into()));
        assert_eq!(hit("a\u{2060}ss"), Some("ass".into()));
    }

    #[test]
    fn diacritics() {
        assert_eq!(hit("frée mönéy"), Some("free money".into()));
        assert_eq!(hit("fre\u{0301}e money"), Some("free money".into()));
        assert_eq!(hit("çheap vïagra"), Some("cheap viagra".into()));
    }

    #[test]
    fn repeated_letters() {
        assert_eq!(hit("freeeeee moneyyyyy"), Some("free money".into()));
        assert_eq!(hit("FFFRRREEE MMMONEY"), Some("free money".into()));
        assert_eq!(hit("asssss"), Some("ass".into()));
        assert_eq!(hit("fre money"), None, "a run shorter than the list's is another word");
        assert_eq!(hit("as"), None);
        assert_eq!(hit("kil"), None);
    }

    #[test]
    fn word_boundaries_hold() {
        for text in ["class", "passage", "assume", "bass", "glasses", "asses", "amass", "Class A", "ASSET"] {
            assert_eq!(hit(text), None, "{text}");
        }
        assert_eq!(hit("classy free moneybags"), None);
        assert_eq!(hit("skill"), None);
        assert_eq!(hit("killer"), None);
        assert_eq!(hit("the pen is blue"), None, "two real words that spell a blocked one");
        assert_eq!(hit("p e n i s"), Some("penis".into()));
        assert_eq!(hit("a ss"), Some("ass".into()), "the documented trade-off");
        assert_eq!(hit("was so"), None);
        assert_eq!(hit("as soon as"), None);
    }

    #[test]
    fn runs_of_one_letter() {
        assert_eq!(hit("xxx"), Some("xxx".into()));
        assert_eq!(hit("xxxxxxxx"), Some("xxx".into()));
        assert_eq!(hit("xx"), None);
        assert_eq!(hit("x x x"), Some("xxx".into()));
        assert_eq!(hit("xx xx"), None, "two two-letter words are not spelling");
        assert_eq!(hit("maxxx"), None);
        assert_eq!(hit(&"x".repeat(4000)), Some("xxx".into()));
    }

    #[test]
    fn scripts_without_spaces() {
        assert_eq!(hit("我住在東京。"), Some("東京".into()));
        assert_eq!(hit("東"), None);
    }

    #[test]
    fn an_empty_list_matches_nothing() {
        let empty = BlockList::new("# nothing\n\n   \n");
        assert!(empty.is_empty());
        assert_eq!(empty.find("anything at all"), None);
    }
}
