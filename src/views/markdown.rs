//! Prompts are Markdown, rendered and then sanitised: no raw HTML survives, links keep only
//! safe schemes (no `javascript:`), and nothing can carry an htmx attribute.

use pulldown_cmark::{Event, Options, Parser, html};

pub fn render(markdown: &str) -> String {
    // Raw HTML in the prompt is shown as text, as API.md promises, not parsed.
    let events = Parser::new_ext(
        markdown,
        Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TABLES,
    )
    .map(|event| match event {
        Event::Html(raw) | Event::InlineHtml(raw) => Event::Text(raw),
        other => other,
    });
    let mut unsafe_html = String::with_capacity(markdown.len() * 3 / 2);
    html::push_html(&mut unsafe_html, events);
    ammonia::Builder::default()
        .url_schemes(["http", "https", "mailto"].into())
        .link_rel(Some("noopener noreferrer nofollow"))
        .clean(&unsafe_html)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::render;

    #[test]
    fn raw_html_and_script_links_do_not_survive() {
        let out = render(
            "Hi <script>alert(1)</script> [x](javascript:alert(1)) <img src=x onerror=alert(1)> **bold**",
        );
        assert!(!out.contains("<script"), "{out}");
        assert!(!out.contains("javascript:"), "{out}");
        assert!(!out.contains("<img"), "{out}");
        assert!(out.contains("&lt;script&gt;"), "{out}");
        assert!(out.contains("<strong>bold</strong>"), "{out}");
    }

    #[test]
    fn htmx_attributes_cannot_be_smuggled_in() {
        let out = render(
            "<div hx-get=\"/x\" hx-trigger=\"load\">x</div>\n\nsee [a](https://example.com \"t\")",
        );
        assert!(!out.contains("<div hx-get"), "{out}");
        assert!(out.contains("href=\"https://example.com\""), "{out}");
    }
}
