//! Kubernetes label selectors (`a=b,c!=d,e in (x,y),!f`) parsed for matching against the cache,
//! with the API server's grammar: `=`/`==`, `!=`, `in`, `notin`, `key` (exists), `!key`.

use std::collections::BTreeSet;

use kube::core::{Expression, Selector};

/// Parses `text`; an empty text selects everything. The error says what is wrong, for a field
/// violation.
pub fn parse(text: &str) -> Result<Selector, String> {
    if text.trim().is_empty() {
        return Ok(Selector::default());
    }
    let mut expressions = Vec::new();
    for requirement in split_requirements(text)? {
        let requirement = requirement.trim();
        if requirement.is_empty() {
            return Err("empty requirement".to_owned());
        }
        expressions.push(parse_requirement(requirement)?);
    }
    Ok(Selector::from_iter(expressions))
}

/// Splits at commas outside parentheses.
fn split_requirements(text: &str) -> Result<Vec<&str>, String> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0u32, 0);
    for (at, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth = depth
                    .checked_sub(1)
                    .ok_or_else(|| "unbalanced ')'".to_owned())?;
            }
            ',' if depth == 0 => {
                parts.push(&text[start..at]);
                start = at + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err("unbalanced '('".to_owned());
    }
    parts.push(&text[start..]);
    Ok(parts)
}

fn parse_requirement(requirement: &str) -> Result<Expression, String> {
    if let Some(key) = requirement.strip_prefix('!') {
        return Ok(Expression::DoesNotExist(key_of(key)?));
    }
    if let Some((key, value)) = requirement.split_once("!=") {
        return Ok(Expression::NotEqual(key_of(key)?, value_of(value)?));
    }
    if let Some((key, value)) = requirement
        .split_once("==")
        .or_else(|| requirement.split_once('='))
    {
        return Ok(Expression::Equal(key_of(key)?, value_of(value)?));
    }
    let (key, rest) = match requirement.split_once(char::is_whitespace) {
        Some((key, rest)) => (key, rest.trim()),
        None => return Ok(Expression::Exists(key_of(requirement)?)),
    };
    let key = key_of(key)?;
    let (operator, values) = match rest.find('(') {
        Some(at) => (rest[..at].trim(), &rest[at..]),
        None => return Err(format!("expected (values) in {requirement:?}")),
    };
    let values = set_of(values)?;
    match operator {
        "in" => Ok(Expression::In(key, values)),
        "notin" => Ok(Expression::NotIn(key, values)),
        other => Err(format!("unknown operator {other:?} in {requirement:?}")),
    }
}

fn set_of(values: &str) -> Result<BTreeSet<String>, String> {
    let inner = values
        .trim()
        .strip_prefix('(')
        .and_then(|v| v.strip_suffix(')'))
        .ok_or_else(|| format!("expected (values), got {values:?}"))?;
    inner.split(',').map(value_of).collect()
}

/// A label key: an optional DNS-subdomain prefix and `/`, then a name of letters, digits, `-`,
/// `_` and `.`.
fn key_of(key: &str) -> Result<String, String> {
    let key = key.trim();
    let name = key.rsplit_once('/').map_or(key, |(_, name)| name);
    if name.is_empty() || !name.chars().all(is_label_char) {
        return Err(format!("invalid label key {key:?}"));
    }
    Ok(key.to_owned())
}

fn value_of(value: &str) -> Result<String, String> {
    let value = value.trim();
    if !value.chars().all(is_label_char) {
        return Err(format!("invalid label value {value:?}"));
    }
    Ok(value.to_owned())
}

fn is_label_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use kube::core::SelectorExt as _;

    use super::*;

    #[test]
    fn parses_the_api_server_grammar() {
        let cases = [
            ("", "", true),
            ("team=net", "team=net", true),
            ("team==net", "team=net", true),
            ("team!=net", "team!=net", false),
            ("team in (net, ci)", "team in (ci,net)", true),
            ("team notin (net)", "team notin (net)", false),
            ("team", "team", true),
            ("!team", "!team", false),
            (
                "ci.cilium.io/github-commit-hash=abc, team",
                "ci.cilium.io/github-commit-hash=abc,team",
                false,
            ),
        ];
        let on = BTreeMap::from([("team".to_owned(), "net".to_owned())]);
        for (text, canonical, matches) in cases {
            let selector = parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
            assert_eq!(selector.to_string(), canonical, "{text:?}");
            assert_eq!(selector.matches(&on), matches, "{text:?}");
        }
    }

    #[test]
    fn refuses_what_the_api_server_refuses() {
        for text in ["a b c", "=net", "team in net", "team in (a", "a,,b", "x>1"] {
            assert!(parse(text).is_err(), "{text:?} accepted");
        }
        // An empty value is valid: it matches an empty label.
        assert!(parse("team=").is_ok());
    }
}
