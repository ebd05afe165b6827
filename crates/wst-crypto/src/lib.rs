//! wst-crypto: part of wst (under construction).
