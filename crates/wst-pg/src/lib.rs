//! wst-pg: part of wst (under construction).
