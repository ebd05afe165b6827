//! Round trips through the `Cipher` trait, the `std::io` adapters, key slots and rewrap.

mod common;

use std::io::{Read, Write};

use common::{cipher, data, key, open, open_split, seal, small_kdf, two_slot_cipher};
use wst_core::{Cipher, OpenReader, SealWriter};
use wst_crypto::{
    AeadCipher, DEFAULT_CHUNK_SIZE, Error, HeaderInfo, Keyring, Passphrase, SUITE_NAME, SlotInfo,
    crypto_io_error,
};

#[test]
fn round_trip_lengths_around_chunk_boundaries() {
    let c = cipher(1024);
    for len in [0, 1, 1023, 1024, 1025, 2047, 2048, 2049, 10 * 1024 + 7] {
        let pt = data(len, len as u64);
        let ct = seal(&c, &pt);
        // header (78 + 97 + 32) + full chunks + a strictly shorter final chunk
        let chunks = len / 1024 + 1;
        assert_eq!(ct.len(), 207 + len + 16 * chunks, "len {len}");
        assert_eq!(open(&c, &ct).unwrap(), pt, "len {len}");
        assert_eq!(open_split(&c, &ct, 7).unwrap(), pt, "len {len} split 7");
    }
}

#[test]
fn suite_and_recipients_are_reported() {
    let c = two_slot_cipher(DEFAULT_CHUNK_SIZE);
    assert_eq!(c.suite(), SUITE_NAME);
    let r = c.recipients();
    assert_eq!(r.len(), 2);
    assert_eq!(r[0], key(1).fingerprint());
}

#[test]
fn io_adapters_round_trip() {
    let c = cipher(DEFAULT_CHUNK_SIZE);
    let pt = data(300_000, 3);
    let mut w = SealWriter::new(&c, Vec::new()).unwrap();
    for piece in pt.chunks(4099) {
        w.write_all(piece).unwrap();
    }
    let ct = w.finish().unwrap();
    let mut r = OpenReader::new(&c, ct.as_slice()).unwrap();
    let mut back = vec![0u8; 1];
    r.read_exact(&mut back).unwrap();
    // Known once the header is read, and still after the end.
    assert_eq!(r.opened_with(), Some(key(1).fingerprint()));
    r.read_to_end(&mut back).unwrap();
    assert_eq!(back, pt);
    assert_eq!(r.opened_with(), Some(key(1).fingerprint()));
}

#[test]
fn each_slot_opens_on_its_own() {
    let sealer = two_slot_cipher(1024);
    let pt = data(5000, 9);
    let ct = seal(&sealer, &pt);

    let by_key = AeadCipher::builder().opening_key(key(1)).build().unwrap();
    assert_eq!(open(&by_key, &ct).unwrap(), pt);

    let by_pass = AeadCipher::builder()
        .opening_passphrase(Passphrase::new("correct horse").unwrap())
        .build()
        .unwrap();
    let mut o = by_pass.open().unwrap();
    let mut out = Vec::new();
    o.update(&ct, &mut out).unwrap();
    assert_eq!(o.opened_with(), Some(sealer.recipients()[1]));
    o.finish(&mut out).unwrap();
    assert_eq!(out, pt);
}

#[test]
fn keyring_rotation_opens_old_and_new() {
    let old = cipher(1024);
    let old_ct = seal(&old, b"old artifact");
    let new = AeadCipher::builder()
        .recipient_key(key(2))
        .keyring(Keyring::new().with_key(key(1)))
        .chunk_size(1024)
        .build()
        .unwrap();
    let new_ct = seal(&new, b"new artifact");
    assert_eq!(open(&new, &old_ct).unwrap(), b"old artifact");
    assert_eq!(open(&new, &new_ct).unwrap(), b"new artifact");
    // The old cipher cannot open the new artifact.
    assert!(matches!(open(&old, &new_ct), Err(Error::WrongKey { .. })));
}

#[test]
fn rewrap_rotates_without_touching_payload() {
    let old = cipher(1024);
    let pt = data(10_000, 4);
    let ct = seal(&old, &pt);
    // New recipients: key 2 (operational) + recovery passphrase; opened with key 1.
    let rot = AeadCipher::builder()
        .recipient_key(key(2))
        .recipient_passphrase(Passphrase::new("recovery").unwrap(), small_kdf())
        .opening_key(key(1))
        .build()
        .unwrap();
    let mut new_ct = Vec::new();
    let summary = rot.rewrap(ct.as_slice(), &mut new_ct).unwrap();
    assert_eq!(summary.old_slots, vec![key(1).fingerprint()]);
    assert_eq!(summary.new_slots, rot.recipients());
    assert_eq!(summary.opened_with, Some(key(1).fingerprint()));
    // The payload bytes are identical.
    let old_payload = &ct[summary.old_header_len as usize..];
    let new_payload = &new_ct[summary.new_header_len as usize..];
    assert_eq!(old_payload, new_payload);
    assert_eq!(summary.payload_bytes, old_payload.len() as u64);
    // Key 2 opens it, key 1 no longer does.
    let k2 = AeadCipher::builder().opening_key(key(2)).build().unwrap();
    assert_eq!(open(&k2, &new_ct).unwrap(), pt);
    match open(&old, &new_ct) {
        Err(Error::WrongKey {
            expected, supplied, ..
        }) => {
            assert_eq!(expected, rot.recipients());
            assert_eq!(supplied, vec![key(1).fingerprint()]);
        }
        other => panic!("expected WrongKey, got {other:?}"),
    }
    // The passphrase slot opens it too.
    let pp = AeadCipher::builder()
        .opening_passphrase(Passphrase::new("recovery").unwrap())
        .build()
        .unwrap();
    assert_eq!(open(&pp, &new_ct).unwrap(), pt);
}

