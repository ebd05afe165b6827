//! Key files, passphrase files, fingerprints and redaction.

mod common;

use std::fs;
use std::path::Path;

use common::{key, seal, small_kdf};
use wst_core::Cipher;
use wst_crypto::{AeadCipher, Error, KEY_FILE_PREFIX, KdfParams, Key, Passphrase};

fn write(path: &Path, content: &[u8]) {
    fs::write(path, content).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(0o600)).unwrap();
    }
}

#[test]
fn generate_write_load_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("backup.key");
    let k = Key::generate().unwrap();
    k.write_to(&path).unwrap();
    let text = fs::read_to_string(&path).unwrap();
    assert!(text.starts_with(KEY_FILE_PREFIX) && text.ends_with('\n'));
    assert_eq!(text.len(), KEY_FILE_PREFIX.len() + 64 + 1);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let back = Key::load(&path).unwrap();
    assert_eq!(back.fingerprint(), k.fingerprint());
    // Two generated keys differ.
    assert_ne!(Key::generate().unwrap().fingerprint(), k.fingerprint());
    // The pipeline's one-liner.
    let c = AeadCipher::from_key_file(&path).unwrap();
    assert_eq!(c.recipients(), vec![k.fingerprint()]);
}

#[test]
fn write_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k");
    key(1).write_to(&path).unwrap();
    match key(2).write_to(&path) {
        Err(Error::KeyFileExists { path: p }) => assert_eq!(p, path),
        other => panic!("expected KeyFileExists, got {other:?}"),
    }
    assert_eq!(
        Key::load(&path).unwrap().fingerprint(),
        key(1).fingerprint()
    );
}

#[test]
fn missing_key_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nope.key");
    match Key::load(&path) {
        Err(Error::KeyFileMissing { path: p }) => assert_eq!(p, path),
        other => panic!("expected KeyFileMissing, got {other:?}"),
    }
}

#[cfg(unix)]
#[test]
fn key_file_readable_by_others_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k");
    key(1).write_to(&path).unwrap();
    for mode in [0o644, 0o640, 0o604, 0o660, 0o602] {
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        let err = Key::load(&path).unwrap_err();
        match &err {
            Error::KeyFilePermissions { path: p, mode: m } => {
                assert_eq!(p, &path);
                assert_eq!(*m, mode);
            }
            other => panic!("mode {mode:o}: expected KeyFilePermissions, got {other:?}"),
        }
        let msg = err.to_string();
        assert!(
            msg.contains("chmod 600") && msg.contains(&format!("{mode:04o}")),
            "{msg}"
        );
    }
    fs::set_permissions(&path, fs::Permissions::from_mode(0o400)).unwrap();
    Key::load(&path).unwrap();
}

#[test]
fn a_directory_is_not_a_key_file() {
    let dir = tempfile::tempdir().unwrap();
    match Key::load(dir.path()) {
        Err(Error::KeyFileFormat { path, reason }) => {
            assert_eq!(path, dir.path());
            assert!(reason.contains("not a regular file"), "{reason}");
        }
        other => panic!("expected KeyFileFormat, got {other:?}"),
    }
}

