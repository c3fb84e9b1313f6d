//! Rules every string shares: a length limit, and no characters that cannot work.

use super::path::FieldPath;
use super::violation::{Reason, Violations};

/// Longest value quoted back in a description: a description explains, it does not echo input.
const MAX_QUOTED_CHARS: usize = 64;

/// What a string may contain besides printable characters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Text {
    /// One line: no control characters at all (names, images, versions).
    Line,
    /// Free text (env values, arguments, descriptions, manifests): tabs and line breaks too.
    /// NUL never: a process's argv and environment are NUL-terminated C strings, so a NUL cuts
    /// the value short (or fails the exec).
    Multiline,
}

/// Checks `value`'s length (bytes) against `max` and then its characters. Records at most one
/// violation at `path`; true when the value passed.
pub fn check(
    violations: &mut Violations,
    path: &FieldPath,
    value: &str,
    max: usize,
    kind: Text,
) -> bool {
    if value.len() > max {
        violations.add(
            path.clone(),
            Reason::TooLong,
            format!("must be at most {max} bytes, got {}", value.len()),
        );
        return false;
    }
    if let Some((at, bad)) = value.char_indices().find(|(_, c)| !allowed(*c, kind)) {
        violations.add(
            path.clone(),
            Reason::InvalidCharacter,
            format!(
                "contains the control character U+{:04X} at byte {at}",
                u32::from(bad)
            ),
        );
        return false;
    }
    true
}

fn allowed(c: char, kind: Text) -> bool {
    match kind {
        Text::Line => !c.is_control(),
        Text::Multiline => !c.is_control() || matches!(c, '\t' | '\n' | '\r'),
    }
}

/// `value` quoted for a description, cut short when long.
pub fn quoted(value: &str) -> String {
    let mut shown: String = value.chars().take(MAX_QUOTED_CHARS).collect();
    if shown.len() < value.len() {
        shown.push('…');
    }
    format!("{shown:?}")
}

#[cfg(test)]
mod tests {
    use super::super::path::{Naming, fields};
    use super::*;

    fn one(value: &str, max: usize, kind: Text) -> Vec<(String, String)> {
        let mut violations = Violations::default();
        check(
            &mut violations,
            &FieldPath::of(fields::DESCRIPTION),
            value,
            max,
            kind,
        );
        violations
            .render(Naming::Proto)
            .into_iter()
            .map(|v| (v.reason, v.description))
            .collect()
    }

    #[test]
    fn length_then_characters() {
        assert!(one("fine\twith\nbreaks", 100, Text::Multiline).is_empty());
        assert_eq!(
            one("abcd", 3, Text::Line),
            [(
                "TOO_LONG".to_owned(),
                "must be at most 3 bytes, got 4".to_owned()
            )]
        );
        assert_eq!(
            one("a\0b", 10, Text::Multiline),
            [(
                "INVALID_CHARACTER".to_owned(),
                "contains the control character U+0000 at byte 1".to_owned()
            )]
        );
        assert_eq!(one("a\nb", 10, Text::Line)[0].0, "INVALID_CHARACTER");
    }

    #[test]
    fn quotes_are_short() {
        assert_eq!(quoted("mars-1"), "\"mars-1\"");
        assert_eq!(quoted(&"x".repeat(100)), format!("\"{}…\"", "x".repeat(64)));
    }
}
