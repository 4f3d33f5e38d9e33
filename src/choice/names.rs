//! Names people and programs give, each with its rule and message in one place: a program's
//! [`Source`] and a person's [`DisplayName`].

use super::{MAX_NAME, MAX_SOURCE, Rejection, invalid};

/// The program or project that asks (or writes a note): 1 to 64 characters once trimmed, no
/// control characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source(String);

impl Source {
    /// `raw` trimmed; blank is none, too long or with control characters is refused.
    pub fn parse(raw: &str) -> Result<Option<Source>, Rejection> {
        Ok(bounded(raw, MAX_SOURCE)
            .map_err(|()| invalid("source", Source::RULE))?
            .map(Source))
    }

    /// Like [`Source::parse`], where one is required.
    pub fn required(raw: &str) -> Result<Source, Rejection> {
        Source::parse(raw)?.ok_or_else(|| invalid("source", Source::RULE))
    }

    const RULE: &str = "source is 1 to 64 characters, without control characters";

    /// A name the server did not choose and cannot refuse (an MCP client's), made to fit.
    pub fn fitted(raw: &str) -> Option<Source> {
        fit(raw, MAX_SOURCE).map(Source)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<Source> for String {
    fn from(source: Source) -> String {
        source.0
    }
}

/// What a person calls themselves (`POST /name`, an approver): 1 to 40 characters once
/// trimmed, no control characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DisplayName(String);

impl DisplayName {
    /// `raw` trimmed; blank is none, too long or with control characters is refused, naming
    /// `field`.
    pub fn parse(field: &str, raw: &str) -> Result<Option<DisplayName>, Rejection> {
        Ok(bounded(raw, MAX_NAME)
            .map_err(|()| invalid(field, DisplayName::RULE))?
            .map(DisplayName))
    }

    /// Like [`DisplayName::parse`], where one is required.
    pub fn required(field: &str, raw: &str) -> Result<DisplayName, Rejection> {
        DisplayName::parse(field, raw)?.ok_or_else(|| invalid(field, DisplayName::RULE))
    }

    const RULE: &str = "a name is 1 to 40 characters, without control characters";

    /// A name read back from where we stored it (a browser's cookie), made to fit.
    pub fn fitted(raw: &str) -> Option<DisplayName> {
        fit(raw, MAX_NAME).map(DisplayName)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<DisplayName> for String {
    fn from(name: DisplayName) -> String {
        name.0
    }
}

/// The rule both names share: trimmed, blank is none, at most `max` characters and none of
/// them a control character.
fn bounded(raw: &str, max: usize) -> Result<Option<String>, ()> {
    let name = raw.trim();
    if name.is_empty() {
        return Ok(None);
    }
    if name.chars().count() > max || name.chars().any(char::is_control) {
        return Err(());
    }
    Ok(Some(name.to_string()))
}

/// A name made to fit the same rule: control characters dropped, cut to `max`.
fn fit(raw: &str, max: usize) -> Option<String> {
    let name: String = raw
        .trim()
        .chars()
        .filter(|c| !c.is_control())
        .take(max)
        .collect();
    (!name.is_empty()).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_is_trimmed_blank_is_none_and_too_long_is_refused() {
        assert_eq!(Source::parse("  ci ").unwrap().unwrap().as_str(), "ci");
        assert_eq!(Source::parse("   ").unwrap(), None);
        assert!(Source::parse(&"x".repeat(65)).is_err());
        assert!(Source::parse("a\u{7}b").is_err());
        assert_eq!(
            Source::fitted(&"é".repeat(70))
                .unwrap()
                .as_str()
                .chars()
                .count(),
            64
        );
        assert_eq!(Source::fitted(" \n "), None);
    }

    #[test]
    fn a_display_name_is_trimmed_and_at_most_forty_characters() {
        let name = DisplayName::parse("name", " Ana ").unwrap().unwrap();
        assert_eq!(name.as_str(), "Ana");
        assert_eq!(DisplayName::parse("name", "").unwrap(), None);
        let too_long = DisplayName::parse("approvers[2]", &"x".repeat(41)).unwrap_err();
        assert_eq!(too_long, invalid("approvers[2]", DisplayName::RULE));
        assert_eq!(DisplayName::RULE.matches("40").count(), MAX_NAME / 40);
        assert!(Source::RULE.contains(&MAX_SOURCE.to_string()));
        assert_eq!(DisplayName::fitted("a\u{0}b").unwrap().as_str(), "ab");
    }
}
