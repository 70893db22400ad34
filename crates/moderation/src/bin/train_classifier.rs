//! Trains parlor's spam classifier from the labelled corpus and writes the model file.
//!
//! ```text
//! cargo run -p parlor-moderation --bin parlor-train-classifier -- \
//!     crates/moderation/corpus crates/moderation/src/model.json [--threshold P] [--alpha A] [--min-count N]
//! ```
//!
//! The corpus directory holds `normal.txt` and `spam.txt` (see its README). About one line in
//! five (by a hash of its text, so the split never changes unless the line does) is held back;
//! the model is trained on the rest, and precision and recall on the held-back lines are
//! printed and written into the model file. The output is deterministic.

use parlor_moderation::classifier::{self, Classifier, DEFAULT_SPAM_THRESHOLD, Evaluation};
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;

struct Args {
    corpus: PathBuf,
    output: PathBuf,
    threshold: f64,
    alpha: f64,
    min_count: usize,
    logistic: Option<(f64, usize)>,
    probe: Option<PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let mut positional = Vec::new();
    let (mut threshold, mut alpha, mut min_count) = (DEFAULT_SPAM_THRESHOLD, 1.0, 2usize);
    let mut logistic = None;
    let mut probe = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--threshold" => {
                threshold = value("--threshold")?.parse().map_err(|e| format!("--threshold: {e}"))?
            }
            "--alpha" => alpha = value("--alpha")?.parse().map_err(|e| format!("--alpha: {e}"))?,
            "--min-count" => {
                min_count = value("--min-count")?.parse().map_err(|e| format!("--min-count: {e}"))?
            }
            "--logistic" => {
                let l2 = value("--logistic")?.parse().map_err(|e| format!("--logistic: {e}"))?;
                logistic = Some((l2, 2000));
            }
            "--probe" => probe = Some(PathBuf::from(value("--probe")?)),
            "-h" | "--help" => return Err(String::new()),
            other => positional.push(PathBuf::from(other)),
        }
    }
    let [corpus, output] =
        <[PathBuf; 2]>::try_from(positional).map_err(|_| "expected two paths".to_owned())?;
    Ok(Args { corpus, output, threshold, alpha, min_count, logistic, probe })
}

fn load(path: &std::path::Path) -> Result<Vec<(String, usize)>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let empty = HashMap::new();
    Ok(classifier::parse_corpus(&text)
        .into_iter()
        .map(|line| {
            let links = parlor_moderation::render(&line, &empty).links;
            (line, links)
        })
        .collect())
}

fn evaluate(
    model: &Classifier,
    normal: &[&(String, usize)],
    spam: &[&(String, usize)],
    threshold: f64,
) -> Evaluation {
    let flagged = |set: &[&(String, usize)]| {
        set.iter().filter(|(body, links)| model.spam_probability(body, *links) >= threshold).count()
    };
    let (false_positives, true_positives) = (flagged(normal), flagged(spam));
    let false_negatives = spam.len() - true_positives;
    let precision = if true_positives + false_positives == 0 {
        1.0
    } else {
        true_positives as f64 / (true_positives + false_positives) as f64
    };
    let recall = if spam.is_empty() { 1.0 } else { true_positives as f64 / spam.len() as f64 };
    let round = |x: f64| (x * 1e4).round() / 1e4;
    Evaluation {
        threshold,
        normal: normal.len(),
        spam: spam.len(),
        true_positives,
        false_positives,
        false_negatives,
        precision: round(precision),
        recall: round(recall),
    }
}

/// Prints the five normal lines the model likes least.
fn top(title: &str, model: &Classifier, set: &[&(String, usize)]) {
    let mut scored: Vec<(f64, &str)> =
        set.iter().map(|(b, l)| (model.spam_probability(b, *l), b.as_str())).collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    println!("\n{title}:");
    for (p, body) in scored.into_iter().take(5) {
        println!("  {p:.4}  {}", body.replace('\n', "\\n"));
    }
}

