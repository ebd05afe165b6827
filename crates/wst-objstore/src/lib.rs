//! wst-objstore: part of wst (under construction).
