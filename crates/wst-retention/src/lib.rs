//! wst-retention: part of wst (under construction).