fn run(args: &Args) -> Result<(), String> {
    let normal = load(&args.corpus.join("normal.txt"))?;
    let spam = load(&args.corpus.join("spam.txt"))?;
    let split = |set: &[(String, usize)], held: bool| -> Vec<(String, usize)> {
        set.iter().filter(|(l, _)| classifier::held_back(l) == held).cloned().collect()
    };
    let (normal_train, normal_test) = (split(&normal, false), split(&normal, true));
    let (spam_train, spam_test) = (split(&spam, false), split(&spam, true));
    println!(
        "corpus: {} normal, {} spam; training on {} + {}, holding back {} + {}",
        normal.len(),
        spam.len(),
        normal_train.len(),
        spam_train.len(),
        normal_test.len(),
        spam_test.len()
    );
    let mut file = match args.logistic {
        Some((l2, epochs)) => {
            classifier::train_logistic(&normal_train, &spam_train, l2, epochs, args.min_count)
        }
        None => classifier::train(&normal_train, &spam_train, args.alpha, args.min_count),
    };
    let model = Classifier::from_file(&file);
    println!("features kept: {}", model.len());

    let nt: Vec<&(String, usize)> = normal_test.iter().collect();
    let st: Vec<&(String, usize)> = spam_test.iter().collect();
    println!("\nheld-back part, by threshold (spam probability):");
    println!("  threshold  precision  recall  false positives  missed spam");
    for t in [0.5, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999, 0.9999] {
        let e = evaluate(&model, &nt, &st, t);
        println!(
            "  {:<9}  {:<9.4}  {:<6.4}  {:>4} of {:<8}  {:>4} of {}",
            t, e.precision, e.recall, e.false_positives, e.normal, e.false_negatives, e.spam
        );
    }
    let held = evaluate(&model, &nt, &st, args.threshold);
    let train_n: Vec<&(String, usize)> = normal_train.iter().collect();
    let train_s: Vec<&(String, usize)> = spam_train.iter().collect();
    let trained = evaluate(&model, &train_n, &train_s, args.threshold);
    println!(
        "\nat threshold {}: held back precision {:.4} recall {:.4} ({} false positives of {} normal, {} missed of {} spam)",
        args.threshold,
        held.precision,
        held.recall,
        held.false_positives,
        held.normal,
        held.false_negatives,
        held.spam
    );
    println!(
        "               training part precision {:.4} recall {:.4} ({} false positives, {} missed)",
        trained.precision, trained.recall, trained.false_positives, trained.false_negatives
    );
    let show = |title: &str, set: &[&(String, usize)], want_spam: bool| {
        let wrong: Vec<(f64, &str)> = set
            .iter()
            .map(|(b, l)| (model.spam_probability(b, *l), b.as_str()))
            .filter(|(p, _)| (*p >= args.threshold) != want_spam)
            .collect();
        if !wrong.is_empty() {
            println!("\n{title}:");
            for (p, body) in wrong {
                println!("  {p:.4}  {}", body.replace('\n', "\\n"));
            }
        }
    };
    show("held-back normal lines flagged as spam", &nt, false);
    top("highest-scoring held-back normal lines", &model, &nt);
    if let Some(path) = &args.probe {
        let probe = load(path)?;
        let probe: Vec<&(String, usize)> = probe.iter().collect();
        let e = evaluate(&model, &probe, &[], args.threshold);
        println!("\nprobe {}: {} of {} normal lines flagged", path.display(), e.false_positives, e.normal);
        for t in [0.5, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999] {
            println!("  at {t}: {}", evaluate(&model, &probe, &[], t).false_positives);
        }
        show("probe lines flagged as spam", &probe, false);
        top("highest-scoring probe lines", &model, &probe);
    }
    show("held-back spam lines let through", &st, true);

    file.note = format!(
        "parlor's spam classifier (naive Bayes over binary token features, see src/classifier.rs). \
         Generated by `cargo run -p parlor-moderation --bin parlor-train-classifier -- crates/moderation/corpus \
         crates/moderation/src/model.json` (alpha {}, features seen in at least {} training messages) from the \
         CC0 corpus in crates/moderation/corpus; do not edit by hand.",
        args.alpha, args.min_count
    );
    file.held_back = held;
    let mut json = serde_json::to_string_pretty(&file).map_err(|e| e.to_string())?;
    json.push('\n');
    std::fs::write(&args.output, json).map_err(|e| format!("cannot write {}: {e}", args.output.display()))?;
    println!("\nwrote {}", args.output.display());
    Ok(())
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("error: {e}");
            }
            eprintln!(
                "usage: parlor-train-classifier <corpus dir> <model.json> [--threshold P] [--alpha A] [--min-count N]"
            );
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
