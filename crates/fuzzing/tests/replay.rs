//! The short run of every fuzz target inside `cargo test`: each committed corpus file
//! (`fuzz/corpus/<target>/`, the regressions of past findings among them) goes through its
//! target's function, then a few hundred mutations of them drawn from a seeded generator, so the
//! run is the same every time. The long runs use libFuzzer (docs/fuzzing.md).

use std::path::{Path, PathBuf};
use std::time::Instant;

/// xorshift64*: enough to mutate inputs reproducibly without another dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 { 0 } else { (self.next() % n as u64) as usize }
    }
}

/// Pieces that make mutations reach further than random bytes do.
const TOKENS: &[&[u8]] = &[
    b"{",
    b"}",
    b"\"",
    b":",
    b",",
    b"null",
    b"-1",
    b"9223372036854775807",
    b"1e999",
    b"\\u0000",
    b"\\ud800",
    b"\"type\"",
    b"\"send\"",
    b"\"sync\"",
    b"**",
    b"`",
    b"```\n",
    b"[x](",
    b"](",
    b")",
    b"<",
    b">",
    b"&#",
    b";",
    b"javascript:",
    b"data:",
    b"https://",
    b"www.",
    b"@alice",
    b"@eve",
    b"\n",
    b"\0",
    b"\xe2\x80\x8b",
    b"\xef\xbc\xa6",
    b"\xcc\x81",
    b".",
    b"=",
    b"onerror=",
];

fn mutate(rng: &mut Rng, input: &[u8], corpus: &[Vec<u8>]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..=rng.below(4) {
        let at = rng.below(out.len() + 1);
        match rng.below(6) {
            0 if !out.is_empty() => {
                let i = rng.below(out.len());
                out[i] ^= 1 << rng.below(8);
            }
            1 => out.insert(at, rng.next() as u8),
            2 if !out.is_empty() => {
                let end = (at + 1 + rng.below(16)).min(out.len());
                out.drain(at.min(end)..end);
            }
            3 => {
                let token = TOKENS[rng.below(TOKENS.len())];
                out.splice(at..at, token.iter().copied());
            }
            4 if !corpus.is_empty() => {
                let other = &corpus[rng.below(corpus.len())];
                let from = rng.below(other.len() + 1);
                let to = (from + rng.below(64)).min(other.len());
                out.splice(at..at, other[from..to].iter().copied());
            }
            _ if !out.is_empty() => {
                let from = rng.below(out.len());
                let to = (from + rng.below(32)).min(out.len());
                let piece = out[from..to].to_vec();
                out.splice(at..at, piece);
            }
            _ => {}
        }
    }
    out
}

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus").join(target)
}

fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = corpus_dir(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .collect();
    files.sort();
    files.into_iter().map(|p| (p.clone(), std::fs::read(&p).expect("a corpus file"))).collect()
}

/// Replays a target's corpus, then `mutations` mutated inputs.
fn replay(target: &str, mutations: usize) {
    let (_, f) = *parlor_fuzzing::TARGETS.iter().find(|(name, _)| *name == target).expect("a target");
    let started = Instant::now();
    let files = corpus(target);
    assert!(!files.is_empty(), "the corpus of {target} is empty");
    for (path, data) in &files {
        let outcome = std::panic::catch_unwind(|| f(data));
        assert!(outcome.is_ok(), "{target}: the corpus file {} fails", path.display());
    }
    let inputs: Vec<Vec<u8>> = files.into_iter().map(|(_, d)| d).collect();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ target.len() as u64);
    for _ in 0..mutations {
        let seed = &inputs[rng.below(inputs.len())];
        let input = mutate(&mut rng, seed, &inputs);
        let outcome = std::panic::catch_unwind(|| f(&input));
        assert!(outcome.is_ok(), "{target}: the mutated input {input:?} fails");
    }
    eprintln!("{target}: {} corpus files and {mutations} mutations in {:?}", inputs.len(), started.elapsed());
}

#[test]
fn every_target_has_a_corpus() {
    for (target, _) in parlor_fuzzing::TARGETS {
        assert!(corpus_dir(target).is_dir(), "no corpus for {target}");
    }
}

#[test]
fn ws_frame() {
    replay("ws_frame", 3000);
}

#[test]
fn rest_bodies() {
    replay("rest_bodies", 3000);
}

#[test]
fn render() {
    replay("render", 1000);
}

#[test]
fn blocklist() {
    replay("blocklist", 1500);
}

#[test]
fn jwt() {
    replay("jwt", 2000);
}
