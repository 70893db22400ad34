//! Text normalisation shared by the blocked-word matcher, the flood rule and the classifier.
//!
//! Every character goes through [`fold_char`]: invisible characters (zero-width space, joiners,
//! word joiner, BOM, soft hyphen, bidi marks) are dropped, the rest is decomposed to Unicode
//! compatibility form (NFKD: full-width letters, ligatures, circled and super/subscript
//! characters become their plain form), lower-cased, stripped of combining marks (diacritics),
//! and a few letters that have no decomposition (`ß`, `æ`, `ø`, `ł`, ...) are spelled out.
//! [`lookalike`] then maps digits and symbols that stand in for letters (`0`→`o`, `3`→`e`, ...);
//! the blocked-word matcher applies it everywhere, the classifier and the flood rule only inside
//! tokens that mix letters and digits (so that `2024` stays a number but `m0ney` is `money`).

use unicode_normalization::char::{decompose_compatible, is_combining_mark};

/// Characters that render as nothing and are used to split words invisibly.
pub(crate) fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'               // soft hyphen
            | '\u{034F}'         // combining grapheme joiner
            | '\u{180E}'         // Mongolian vowel separator
            | '\u{200B}'..='\u{200F}' // zero-width space, non-joiner, joiner, LRM, RLM
            | '\u{202A}'..='\u{202E}' // bidi embeddings and overrides
            | '\u{2060}'..='\u{2064}' // word joiner, invisible operators
            | '\u{FEFF}' // zero-width no-break space (BOM)
    )
}

/// Letters with no compatibility decomposition, spelled out in ASCII.
fn spell_out(c: char, emit: &mut impl FnMut(char)) {
    match c {
        'ß' => {
            emit('s');
            emit('s');
        }
        'æ' => {
            emit('a');
            emit('e');
        }
        'œ' => {
            emit('o');
            emit('e');
        }
        'þ' => {
            emit('t');
            emit('h');
        }
        'ø' => emit('o'),
        'ł' => emit('l'),
        'đ' | 'ð' => emit('d'),
        'ħ' => emit('h'),
        'ı' => emit('i'),
        other => emit(other),
    }
}

/// Folds one character: invisible ones vanish; the rest is NFKD-decomposed, lower-cased and
/// stripped of combining marks. One character may give none, one or several.
#[inline]
pub(crate) fn fold_char(c: char, emit: &mut impl FnMut(char)) {
    if c.is_ascii() {
        emit(c.to_ascii_lowercase());
        return;
    }
    if is_invisible(c) {
        return;
    }
    decompose_compatible(c, |d| {
        if is_combining_mark(d) {
            return;
        }
        for l in d.to_lowercase() {
            if !is_combining_mark(l) && !is_invisible(l) {
                spell_out(l, emit);
            }
        }
    });
}

/// Maps a folded character that commonly stands in for a Latin letter to that letter: look-alike
/// digits and symbols, and the Cyrillic and Greek letters drawn like Latin ones. `1` (which may
/// be `i` or `l`) is kept as `1`: the matcher gives it both readings.
#[inline]
pub(crate) fn lookalike(c: char) -> char {
    match c {
        '0' => 'o',
        '3' => 'e',
        '4' | '@' => 'a',
        '5' | '$' => 's',
        '7' => 't',
        // Cyrillic.
        'а' => 'a',
        'в' => 'b',
        'е' | 'ё' => 'e',
        'к' => 'k',
        'м' => 'm',
        'н' => 'h',
        'о' => 'o',
        'р' => 'p',
        'с' => 'c',
        'т' => 't',
        'у' => 'y',
        'х' => 'x',
        'і' => 'i',
        'ј' => 'j',
        'ѕ' => 's',
        // Greek.
        'α' => 'a',
        'β' => 'b',
        'ε' => 'e',
        'ι' => 'i',
        'κ' => 'k',
        'ν' => 'v',
        'ο' => 'o',
        'ρ' => 'p',
        'τ' => 't',
        'υ' => 'u',
        'χ' => 'x',
        other => other,
    }
}

/// Characters of scripts written without spaces between words (Han, kana, Thai, Lao, Khmer,
/// Myanmar): each counts as a word of its own, so that a blocked term can match inside a run.
#[inline]
pub(crate) fn is_standalone(c: char) -> bool {
    matches!(c,
        '\u{0E00}'..='\u{0EFF}'
        | '\u{1000}'..='\u{109F}'
        | '\u{1780}'..='\u{17FF}'
        | '\u{3040}'..='\u{30FF}'
        | '\u{3400}'..='\u{4DBF}'
        | '\u{4E00}'..='\u{9FFF}'
        | '\u{F900}'..='\u{FAFF}'
        | '\u{20000}'..='\u{2FFFF}'
    )
}

/// The longest token the tokenizer keeps (longer ones are cut).
const MAX_TOKEN_CHARS: usize = 40;

