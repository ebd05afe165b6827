//! The Python reference decryptor (`reference/wst_decrypt.py`, `cryptography` + `argon2-cffi`)
//! decrypts artifacts written by wst, and both implementations agree on the checked-in test
//! vectors (docs/test-vectors/). A disaster must not depend on wst's own binary.
//!
//! Needs `python3` with `pip install cryptography argon2-cffi`. Missing: with `CI=true` the
//! tests fail; otherwise they print a notice and return.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{data, open, seal, small_kdf};
use wst_core::Cipher;
use wst_crypto::{AeadCipher, Error, Key, Passphrase};

const INSTALL: &str = "install python3 and run `pip install cryptography argon2-cffi`";

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("reference/wst_decrypt.py")
}

fn vectors() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/test-vectors")
}

/// Whether python3 with both modules is available; fails under CI=true when it is not.
fn python_ready() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import cryptography, argon2.low_level"])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI=true but the Python reference decryptor cannot run: {INSTALL}"
    );
    eprintln!(
        "\n**********************************************************************\n\
         NOTICE: reference decryptor test NOT RUN: python3 with `cryptography`\n\
         and `argon2-cffi` is missing ({INSTALL}).\n\
         **********************************************************************\n"
    );
    false
}

/// Runs the script; returns (exit code, stdout, stderr).
fn run(args: &[&std::ffi::OsStr]) -> (i32, Vec<u8>, String) {
    let out = Command::new("python3")
        .arg(script())
        .args(args)
        .output()
        .expect("python3 runs");
    (
        out.status.code().unwrap_or(-1),
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn python_decrypts_artifacts_written_by_wst() {
    if !python_ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let key_path = dir.path().join("backup.key");
    let key = Key::generate().unwrap();
    key.write_to(&key_path).unwrap();
    let pass_path = dir.path().join("recovery.pass");
    std::fs::write(&pass_path, "a long recovery passphrase\n").unwrap();

    let cipher = AeadCipher::builder()
        .recipient_key(key.clone())
        .recipient_passphrase(
            Passphrase::new("a long recovery passphrase").unwrap(),
            small_kdf(),
        )
        .build()
        .unwrap();
    // Several full 64 KiB chunks and a short final one; also the empty and exact-multiple cases.
    for (name, len) in [
        ("multi", 3 * 65_536 + 12_345),
        ("empty", 0),
        ("exact", 65_536),
    ] {
        let pt = data(len, len as u64);
        let artifact = dir.path().join(format!("{name}.wst"));
        std::fs::write(&artifact, seal(&cipher, &pt)).unwrap();
        for (flag, secret) in [("--key-file", &key_path), ("--passphrase-file", &pass_path)] {
            let out = dir.path().join(format!("{name}{flag}.out"));
            let (code, _, err) = run(&[
                flag.as_ref(),
                secret.as_os_str(),
                "-o".as_ref(),
                out.as_os_str(),
                artifact.as_os_str(),
            ]);
            assert_eq!(code, 0, "{name} {flag}: {err}");
            assert_eq!(std::fs::read(&out).unwrap(), pt, "{name} {flag}");
        }
    }

    // A rewrapped artifact (new key only) decrypts with the new key and not the old one.
    let new_key = Key::generate().unwrap();
    let new_path = dir.path().join("new.key");
    new_key.write_to(&new_path).unwrap();
    let rot = AeadCipher::builder()
        .recipient_key(new_key)
        .opening_key(key)
        .build()
        .unwrap();
    let pt = data(100_000, 7);
    let mut rewrapped = Vec::new();
    rot.rewrap(seal(&cipher, &pt).as_slice(), &mut rewrapped)
        .unwrap();
    let rw_path = dir.path().join("rewrapped.wst");
    std::fs::write(&rw_path, &rewrapped).unwrap();
    let (code, stdout, err) = run(&[
        "--key-file".as_ref(),
        new_path.as_os_str(),
        rw_path.as_os_str(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(stdout, pt);
    // The same from standard input (e.g. piped from an object store download).
    let piped = Command::new("python3")
        .arg(script())
        .args(["--key-file".as_ref(), new_path.as_os_str(), "-".as_ref()])
        .stdin(std::fs::File::open(&rw_path).unwrap())
        .output()
        .unwrap();
    assert!(
        piped.status.success(),
        "{}",
        String::from_utf8_lossy(&piped.stderr)
    );
    assert_eq!(piped.stdout, pt);
    let (code, _, err) = run(&[
        "--key-file".as_ref(),
        key_path.as_os_str(),
        rw_path.as_os_str(),
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("wrong key"), "{err}");

    // Truncated exactly at a chunk boundary: refused, and no output file is left behind.
    let pt = data(2 * 65_536 + 10, 8);
    let ct = seal(&cipher, &pt);
    let header_len = 78 + 97 + 125 + 32;
    let cut = dir.path().join("cut.wst");
    std::fs::write(&cut, &ct[..header_len + 2 * (65_536 + 16)]).unwrap();
    let out = dir.path().join("cut.out");
    let (code, _, err) = run(&[
        "--key-file".as_ref(),
        key_path.as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
        cut.as_os_str(),
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("truncated"), "{err}");
    assert!(!out.exists() && !dir.path().join("cut.out.partial").exists());
}

/// The checked-in vectors decode identically in Python and in Rust.
#[test]
fn checked_in_vectors_decode_in_python() {
    if !python_ready() {
        return;
    }
    let v = vectors();
    let key = v.join("raw-key.key");
    let pass = v.join("passphrase.txt");
    for (artifact, flag, secret) in [
        ("raw-key", "--key-file", &key),
        ("empty", "--key-file", &key),
        ("passphrase", "--passphrase-file", &pass),
        ("two-slots", "--key-file", &key),
        ("two-slots", "--passphrase-file", &pass),
    ] {
        let (code, stdout, err) = run(&[
            flag.as_ref(),
            secret.as_os_str(),
            v.join(format!("{artifact}.wst")).as_os_str(),
        ]);
        assert_eq!(code, 0, "{artifact} {flag}: {err}");
        assert_eq!(
            stdout,
            std::fs::read(v.join(format!("{artifact}.plain"))).unwrap(),
            "{artifact} {flag}"
        );
    }
    for (artifact, expect) in [
        ("raw-key-truncated", "truncated"),
        ("raw-key-tampered", "chunk 1 "),
    ] {
        let (code, _, err) = run(&[
            "--key-file".as_ref(),
            key.as_os_str(),
            v.join(format!("{artifact}.wst")).as_os_str(),
        ]);
        assert_eq!(code, 1, "{artifact}");
        assert!(err.contains(expect), "{artifact}: {err}");
    }
}

/// Loads the vector key (git checks vector files out 0644, so it is parsed, not `Key::load`ed:
/// it is a public test key).
fn vector_key() -> Key {
    let path = vectors().join("raw-key.key");
    Key::parse(&std::fs::read(&path).unwrap(), &path).unwrap()
}

fn vector_passphrase() -> Passphrase {
    let text = std::fs::read_to_string(vectors().join("passphrase.txt")).unwrap();
    Passphrase::new(text.trim_end_matches('\n')).unwrap()
}

fn explain(name: &str) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(vectors().join(format!("{name}.json"))).unwrap()).unwrap()
}

/// The checked-in vectors decode in Rust (no Python needed), with the fingerprints the
/// reference decryptor recorded.
#[test]
fn checked_in_vectors_decode_in_rust() {
    let v = vectors();
    let by_key = AeadCipher::builder()
        .opening_key(vector_key())
        .build()
        .unwrap();
    let by_pass = AeadCipher::builder()
        .opening_passphrase(vector_passphrase())
        .build()
        .unwrap();
    for (artifact, json, cipher) in [
        ("raw-key", "raw-key", &by_key),
        ("empty", "empty", &by_key),
        ("passphrase", "passphrase", &by_pass),
        ("two-slots", "two-slots.key", &by_key),
        ("two-slots", "two-slots.passphrase", &by_pass),
    ] {
        let ct = std::fs::read(v.join(format!("{artifact}.wst"))).unwrap();
        let mut o = cipher.open().unwrap();
        let mut out = Vec::new();
        o.update(&ct, &mut out).unwrap();
        let fp = o.opened_with().unwrap();
        o.finish(&mut out).unwrap();
        assert_eq!(
            out,
            std::fs::read(v.join(format!("{artifact}.plain"))).unwrap()
        );
        let e = explain(json);
        assert_eq!(e["opened_with"], fp.to_string(), "{json}");
        assert_eq!(
            e["plaintext_sha256"],
            hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&out)),
            "{json}"
        );
    }
    assert_eq!(
        explain("raw-key")["opened_with"],
        vector_key().fingerprint().to_string()
    );
    let truncated = std::fs::read(v.join("raw-key-truncated.wst")).unwrap();
    assert!(matches!(
        open(&by_key, &truncated),
        Err(Error::Truncated {
            chunks: 2,
            detail: "at a chunk boundary",
            ..
        })
    ));
    let tampered = std::fs::read(v.join("raw-key-tampered.wst")).unwrap();
    assert!(matches!(
        open(&by_key, &tampered),
        Err(Error::ChunkAuthentication {
            index: 1,
            offset: 1247
        })
    ));
}

/// The worked example in docs/FORMAT.md §10.1 shows the real bytes and derived values of
/// `raw-key.wst` (guards the document against drifting from the vectors).
#[test]
fn format_md_worked_example_matches_the_vector() {
    let doc = std::fs::read_to_string(vectors().join("../FORMAT.md")).unwrap();
    let e = explain("raw-key");
    for field in ["data_key", "payload_key", "mac_key"] {
        let value = e[field].as_str().unwrap();
        assert!(doc.contains(value), "FORMAT.md lacks {field} {value}");
    }
    let ct = std::fs::read(vectors().join("raw-key.wst")).unwrap();
    for (range, what) in [(0..8, "magic"), (79..95, "fingerprint"), (175..207, "MAC")] {
        let hex = hex::encode(&ct[range]);
        assert!(
            doc.contains(&format!("`{hex}`")),
            "FORMAT.md lacks the {what} {hex}"
        );
    }
}
