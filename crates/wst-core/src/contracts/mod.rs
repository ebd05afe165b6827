//! The contracts: the traits implementations provide ([`Source`](crate::Source),
//! [`Sink`](crate::Sink), [`Cipher`](crate::Cipher),
//! [`RetentionPolicy`](crate::RetentionPolicy)), the error type, progress hooks and the clock.
//! Nothing here does I/O of its own.

pub(crate) mod cipher;
pub(crate) mod clock;
pub(crate) mod error;
pub(crate) mod progress;
pub(crate) mod retention;
pub(crate) mod sink;
pub(crate) mod source;