/// Splits folded text into tokens (maximal runs of letters and digits; each character of a
/// script without spaces is a token of its own), calling `f(token, is_number)`. Inside a token
/// that mixes letters and digits, look-alike digits become letters (`fr33` → `free`); runs of
/// three or more of the same character are cut to two (`freeeee` → `free`, `sooooo` → `soo`).
pub(crate) fn for_each_token(text: &str, mut f: impl FnMut(&str, bool)) {
    let mut raw: Vec<char> = Vec::with_capacity(32);
    let mut out = String::with_capacity(64);
    let mut flush = |raw: &mut Vec<char>, out: &mut String| {
        if raw.is_empty() {
            return;
        }
        let digits = raw.iter().filter(|c| c.is_ascii_digit()).count();
        let number = digits == raw.len();
        let mixed = digits > 0 && !number;
        out.clear();
        let mut last = '\0';
        let mut run = 0usize;
        let mut kept = 0usize;
        for &c in raw.iter() {
            let c = if mixed {
                match c {
                    '1' => 'i',
                    d => lookalike(d),
                }
            } else {
                c
            };
            if c == last {
                run += 1;
            } else {
                last = c;
                run = 1;
            }
            if run <= 2 && kept < MAX_TOKEN_CHARS {
                out.push(c);
                kept += 1;
            }
        }
        raw.clear();
        f(out, number);
    };
    for c in text.chars() {
        fold_char(c, &mut |d| {
            if d.is_alphanumeric() {
                if is_standalone(d) {
                    flush(&mut raw, &mut out);
                    raw.push(d);
                    flush(&mut raw, &mut out);
                } else {
                    raw.push(d);
                }
            } else {
                flush(&mut raw, &mut out);
            }
        });
    }
    flush(&mut raw, &mut out);
}

/// The folded, look-alike-mapped form of a text, words separated by one space: what the
/// blocked-word matcher compares (before it drops separators and collapses repeated letters).
/// For tests and diagnostics.
pub fn normalise(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut pending_space = false;
    for c in text.chars() {
        fold_char(c, &mut |d| {
            let d = lookalike(d);
            if d.is_alphanumeric() {
                if pending_space && !out.is_empty() {
                    out.push(' ');
                }
                pending_space = false;
                out.push(d);
            } else {
                pending_space = true;
            }
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(text: &str) -> Vec<String> {
        let mut out = Vec::new();
        for_each_token(text, |t, _| out.push(t.to_owned()));
        out
    }

    #[test]
    fn case_is_folded() {
        assert_eq!(normalise("FrEe MoNeY"), "free money");
        assert_eq!(normalise("STRASSE Straße"), "strasse strasse");
    }

    #[test]
    fn compatibility_forms_become_plain_letters() {
        assert_eq!(normalise("ｆｒｅｅ　ｍｏｎｅｙ"), "free money", "full-width letters and space");
        assert_eq!(normalise("ﬁnance"), "finance", "ligature");
        assert_eq!(normalise("𝐟𝐫𝐞𝐞"), "free", "mathematical bold");
        assert_eq!(normalise("ⓕⓡⓔⓔ"), "free", "circled letters");
    }

    #[test]
    fn diacritics_are_stripped() {
        assert_eq!(normalise("frée mönéy"), "free money");
        assert_eq!(normalise("fre\u{301}e"), "free", "a combining accent");
        assert_eq!(normalise("Ærøskøbing"), "aeroskobing");
        assert_eq!(normalise("İstanbul"), "istanbul");
    }

    #[test]
    fn zero_width_characters_vanish() {
        assert_eq!(normalise("f\u{200B}r\u{200C}e\u{200D}e\u{2060}m\u{FEFF}o\u{AD}ney"), "freemoney");
        assert_eq!(normalise("fr\u{200E}ee"), "free");
    }

    #[test]
    fn lookalike_digits_and_symbols_become_letters() {
        assert_eq!(normalise("fr33 m0n3y"), "free money");
        assert_eq!(normalise("$4le @ 7he 5hop"), "sale a the shop");
        assert_eq!(normalise("v1agra"), "v1agra", "1 stays ambiguous for the matcher");
        assert_eq!(normalise("сheap"), "cheap", "Cyrillic с");
    }

    #[test]
    fn separators_split_words() {
        assert_eq!(normalise("f.r.e.e"), "f r e e");
        assert_eq!(normalise("  hello,   world!! "), "hello world");
    }

    #[test]
    fn tokens_map_lookalikes_only_in_mixed_words_and_cut_runs() {
        assert_eq!(tokens("FR33 m0ney in 2024!!"), vec!["free", "money", "in", "2024"]);
        assert_eq!(tokens("freeeeee sooooo"), vec!["free", "soo"]);
        assert_eq!(tokens("v1agra"), vec!["viagra"]);
        assert_eq!(tokens("東京へ"), vec!["東", "京", "へ"]);
        assert_eq!(tokens("éé\u{200B}x"), vec!["eex"]);
        let long = "x".repeat(4000);
        assert_eq!(tokens(&long), vec!["xx"]);
    }
}
