//! Why an input was rejected: the stable reason codes of events.md.

/// A stable rejection reason code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    TooLarge,
    BadUtf8,
    BadJson,
    MissingField,
    BadValue,
    UnknownAction,
    BadTimestamp,
    FutureTimestamp,
    Late,
}

impl Reason {
    /// Every reason, in the order of events.md.
    pub const ALL: &'static [Reason] = &[
        Reason::TooLarge,
        Reason::BadUtf8,
        Reason::BadJson,
        Reason::MissingField,
        Reason::BadValue,
        Reason::UnknownAction,
        Reason::BadTimestamp,
        Reason::FutureTimestamp,
        Reason::Late,
    ];

    /// The code written to the lake and the metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::TooLarge => "too_large",
            Reason::BadUtf8 => "bad_utf8",
            Reason::BadJson => "bad_json",
            Reason::MissingField => "missing_field",
            Reason::BadValue => "bad_value",
            Reason::UnknownAction => "unknown_action",
            Reason::BadTimestamp => "bad_timestamp",
            Reason::FutureTimestamp => "future_timestamp",
            Reason::Late => "late",
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A rejected input: the reason and a human-readable detail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    pub reason: Reason,
    pub detail: Option<String>,
}

impl Rejection {
    pub fn new(reason: Reason, detail: impl Into<String>) -> Self {
        Rejection {
            reason,
            detail: Some(detail.into()),
        }
    }
}
