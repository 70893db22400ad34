//! The shipped model against messages it never saw: ordinary chat must pass, obvious spam should
//! not.

use parlor_moderation::classifier::{Classifier, DEFAULT_SPAM_THRESHOLD, parse_corpus};
use std::collections::HashMap;

fn probability(body: &str) -> f64 {
    let links = parlor_moderation::render(body, &HashMap::new()).links;
    Classifier::builtin().spam_probability(body, links)
}

#[test]
fn ordinary_messages_outside_the_corpus_are_not_spam() {
    let mut probes = parse_corpus(include_str!("probe_normal.txt"));
    probes.push("x".repeat(4000));
    probes.push("é".repeat(4000));
    probes.push(format!("flood 12 {}", "lorem ipsum dolor sit amet ".repeat(130)));
    probes.extend((0..120).map(|i| format!("message {i}")));
    let flagged: Vec<(f64, &str)> = probes
        .iter()
        .map(|p| (probability(p), p.as_str()))
        .filter(|(p, _)| *p >= DEFAULT_SPAM_THRESHOLD)
        .collect();
    assert!(flagged.is_empty(), "ordinary messages scored as spam: {flagged:#?}");
}

#[test]
fn obvious_spam_outside_the_corpus_is_caught() {
    let spam = [
        "Claim your FREE crypto airdrop now!!! https://claim-the-airdrop.xyz",
        "Make $5000 a week from home, no experience needed, DM me for details",
        "Your account will be suspended, verify your password here https://verify-acct-now.top",
        "cheap followers and likes for your instagram, instant delivery, dm me",
        "hot singles want to meet you tonight 💋 https://meet-tonight-now.click",
        "invest $100 and get $2000 back in 48 hours guaranteed, message me on whatsapp",
    ];
    let caught = spam.iter().filter(|s| probability(s) >= DEFAULT_SPAM_THRESHOLD).count();
    assert!(caught >= 5, "only {caught} of {} caught", spam.len());
}
