//! What a rule reports: a field path, a machine-readable reason and a description, collected into
//! a bounded list and rendered in the caller's [`Naming`].

use testcluster_api::internal::v1::FieldViolation;

use super::limits::MAX_VIOLATIONS;
use super::path::{Field, FieldPath, Naming};

/// Machine-readable reasons, `UPPER_SNAKE_CASE` as `google.rpc.BadRequest` wants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// A required field is unset.
    Required,
    /// An optional string is set but empty.
    Empty,
    /// A string is longer than its limit.
    TooLong,
    /// A list or map has more entries than its limit.
    TooMany,
    /// The sum of several fields is over its limit.
    TooLarge,
    /// A number is out of its range.
    OutOfRange,
    /// A name does not follow its naming rule.
    InvalidName,
    /// A label or annotation key does not follow Kubernetes' rule.
    InvalidKey,
    /// A value has the wrong shape.
    InvalidValue,
    /// An image reference does not parse.
    InvalidImage,
    /// A NUL or control character where it cannot work.
    InvalidCharacter,
    /// A name the services set themselves.
    Reserved,
    /// The same name twice.
    Duplicate,
    /// Two fields that exclude each other.
    Conflict,
    /// Two fields that must agree do not.
    Mismatch,
    /// `spec.configTemplate` names no template the provisioner has.
    UnknownTemplate,
    /// A reference the job may not follow (another run's Secret or ConfigMap).
    Forbidden,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Required => "REQUIRED",
            Reason::Empty => "EMPTY",
            Reason::TooLong => "TOO_LONG",
            Reason::TooMany => "TOO_MANY",
            Reason::TooLarge => "TOO_LARGE",
            Reason::OutOfRange => "OUT_OF_RANGE",
            Reason::InvalidName => "INVALID_NAME",
            Reason::InvalidKey => "INVALID_KEY",
            Reason::InvalidValue => "INVALID_VALUE",
            Reason::InvalidImage => "INVALID_IMAGE",
            Reason::InvalidCharacter => "INVALID_CHARACTER",
            Reason::Reserved => "RESERVED",
            Reason::Duplicate => "DUPLICATE",
            Reason::Conflict => "CONFLICT",
            Reason::Mismatch => "MISMATCH",
            Reason::UnknownTemplate => "UNKNOWN_TEMPLATE",
            Reason::Forbidden => "FORBIDDEN",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    Text(String),
    Path(FieldPath),
}

/// A description that may name other fields; those are rendered in the same [`Naming`] as the
/// violation's own path ("set either value or value_from" / "… or valueFrom").
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Message(Vec<Piece>);

impl Message {
    pub fn text(self, text: impl Into<String>) -> Message {
        self.with(Piece::Text(text.into()))
    }

    /// A path named in the description.
    pub fn path(self, path: &FieldPath) -> Message {
        self.with(Piece::Path(path.clone()))
    }

    /// A single field named in the description (a sibling of the violation's field).
    pub fn field(self, field: Field) -> Message {
        self.with(Piece::Path(FieldPath::of(field)))
    }

    /// This message followed by `other`.
    pub fn then(mut self, other: Message) -> Message {
        self.0.extend(other.0);
        self
    }

    fn with(mut self, piece: Piece) -> Message {
        self.0.push(piece);
        self
    }

    pub fn render(&self, naming: Naming) -> String {
        self.0
            .iter()
            .map(|piece| match piece {
                Piece::Text(text) => text.clone(),
                Piece::Path(path) => path.render(naming),
            })
            .collect()
    }
}

impl From<String> for Message {
    fn from(text: String) -> Message {
        Message(vec![Piece::Text(text)])
    }
}

impl From<&str> for Message {
    fn from(text: &str) -> Message {
        Message::from(text.to_owned())
    }
}

/// One invalid field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub path: FieldPath,
    pub reason: Reason,
    pub description: Message,
}

impl Violation {
    pub fn render(&self, naming: Naming) -> FieldViolation {
        FieldViolation {
            field: self.path.render(naming),
            description: self.description.render(naming),
            reason: self.reason.as_str().to_owned(),
        }
    }
}

/// The violations found, in the order the rules ran. At most [`MAX_VIOLATIONS`] are kept: they
/// travel in a gRPC trailer and a condition message, both of which must stay small, and the
/// first few are enough to fix a request; the rest are counted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Violations {
    kept: Vec<Violation>,
    dropped: usize,
}

impl Violations {
    pub fn add(&mut self, path: FieldPath, reason: Reason, description: impl Into<Message>) {
        if self.kept.len() < MAX_VIOLATIONS {
            self.kept.push(Violation {
                path,
                reason,
                description: description.into(),
            });
        } else {
            self.dropped += 1;
        }
    }

    pub fn is_empty(&self) -> bool {
        self.kept.is_empty()
    }

    pub fn len(&self) -> usize {
        self.kept.len() + self.dropped
    }

    /// Whether a violation at exactly `path` was recorded (to skip a second one for it).
    pub fn has(&self, path: &FieldPath) -> bool {
        self.kept.iter().any(|violation| &violation.path == path)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Violation> {
        self.kept.iter()
    }

    /// The violations kept, rendered in `naming`.
    pub fn render(&self, naming: Naming) -> Vec<FieldViolation> {
        self.kept.iter().map(|v| v.render(naming)).collect()
    }

    /// One line for a condition message or an Event: `field: description; field: description`,
    /// ending with how many more there were when some were dropped.
    pub fn summary(&self, naming: Naming) -> String {
        let mut parts: Vec<String> = self
            .kept
            .iter()
            .map(|v| {
                format!(
                    "{}: {}",
                    v.path.render(naming),
                    v.description.render(naming)
                )
            })
            .collect();
        if self.dropped > 0 {
            parts.push(format!("and {} more", self.dropped));
        }
        parts.join("; ")
    }
}

#[cfg(test)]
mod tests {
    use super::super::path::fields;
    use super::*;

    #[test]
    fn descriptions_name_fields_in_the_same_spelling() {
        let mut violations = Violations::default();
        let env = FieldPath::of(fields::SPEC)
            .field(fields::JOB_SPEC)
            .field(fields::RUNNER)
            .field(fields::ENV)
            .index(0);
        violations.add(
            env.field(fields::VALUE_FROM),
            Reason::Conflict,
            Message::default()
                .text("set either ")
                .field(fields::VALUE)
                .text(" or ")
                .field(fields::VALUE_FROM),
        );
        assert_eq!(
            violations.summary(Naming::Proto),
            "spec.job_spec.runner.env[0].value_from: set either value or value_from"
        );
        assert_eq!(
            violations.summary(Naming::Crd),
            "spec.jobSpec.runner.env[0].valueFrom: set either value or valueFrom"
        );
    }

    #[test]
    fn the_list_is_bounded() {
        let mut violations = Violations::default();
        for _ in 0..MAX_VIOLATIONS + 3 {
            violations.add(FieldPath::of(fields::NAME), Reason::Required, "x");
        }
        assert_eq!(violations.render(Naming::Proto).len(), MAX_VIOLATIONS);
        assert_eq!(violations.len(), MAX_VIOLATIONS + 3);
        assert!(violations.summary(Naming::Proto).ends_with("; and 3 more"));
    }
}
