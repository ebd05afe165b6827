//! `keygen`: generate an encryption key file (mode 0600, never overwritten).

use std::path::{Path, PathBuf};

use wst::crypto::Key;

use crate::Out;
use crate::output::say;

/// Writes a new key to `out`, or to the configured key file.
pub(crate) fn keygen(config: &Path, out: Option<&PathBuf>) -> Out<u8> {
    let path = match out {
        Some(p) => p.clone(),
        None => crate::config::load_config(config)?.encryption.key_file,
    };
    if let Some(dir) = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty() && !d.exists())
    {
        // The key's directory is created owner-only: keys live apart from backups.
        let mut b = std::fs::DirBuilder::new();
        b.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
        b.create(dir)?;
    }
    let key = Key::generate()?;
    key.write_to(&path)?;
    say!(
        "wrote {} (fingerprint {}); keep a copy offline, apart from the backups",
        path.display(),
        key.fingerprint()
    );
    Ok(0)
}
