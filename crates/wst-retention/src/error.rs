//! The error type of wst-retention.

/// Why a policy or an input cannot be planned. Planning never fails half-way: an error means no
/// plan, and therefore no deletion.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The policy has no keep rule (every count zero and no `keep_within`). Refused rather than
    /// read as "delete everything".
    #[error(
        "the retention policy keeps nothing by rule (every keep_* count is 0 and keep_within is \
         unset); set at least one, e.g. keep_daily = 7, or use a preset (rolling, gfs)"
    )]
    EmptyPolicy,
    /// A duration field is negative, or uses units it cannot use (`min_age` is elapsed time: up
    /// to weeks, no months or years).
    #[error("policy field `{field}` = `{value}` is invalid: {reason}")]
    InvalidDuration {
        /// The field, e.g. `min_age`.
        field: &'static str,
        /// The value as written (ISO 8601 form).
        value: String,
        /// What is wrong and what to write instead.
        reason: String,
    },
    /// Two durations contradict each other (e.g. `max_age` not longer than `min_age`, which
    /// would ask to delete backups that doctrine R4 forbids deleting).
    #[error("conflicting retention durations: {0}")]
    ConflictingDurations(String),
    /// The same artifact name appears twice in the input: a listing bug or two sinks mixed up.
    #[error(
        "backup `{name}` appears more than once in the input; plan one sink's listing at a time"
    )]
    DuplicateName {
        /// The repeated name.
        name: String,
    },
    /// A time computation left the supported range (year -9999 to 9999).
    #[error("time out of range while computing {what}: {detail}")]
    TimeOutOfRange {
        /// What was being computed, e.g. `the max_age cutoff`.
        what: &'static str,
        /// jiff's explanation.
        detail: String,
    },
    /// The time zone name is not in the time zone database.
    #[error(
        "unknown time zone `{name}`: {detail}; use an IANA name such as `Europe/Amsterdam` or `UTC`"
    )]
    UnknownTimeZone {
        /// The name as given.
        name: String,
        /// jiff's explanation.
        detail: String,
    },
    /// `rolling(n)` outside the doctrine's recommended 7 to 14 artifacts (doctrine 026 R4).
    #[error(
        "rolling({count}) is outside doctrine R4's recommended 7 to 14 artifacts; use a custom \
         policy with keep_last = {count} if this is intended"
    )]
    RollingCountOutOfRange {
        /// The count asked for.
        count: u32,
    },
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<Error> for wst_core::Error {
    fn from(e: Error) -> Self {
        wst_core::Error::Retention(e.to_string())
    }
}