#[test]
fn rewrap_sans_io_in_small_pieces() {
    let old = cipher(1024);
    let pt = data(3000, 5);
    let ct = seal(&old, &pt);
    let rot = AeadCipher::builder()
        .recipient_key(key(3))
        .opening_key(key(1))
        .build()
        .unwrap();
    let mut rw = rot.rewrapper().unwrap();
    let mut out = Vec::new();
    for piece in ct.chunks(5) {
        rw.update(piece, &mut out).unwrap();
    }
    rw.finish().unwrap();
    assert_eq!(open(&rot, &out).unwrap(), pt);
}

#[test]
fn rewrap_adds_and_removes_a_slot() {
    let one = cipher(1024);
    let pt = data(4000, 6);
    let ct = seal(&one, &pt);
    // Add a recovery key: slots [key 1, key 4].
    let add = AeadCipher::builder()
        .recipient_key(key(1))
        .recipient_key(key(4))
        .build()
        .unwrap();
    let mut two = Vec::new();
    let s = add.rewrap(ct.as_slice(), &mut two).unwrap();
    assert_eq!(
        s.new_slots,
        vec![key(1).fingerprint(), key(4).fingerprint()]
    );
    assert_eq!(s.new_header_len, s.old_header_len + 97);
    let recovery = AeadCipher::builder().opening_key(key(4)).build().unwrap();
    assert_eq!(open(&recovery, &two).unwrap(), pt);
    assert_eq!(open(&one, &two).unwrap(), pt);
    // Remove key 1 again, opening with the recovery key: slots [key 4].
    let remove = AeadCipher::builder().recipient_key(key(4)).build().unwrap();
    let mut back = Vec::new();
    let s = remove.rewrap(two.as_slice(), &mut back).unwrap();
    assert_eq!(s.opened_with, Some(key(4).fingerprint()));
    assert_eq!(s.new_slots, vec![key(4).fingerprint()]);
    assert_eq!(open(&recovery, &back).unwrap(), pt);
    assert!(matches!(open(&one, &back), Err(Error::WrongKey { .. })));
}

#[test]
fn open_reader_reports_truncation_as_an_error_not_eof() {
    let c = cipher(1024);
    let ct = seal(&c, &data(5000, 1));
    let cut = &ct[..207 + 4 * 1040];
    let mut r = OpenReader::new(&c, cut).unwrap();
    let mut back = Vec::new();
    let err = r.read_to_end(&mut back).unwrap_err();
    assert!(matches!(
        crypto_io_error(&err),
        Some(Error::Truncated {
            chunks: 4,
            detail: "at a chunk boundary",
            ..
        })
    ));
}

#[test]
fn header_info_lists_slots_without_a_key() {
    let c = two_slot_cipher(4096);
    let ct = seal(&c, b"abc");
    let info = HeaderInfo::parse(&ct).unwrap();
    assert_eq!(info.chunk_size, 4096);
    assert_eq!(info.header_len, 332);
    assert_eq!(info.fingerprints(), c.recipients());
    assert!(matches!(info.slots[0], SlotInfo::RawKey { .. }));
    assert!(matches!(
        info.slots[1],
        SlotInfo::Passphrase { kdf, .. } if kdf == small_kdf()
    ));
    assert!(matches!(
        HeaderInfo::parse(&ct[..300]),
        Err(Error::Truncated { offset: 300, .. })
    ));
    assert!(matches!(
        HeaderInfo::parse(b"nope"),
        Err(Error::NotAnArtifact)
    ));
}

#[test]
fn passphrase_fingerprint_is_stable_with_a_fixed_salt() {
    let build = |salt: Option<[u8; 16]>| {
        let p = Passphrase::new("recovery").unwrap();
        let b = AeadCipher::builder().recipient_key(key(1));
        match salt {
            Some(s) => b.recipient_passphrase_with_salt(p, small_kdf(), s),
            None => b.recipient_passphrase(p, small_kdf()),
        }
        .build()
        .unwrap()
    };
    let a = build(Some([9; 16]));
    let b = build(Some([9; 16]));
    assert_eq!(a.recipients(), b.recipients());
    // Artifacts sealed by either instance record that fingerprint and open with the passphrase.
    let ct = seal(&b, b"payload");
    assert_eq!(
        HeaderInfo::parse(&ct).unwrap().fingerprints(),
        a.recipients()
    );
    let by_pass = AeadCipher::builder()
        .opening_passphrase(Passphrase::new("recovery").unwrap())
        .build()
        .unwrap();
    assert_eq!(open(&by_pass, &ct).unwrap(), b"payload");
    // With a random salt, each instance has its own passphrase fingerprint.
    assert_ne!(build(None).recipients()[1], build(None).recipients()[1]);
}
