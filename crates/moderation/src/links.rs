//! Link targets: their host, and the list of blocked domains.

use std::collections::HashSet;

/// The host a link points to, lower-cased, or `None` for a relative link.
pub(crate) fn host(url: &str) -> Option<String> {
    let url = url.trim();
    let lower = url.to_ascii_lowercase();
    let rest = if let Some(address) = lower.strip_prefix("mailto:") {
        let address = address.split(['?', '#']).next().unwrap_or_default();
        return address.rsplit_once('@').map(|(_, h)| clean_host(h)).filter(|h| !h.is_empty());
    } else if let Some((scheme, rest)) = lower.split_once("://") {
        if scheme.is_empty()
            || !scheme.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        {
            return None;
        }
        rest
    } else if let Some(rest) = lower.strip_prefix("//") {
        rest
    } else if lower.starts_with("www.") {
        lower.as_str()
    } else {
        return None;
    };
    let authority = rest.split(['/', '?', '#', '\\']).next().unwrap_or_default();
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if host.starts_with('[') {
        host.split_once(']').map_or(host, |(h, _)| h).trim_start_matches('[')
    } else {
        host.split_once(':').map_or(host, |(h, _)| h)
    };
    let host = clean_host(host);
    (!host.is_empty()).then_some(host)
}

fn clean_host(h: &str) -> String {
    h.trim().trim_end_matches('.').to_lowercase()
}

/// Blocked domains: a link to one of them, or to any of its subdomains, is spam.
#[derive(Debug, Default)]
pub struct DomainList {
    domains: HashSet<String>,
}

impl DomainList {
    /// One domain a line (`example.com`; a leading `*.` or `.` and a scheme are ignored); blank
    /// lines and lines starting with `#` are skipped.
    pub fn new(list: &str) -> Self {
        let domains = list
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .filter_map(|l| {
                let l = l.trim_start_matches("*.").trim_start_matches('.');
                if l.contains("://") { host(l) } else { host(&format!("//{l}")) }
            })
            .collect();
        Self { domains }
    }

    /// How many domains the list holds.
    pub fn len(&self) -> usize {
        self.domains.len()
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.domains.is_empty()
    }

    /// The blocked domain a link points into, if any.
    pub fn blocked(&self, url: &str) -> Option<&str> {
        if self.domains.is_empty() {
            return None;
        }
        let host = host(url)?;
        let mut rest = host.as_str();
        loop {
            if let Some(d) = self.domains.get(rest) {
                return Some(d.as_str());
            }
            match rest.split_once('.') {
                Some((_, parent)) if !parent.is_empty() => rest = parent,
                _ => return None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_found() {
        assert_eq!(host("https://Example.COM/a?b=1").as_deref(), Some("example.com"));
        assert_eq!(host("http://user:pw@evil.example:8080/x").as_deref(), Some("evil.example"));
        assert_eq!(host("https://example.com./").as_deref(), Some("example.com"));
        assert_eq!(host("mailto:bob@mail.example?subject=x").as_deref(), Some("mail.example"));
        assert_eq!(host("//cdn.example/x").as_deref(), Some("cdn.example"));
        assert_eq!(host("www.example.org/page").as_deref(), Some("www.example.org"));
        assert_eq!(host("https://[::1]:80/").as_deref(), Some("::1"));
        assert_eq!(host("/relative/path"), None);
        assert_eq!(host("javascript:alert(1)"), None);
    }

    #[test]
    fn blocked_domains_cover_subdomains_only() {
        let list = DomainList::new("# test\nbad.example\n*.worse.example\nhttps://phish.example/login\n\n");
        assert_eq!(list.len(), 3);
        assert_eq!(list.blocked("https://bad.example/x"), Some("bad.example"));
        assert_eq!(list.blocked("https://a.b.BAD.example"), Some("bad.example"));
        assert_eq!(list.blocked("http://worse.example"), Some("worse.example"));
        assert_eq!(list.blocked("https://phish.example/other"), Some("phish.example"));
        assert_eq!(list.blocked("https://notbad.example"), None);
        assert_eq!(list.blocked("https://bad.example.com"), None);
        assert_eq!(list.blocked("https://example.com"), None);
        assert!(DomainList::new("").is_empty());
    }
}
