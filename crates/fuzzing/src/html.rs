//! Reading rendered HTML the way a browser's tokenizer does (html5ever, the parser ammonia itself
//! uses) and naming whatever in it could run: a script or other active element, an event handler,
//! a `style` attribute, or a URL with a scheme other than the three the sanitiser allows. Text is
//! text: `&lt;script&gt;` or `onclick=` in a paragraph is no finding.

use html5ever::tendril::StrTendril;
use html5ever::tokenizer::{
    BufferQueue, Tag, TagKind, Token, TokenSink, TokenSinkResult, Tokenizer, TokenizerOpts,
};
use std::cell::RefCell;

/// Something in rendered HTML that must not be there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Danger {
    /// An element that runs code, loads something, or changes how the page is read.
    Element(String),
    /// An `on...` attribute.
    EventHandler { element: String, attribute: String },
    /// A `style` attribute.
    Style { element: String },
    /// A URL attribute whose scheme is not `http`, `https` or `mailto`.
    Url { element: String, attribute: String, value: String },
    /// A link without `rel="nofollow noopener noreferrer"`.
    LinkWithoutRel { href: String },
    /// An `input` that is not a check box (the only one markdown makes, for task lists).
    Input(String),
}

/// Elements that may never appear.
const FORBIDDEN: &[&str] = &[
    "script",
    "style",
    "iframe",
    "frame",
    "frameset",
    "object",
    "embed",
    "applet",
    "base",
    "meta",
    "link",
    "form",
    "button",
    "select",
    "textarea",
    "svg",
    "math",
    "template",
    "noscript",
    "img",
    "image",
    "video",
    "audio",
    "source",
    "track",
    "picture",
    "portal",
    "marquee",
    "xmp",
    "plaintext",
    "noembed",
    "noframes",
    "html",
    "head",
    "body",
    "title",
    "param",
    "dialog",
];

/// Attributes that hold a URL.
const URL_ATTRIBUTES: &[&str] = &[
    "href",
    "src",
    "action",
    "formaction",
    "xlink:href",
    "background",
    "poster",
    "data",
    "cite",
    "srcset",
    "lowsrc",
    "dynsrc",
    "ping",
    "manifest",
    "codebase",
    "longdesc",
    "usemap",
    "itemtype",
];

/// The schemes the sanitiser lets through.
const ALLOWED_SCHEMES: &[&str] = &["http", "https", "mailto"];

/// The scheme of a URL as a browser reads it (leading and trailing spaces and controls dropped,
/// tabs and newlines dropped anywhere), lower-cased; `None` for a relative URL.
fn scheme(url: &str) -> Option<String> {
    let cleaned: String =
        url.trim_matches(|c: char| c <= ' ').chars().filter(|c| !matches!(c, '\t' | '\n' | '\r')).collect();
    let (scheme, _) = cleaned.split_once(':')?;
    let mut chars = scheme.chars();
    let first = chars.next()?;
    (first.is_ascii_alphabetic() && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
        .then(|| scheme.to_ascii_lowercase())
}

struct Sink(RefCell<Vec<Danger>>);

impl Sink {
    fn tag(&self, tag: &Tag) {
        let mut found = self.0.borrow_mut();
        let element = tag.name.to_string().to_ascii_lowercase();
        if FORBIDDEN.contains(&element.as_str()) {
            found.push(Danger::Element(element.clone()));
        }
        let attr = |name: &str| {
            tag.attrs
                .iter()
                .find(|a| a.name.local.to_string().eq_ignore_ascii_case(name))
                .map(|a| a.value.to_string())
        };
        for a in &tag.attrs {
            let name = a.name.local.to_string().to_ascii_lowercase();
            let value: &str = &a.value;
            if name.starts_with("on") {
                found.push(Danger::EventHandler { element: element.clone(), attribute: name.clone() });
            }
            if name == "style" {
                found.push(Danger::Style { element: element.clone() });
            }
            if URL_ATTRIBUTES.contains(&name.as_str())
                && let Some(s) = scheme(value)
                && !ALLOWED_SCHEMES.contains(&s.as_str())
            {
                found.push(Danger::Url {
                    element: element.clone(),
                    attribute: name,
                    value: value.to_owned(),
                });
            }
        }
        if element == "a"
            && let Some(href) = attr("href")
            && attr("rel").as_deref() != Some("nofollow noopener noreferrer")
        {
            found.push(Danger::LinkWithoutRel { href });
        }
        if element == "input"
            && attr("type").as_deref().map(str::to_ascii_lowercase).as_deref() != Some("checkbox")
        {
            found.push(Danger::Input(attr("type").unwrap_or_default()));
        }
    }
}

impl TokenSink for Sink {
    type Handle = ();

    fn process_token(&self, token: Token, _line: u64) -> TokenSinkResult<()> {
        if let Token::TagToken(tag) = &token
            && tag.kind == TagKind::StartTag
        {
            self.tag(tag);
        }
        TokenSinkResult::Continue
    }
}

/// Everything dangerous in a piece of HTML; empty when it is safe to show.
pub fn dangers(html: &str) -> Vec<Danger> {
    let input = BufferQueue::default();
    input.push_back(StrTendril::from_slice(html));
    let tokenizer = Tokenizer::new(Sink(RefCell::new(Vec::new())), TokenizerOpts::default());
    let _ = tokenizer.feed(&input);
    tokenizer.end();
    tokenizer.sink.0.take()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_not_a_finding() {
        assert!(dangers("<p>&lt;script&gt;alert(1)&lt;/script&gt; onclick=x javascript:y</p>").is_empty());
        assert!(dangers("<a href=\"https://x.y/\" rel=\"nofollow noopener noreferrer\">x</a>").is_empty());
        assert!(dangers("<a href=\"/relative\" rel=\"nofollow noopener noreferrer\">x</a>").is_empty());
        assert!(dangers("<ul><li><input type=\"checkbox\" disabled=\"\"> x</li></ul>").is_empty());
        assert!(dangers("<pre><code>&lt;img src=x onerror=alert(1)&gt;</code></pre>").is_empty());
    }

    #[test]
    fn scripts_handlers_and_schemes_are_found() {
        assert_eq!(dangers("<script>x</script>"), vec![Danger::Element("script".into())]);
        assert!(matches!(dangers("<b OnClick=x>")[..], [Danger::EventHandler { .. }]));
        assert!(matches!(dangers("<span style=\"x\">")[..], [Danger::Style { .. }]));
        for url in ["javascript:x", " JaVa\tScRiPt:x", "&#106;avascript:x", "vbscript:x", "data:text/html,x"]
        {
            let html = format!("<a href=\"{url}\" rel=\"nofollow noopener noreferrer\">x</a>");
            assert!(matches!(dangers(&html)[..], [Danger::Url { .. }]), "{html}");
        }
        assert!(matches!(dangers("<a href=\"https://x.y/\">x</a>")[..], [Danger::LinkWithoutRel { .. }]));
        assert!(matches!(dangers("<input type=\"image\">")[..], [Danger::Input(_)]));
    }
}
