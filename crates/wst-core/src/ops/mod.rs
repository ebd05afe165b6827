//! The operations, one module each: backup (the pipeline and its run report), verify, list,
//! restore, drill, prune, replicate, the 3-2-1 check and the compliance status. The
//! [`Repository`](crate::Repository) composes them over its catalog.

pub(crate) mod compliance;
pub(crate) mod drill;
pub(crate) mod list;
pub(crate) mod pipeline;
pub(crate) mod placement;
pub(crate) mod prune;
pub(crate) mod replicate;
pub(crate) mod report;
pub(crate) mod restore;
pub(crate) mod three_two_one;
pub(crate) mod verify;