#[test]
fn malformed_key_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let hex64 = "ab".repeat(32);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", b"".to_vec()),
        ("raw bytes", vec![7u8; 32]),
        ("no prefix", format!("{hex64}\n").into_bytes()),
        ("wrong prefix", format!("wst-key-v2:{hex64}\n").into_bytes()),
        (
            "short",
            format!("{KEY_FILE_PREFIX}{}\n", "ab".repeat(31)).into_bytes(),
        ),
        (
            "long",
            format!("{KEY_FILE_PREFIX}{}\n", "ab".repeat(33)).into_bytes(),
        ),
        (
            "not hex",
            format!("{KEY_FILE_PREFIX}{}zz\n", "ab".repeat(31)).into_bytes(),
        ),
        (
            "two lines",
            format!("{KEY_FILE_PREFIX}{hex64}\n\n").into_bytes(),
        ),
        (
            "trailing space",
            format!("{KEY_FILE_PREFIX}{hex64} \n").into_bytes(),
        ),
        (
            "base64",
            format!("{KEY_FILE_PREFIX}q6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s=\n").into_bytes(),
        ),
        ("huge", vec![b'a'; 10_000]),
    ];
    for (name, content) in cases {
        let path = dir.path().join(name);
        write(&path, &content);
        match Key::load(&path) {
            Err(Error::KeyFileFormat { path: p, reason }) => {
                assert_eq!(p, path, "{name}");
                assert!(
                    !reason.contains(&hex64),
                    "{name}: the reason must not echo the content"
                );
            }
            other => panic!("{name}: expected KeyFileFormat, got {other:?}"),
        }
    }
    // Accepted forms: with LF, with CRLF, without newline, uppercase hex.
    for (name, content) in [
        ("lf", format!("{KEY_FILE_PREFIX}{hex64}\n")),
        ("crlf", format!("{KEY_FILE_PREFIX}{hex64}\r\n")),
        ("none", format!("{KEY_FILE_PREFIX}{hex64}")),
        (
            "upper",
            format!("{KEY_FILE_PREFIX}{}\n", hex64.to_uppercase()),
        ),
    ] {
        let path = dir.path().join(name);
        write(&path, content.as_bytes());
        assert_eq!(
            Key::load(&path).unwrap().fingerprint(),
            Key::from_bytes([0xab; 32]).fingerprint(),
            "{name}"
        );
    }
}

#[test]
fn passphrase_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pass");
    write(&path, b"correct horse battery staple\n");
    let p = Passphrase::load(&path).unwrap();
    let c = AeadCipher::builder()
        .recipient_passphrase(p, small_kdf())
        .build()
        .unwrap();
    let ct = seal(&c, b"x");
    // The same passphrase given as a string (no newline) opens it.
    let o = AeadCipher::builder()
        .opening_passphrase(Passphrase::new("correct horse battery staple").unwrap())
        .build()
        .unwrap();
    assert_eq!(common::open(&o, &ct).unwrap(), b"x");

    let empty = dir.path().join("empty");
    write(&empty, b"\n");
    assert!(matches!(
        Passphrase::load(&empty),
        Err(Error::KeyFileFormat { .. })
    ));
    assert!(matches!(Passphrase::new(""), Err(Error::EmptyPassphrase)));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            Passphrase::load(&path),
            Err(Error::KeyFilePermissions { mode: 0o644, .. })
        ));
    }
}

#[test]
fn kdf_params_are_checked() {
    assert_eq!(KdfParams::default().memory_kib(), 65_536);
    assert_eq!(KdfParams::default().iterations(), 3);
    assert_eq!(KdfParams::default().parallelism(), 1);
    assert!(matches!(
        KdfParams::new(KdfParams::MAX_MEMORY_KIB + 1, 3, 1),
        Err(Error::InvalidKdfParams {
            what: "memory_kib",
            ..
        })
    ));
    assert!(matches!(
        KdfParams::new(7, 3, 1),
        Err(Error::InvalidKdfParams {
            what: "memory_kib",
            min: 8,
            ..
        })
    ));
    assert!(matches!(
        KdfParams::new(1024, 0, 1),
        Err(Error::InvalidKdfParams {
            what: "iterations",
            ..
        })
    ));
    assert!(matches!(
        KdfParams::new(1024, 3, 17),
        Err(Error::InvalidKdfParams {
            what: "parallelism",
            ..
        })
    ));
}

#[test]
fn builder_checks_chunk_size_and_recipients() {
    assert!(matches!(
        AeadCipher::builder()
            .recipient_key(key(1))
            .chunk_size(1023)
            .build(),
        Err(Error::InvalidChunkSize { value: 1023, .. })
    ));
    assert!(matches!(
        AeadCipher::builder().build(),
        Err(Error::RecipientCount { count: 0, .. })
    ));
    let mut b = AeadCipher::builder();
    for i in 0..17 {
        b = b.recipient_key(key(i));
    }
    assert!(matches!(
        b.build(),
        Err(Error::RecipientCount { count: 17, max: 16 })
    ));
    // Open-only cipher: cannot seal.
    let open_only = AeadCipher::builder().opening_key(key(1)).build().unwrap();
    let e = open_only.seal().err().unwrap();
    assert!(matches!(
        wst_crypto::crypto_error(&e),
        Some(Error::RecipientCount { count: 0, .. })
    ));
}

#[test]
fn fingerprints_are_stable_and_documented() {
    // docs/FORMAT.md §Fingerprints: HKDF-SHA-256(ikm = key, no salt, info), 16 bytes.
    assert_eq!(
        Key::from_bytes([0u8; 32]).fingerprint().to_string(),
        Key::from_bytes([0u8; 32]).fingerprint().to_string()
    );
    assert_ne!(key(1).fingerprint(), key(2).fingerprint());
}

#[test]
fn debug_and_errors_never_show_key_material() {
    let secret = [0x5au8; 32];
    let k = Key::from_bytes(secret);
    let hex = "5a".repeat(32);
    let dbg = format!("{k:?}");
    assert!(dbg.contains("[REDACTED]") && !dbg.contains(&hex), "{dbg}");
    let p = Passphrase::new("hunter2-very-secret").unwrap();
    let pdbg = format!("{p:?}");
    assert_eq!(pdbg, "Passphrase([REDACTED])");
    let c = AeadCipher::builder()
        .recipient_key(k.clone())
        .recipient_passphrase(p.clone(), small_kdf())
        .opening_passphrase(p)
        .build()
        .unwrap();
    let cdbg = format!("{c:?} {:?}", c.keyring());
    assert!(!cdbg.contains(&hex) && !cdbg.contains("hunter2"), "{cdbg}");
    assert!(cdbg.contains(&k.fingerprint().to_string()));
    // Errors name fingerprints, never keys.
    let ct = seal(&c, b"data");
    let other = AeadCipher::builder().recipient_key(key(3)).build().unwrap();
    let e = common::open(&other, &ct).unwrap_err();
    let msg = format!("{e} {e:?}");
    assert!(!msg.contains(&hex) && !msg.contains("hunter2"), "{msg}");
}

/// Evidence keys (sidecar MACs) derive one-way from the repository key: the same key file gives
/// the same evidence key in every process, another key another one; the operational key's comes
/// first; a sidecar sealed under one key authenticates only under that key.
#[test]
fn evidence_keys_follow_the_repository_key() {
    let (k1, k2) = (key(1), key(2));
    let a = AeadCipher::builder()
        .recipient_key(k1.clone())
        .build()
        .unwrap();
    let again = AeadCipher::builder()
        .recipient_key(k1.clone())
        .build()
        .unwrap();
    let rotated = AeadCipher::builder()
        .recipient_key(k2.clone())
        .opening_key(k1.clone())
        .build()
        .unwrap();
    let (ea, eb) = (a.evidence_keys(), again.evidence_keys());
    assert_eq!(ea.len(), 1);
    assert_eq!(ea[0].id(), k1.fingerprint());
    assert_eq!(ea[0].mac("d", b"x"), eb[0].mac("d", b"x"));
    let er = rotated.evidence_keys();
    assert_eq!(
        er.iter().map(wst_core::EvidenceKey::id).collect::<Vec<_>>(),
        [k2.fingerprint(), k1.fingerprint()]
    );
    assert_ne!(er[0].mac("d", b"x"), ea[0].mac("d", b"x"));
    assert_eq!(er[1].mac("d", b"x"), ea[0].mac("d", b"x"));
    assert!(!format!("{:?}", ea[0]).contains(&hex::encode(ea[0].mac("d", b""))));
}
