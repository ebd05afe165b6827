#!/usr/bin/env python3
"""Reference decryptor for wst encrypted artifacts (format wst-aead-v1, docs/FORMAT.md).

A disaster must not depend on wst's own binary: this script decrypts an artifact with
Python 3.8+ and the `cryptography` package only (plus `argon2-cffi` for passphrase slots).

    pip install cryptography argon2-cffi

Usage:
    wst_decrypt.py --key-file backup.key  ARTIFACT [-o OUTPUT]
    wst_decrypt.py --passphrase-file pass ARTIFACT [-o OUTPUT]
    wst_decrypt.py --passphrase-env VAR   ARTIFACT [-o OUTPUT]
    wst_decrypt.py --key-file backup.key  -  < ARTIFACT      (ARTIFACT from standard input)
    wst_decrypt.py --info ARTIFACT               (lists the key slots; needs no key)
    wst_decrypt.py --explain --key-file K ARTIFACT  (prints derived values as JSON, for
                                                     checking an independent implementation)
    wst_decrypt.py --check-audit --key-file K AUDIT_LOG  (the audit log's keyed chain, docs/EVIDENCE.md 5.1)
    wst_decrypt.py --check-sidecar --key-file K SIDECAR  (checks a sidecar's MAC, docs/EVIDENCE.md
                                                     section 3: prints authentic, unsealed or forged)
    wst_decrypt.py --key-file K --wal NAME OBJECT -o NAME.zst   (a WAL object, docs/WAL.md: the
                                                     plaintext must start with the WAL header
                                                     naming NAME; the header is printed on
                                                     standard error; then `zstd -d NAME.zst`)

The artifact is usually named *.tar.zst.wst: pipe the output through `zstd -d | tar -x`.
With -o, plaintext goes to OUTPUT.partial and is renamed to OUTPUT only after the final chunk
authenticated; on any error the partial file is deleted. Without -o, plaintext goes to standard
output chunk by chunk, each chunk only after it authenticated; trust it only if the exit status
is 0. Exit status: 0 success, 1 the artifact failed (wrong key, damaged, truncated), 2 usage.
"""

import argparse
import hashlib
import hmac
import json
import os
import sys

try:
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF
except ImportError:  # pragma: no cover
    sys.stderr.write("wst_decrypt: the `cryptography` package is missing: pip install cryptography\n")
    sys.exit(2)

MAGIC = b"wst-aead"
VERSION = 1
SUITE = 1
CORE_LEN = 72
FIXED_LEN = 78
MAC_LEN = 32
TAG_LEN = 16
RAW_SLOT_LEN = 97
PASS_SLOT_LEN = 125
MIN_CHUNK, MAX_CHUNK = 1024, 16 * 1024 * 1024
MAX_SLOTS = 16
MAX_PASSPHRASE_SLOTS = 4
MAX_MEMORY_KIB, MAX_ITERATIONS, MAX_PARALLELISM = 1024 * 1024, 10, 16
KEY_PREFIX = b"wst-key-v1:"


class ArtifactError(Exception):
    """The artifact cannot be decrypted: wrong key, damaged, truncated, unsupported."""


def hkdf(ikm, salt, info, length=32):
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(ikm)


def fingerprint_raw(key):
    return hkdf(key, None, b"wst-aead-v1 fingerprint raw-key", 16)


def fingerprint_passphrase(kek):
    return hkdf(kek, None, b"wst-aead-v1 fingerprint passphrase", 16)


def argon2id(passphrase, salt, m, t, p):
    try:
        from argon2.low_level import Type, hash_secret_raw
    except ImportError:
        raise ArtifactError("passphrase slots need argon2-cffi: pip install argon2-cffi")
    return hash_secret_raw(passphrase, salt, time_cost=t, memory_cost=m, parallelism=p,
                           hash_len=32, type=Type.ID, version=19)


def read_exact(f, n):
    """Reads n bytes, fewer only at end of file."""
    out = bytearray()
    while len(out) < n:
        b = f.read(n - len(out))
        if not b:
            break
        out += b
    return bytes(out)


def be32(b, at):
    return int.from_bytes(b[at:at + 4], "big")


def parse_header(f):
    fixed = read_exact(f, FIXED_LEN)
    if fixed[:min(8, len(fixed))] != MAGIC[:min(8, len(fixed))]:
        raise ArtifactError("not a wst artifact (magic is not 'wst-aead')")
    if len(fixed) > 8 and fixed[8] != VERSION:
        raise ArtifactError("unsupported format version %d" % fixed[8])
    if len(fixed) > 9 and fixed[9] != SUITE:
        raise ArtifactError("unsupported suite %d" % fixed[9])
    if len(fixed) < FIXED_LEN:
        raise ArtifactError("truncated inside the header")
    if fixed[10:12] != b"\0\0" or fixed[71] != 0:
        raise ArtifactError("malformed header: reserved bytes are not zero")
    chunk_size = be32(fixed, 12)
    if not MIN_CHUNK <= chunk_size <= MAX_CHUNK:
        raise ArtifactError("chunk size %d out of bounds" % chunk_size)
    slot_count = int.from_bytes(fixed[72:74], "big")
    if not 1 <= slot_count <= MAX_SLOTS:
        raise ArtifactError("slot count %d out of bounds" % slot_count)
    header_len = be32(fixed, 74)
    lo = FIXED_LEN + slot_count * RAW_SLOT_LEN + MAC_LEN
    npass = min(slot_count, MAX_PASSPHRASE_SLOTS)
    hi = FIXED_LEN + npass * PASS_SLOT_LEN + (slot_count - npass) * RAW_SLOT_LEN + MAC_LEN
    if not lo <= header_len <= hi:
        raise ArtifactError("header length %d out of bounds" % header_len)
    rest = read_exact(f, header_len - FIXED_LEN)
    if len(rest) < header_len - FIXED_LEN:
        raise ArtifactError("truncated inside the header")
    header = fixed + rest
    slots = []
    at, end = FIXED_LEN, header_len - MAC_LEN
    for i in range(slot_count):
        if at >= end:
            raise ArtifactError("malformed header: no room for slot %d" % i)
        typ = header[at]
        if typ == 1:
            n = RAW_SLOT_LEN
        elif typ == 2:
            n = PASS_SLOT_LEN
        else:
            raise ArtifactError("malformed header: slot %d has unknown type %d" % (i, typ))
        if typ == 2 and sum(1 for x in slots if x["type"] == 2) >= MAX_PASSPHRASE_SLOTS:
            raise ArtifactError("more than %d passphrase slots" % MAX_PASSPHRASE_SLOTS)
        if at + n > end:
            raise ArtifactError("malformed header: slot %d overruns the MAC" % i)
        s = header[at:at + n]
        slot = {"index": i, "type": typ, "fingerprint": s[1:17], "salt": s[17:49], "wrapped": s[n - 48:]}
        if typ == 2:
            m, t, p = be32(s, 49), be32(s, 53), be32(s, 57)
            # Caps are checked before any derivation: a header must not exhaust memory/CPU.
            if not (1 <= p <= MAX_PARALLELISM and 1 <= t <= MAX_ITERATIONS and 8 * p <= m <= MAX_MEMORY_KIB):
                raise ArtifactError("slot %d: Argon2id parameters m=%d t=%d p=%d beyond the caps" % (i, m, t, p))
            slot.update(m=m, t=t, p=p, argon_salt=s[61:77])
        slots.append(slot)
        at += n
    if at != end:
        raise ArtifactError("malformed header: bytes between the last slot and the MAC")
    return header, chunk_size, slots


def unwrap(wrap_key, wrapped):
    try:
        return AESGCM(wrap_key).decrypt(b"\0" * 12, wrapped, None)
    except InvalidTag:
        return None


def open_slots(slots, key=None, passphrase=None):
    """Returns (data_key, fingerprint of the opening key, slot index)."""
    if key is not None:
        for s in slots:
            if s["type"] == 1:
                dk = unwrap(hkdf(key, s["salt"], b"wst-aead-v1 slot raw-key"), s["wrapped"])
                if dk is not None:
                    return dk, fingerprint_raw(key), s["index"]
    if passphrase is not None:
        for s in slots:
            if s["type"] == 2:
                kek = argon2id(passphrase, s["argon_salt"], s["m"], s["t"], s["p"])
                dk = unwrap(hkdf(kek, s["salt"], b"wst-aead-v1 slot passphrase"), s["wrapped"])
                if dk is not None:
                    return dk, fingerprint_passphrase(kek), s["index"]
    raise ArtifactError("wrong key: no slot opens; the artifact is sealed for %s"
                        % ", ".join(s["fingerprint"].hex() for s in slots))


def derive(header, data_key):
    payload_salt = header[32:64]
    return {
        "payload_key": hkdf(data_key, payload_salt, b"wst-aead-v1 payload" + header[:CORE_LEN]),
        "mac_key": hkdf(data_key, payload_salt, b"wst-aead-v1 header-mac"),
        "nonce_prefix": header[64:71],
    }


def decrypt_stream(f, out_write, header, chunk_size, data_key):
    d = derive(header, data_key)
    mac = hmac.new(d["mac_key"], header[:-MAC_LEN], hashlib.sha256).digest()
    if not hmac.compare_digest(mac, header[-MAC_LEN:]):
        raise ArtifactError("header failed authentication (tampered header)")
    aead = AESGCM(d["payload_key"])
    full = chunk_size + TAG_LEN
    offset, index = len(header), 0
    while True:
        ct = read_exact(f, full)
        # A full-size chunk is never final: the final chunk is strictly shorter.
        last = len(ct) < full
        if last and len(ct) < TAG_LEN:
            raise ArtifactError("truncated at byte %d: the final chunk is missing" % (offset + len(ct)))
        if not last and index == 0xFFFFFFFF:
            raise ArtifactError("more than 2^32 chunks")
        nonce = d["nonce_prefix"] + index.to_bytes(4, "big") + (b"\x01" if last else b"\x00")
        try:
            pt = aead.decrypt(nonce, ct, None)
        except InvalidTag:
            raise ArtifactError("chunk %d at byte %d failed authentication (tampered, reordered, "
                                "truncated, or bytes appended)" % (index, offset))
        out_write(pt)
        if last:
            return index + 1
        offset += len(ct)
        index += 1


def load_key_file(path):
    with open(path, "rb") as f:
        content = f.read(4097)
    for nl in (b"\r\n", b"\n"):
        if content.endswith(nl):
            content = content[:-len(nl)]
            break
    if not content.startswith(KEY_PREFIX) or len(content) != len(KEY_PREFIX) + 64:
        raise ArtifactError("%s is not a wst key file ('wst-key-v1:' + 64 hex digits)" % path)
    try:
        return bytes.fromhex(content[len(KEY_PREFIX):].decode("ascii"))
    except ValueError:
        raise ArtifactError("%s: the key is not hex" % path)


def load_passphrase_file(path):
    with open(path, "rb") as f:
        content = f.read(4097)
    for nl in (b"\r\n", b"\n"):
        if content.endswith(nl):
            return content[:-len(nl)]
    return content


SIDECAR_MAC_MEMBER = b',\n  "mac": "'

WAL_FRAME_MAGIC = 0x184D2A57
WAL_MAX_HEADER_JSON = 4096


class WalHeaderCheck:
    """docs/WAL.md section 2: the plaintext starts with a zstd skippable frame (magic
    0x184D2A57) holding the JSON header; its `format` must be wst-wal/1 and its `name` the WAL
    file asked for. Nothing is passed on before the header checked. The output stays a zstd
    stream (`zstd -d` skips the header frame)."""

    def __init__(self, name, out_write):
        self.name, self.out_write, self.buf, self.header = name, out_write, bytearray(), None

    def write(self, data):
        if self.header is not None:
            self.out_write(data)
            return
        self.buf.extend(data)
        if len(self.buf) < 8:
            return
        magic = int.from_bytes(self.buf[0:4], "little")
        n = int.from_bytes(self.buf[4:8], "little")
        if magic != WAL_FRAME_MAGIC:
            raise ArtifactError("not a WAL object: the plaintext does not start with the WAL header frame")
        if not 1 <= n <= WAL_MAX_HEADER_JSON:
            raise ArtifactError("the WAL header frame claims %d bytes of JSON" % n)
        if len(self.buf) < 8 + n:
            return
        try:
            header = json.loads(bytes(self.buf[8:8 + n]).decode("utf-8"))
        except ValueError:
            raise ArtifactError("the WAL header is not JSON")
        if not isinstance(header, dict) or header.get("format") != "wst-wal/1":
            raise ArtifactError("the WAL header's format is not wst-wal/1")
        if header.get("name") != self.name:
            raise ArtifactError("the object holds WAL file %r, not %r: substituted under another name"
                                % (header.get("name"), self.name))
        self.header = header
        sys.stderr.write(json.dumps(header, sort_keys=True) + "\n")
        self.out_write(bytes(self.buf))
        self.buf = None

    def finish(self):
        if self.header is None:
            raise ArtifactError("the object ends before its WAL header is complete")


def check_sidecar(data, key):
    """docs/EVIDENCE.md section 3: 'authentic', 'unsealed' or 'forged' for sidecar bytes."""
    if b'"mac"' not in data:
        return "unsealed"
    if not data.endswith(b'"\n}'):
        return "forged"
    cut = data.rfind(SIDECAR_MAC_MEMBER)
    if cut < 0:
        return "forged"
    parts = data[cut + len(SIDECAR_MAC_MEMBER):-3].split(b" ")
    if len(parts) != 3 or parts[0] != b"hmac-sha256" or len(parts[2]) != 64:
        return "forged"
    if parts[1].decode("ascii", "replace") != fingerprint_raw(key).hex():
        return "forged"
    body = data[:cut] + b"\n}"
    evidence_key = hkdf(key, None, b"wst evidence key v1")
    tag = hmac.new(evidence_key, b"wst sidecar v1\x00" + body, hashlib.sha256).hexdigest()
    return "authentic" if hmac.compare_digest(tag.encode(), parts[2]) else "forged"


def check_audit(path, key):
    """docs/EVIDENCE.md section 5.1: verify an audit log's SHA-256 chain and its MACs.

    Returns (records, None) when intact, or (n, problem) naming the first broken record.
    """
    evidence_key = hkdf(key, None, b"wst evidence key v1")
    fp = fingerprint_raw(key).hex()
    prev = "0" * 64
    keyed = False
    n = 0
    with open(path, "rb") as f:
        for line in f:
            line = line.rstrip(b"\n")
            try:
                rec = json.loads(line)
            except ValueError as e:
                return n, "record %d does not parse: %s" % (n, e)
            if not line.endswith(b'"}'):
                return n, "record %d does not end with its hash" % n
            rest = line[:-2]
            mac = None
            i = rest.rfind(b',"mac":"')
            if i >= 0 and b'"' not in rest[i + 8:]:
                mac = rest[i + 8:].decode("ascii", "replace")
                rest = rest[:i]
                if not rest.endswith(b'"'):
                    return n, "record %d: malformed tail" % n
                rest = rest[:-1]
            cut = len(rest) - len(b',"hash":"') - 64
            if cut < 1 or not rest[cut:].startswith(b',"hash":"'):
                return n, "record %d does not end with its hash" % n
            body = rest[:cut] + b"}"
            if hashlib.sha256(body).hexdigest() != rec.get("hash"):
                return n, "record %d was altered" % n
            if rec.get("seq") != n:
                return n, "record %d has sequence number %s" % (n, rec.get("seq"))
            if rec.get("prev") != prev:
                return n, "record %d does not follow record %d" % (n, max(n - 1, 0))
            if mac is None:
                if keyed:
                    return n, "record %d carries no MAC although earlier records do" % n
            else:
                parts = mac.split(" ")
                if len(parts) != 3 or parts[0] != "hmac-sha256" or parts[1] != fp:
                    return n, "record %d: MAC not made with this key" % n
                tag = hmac.new(evidence_key, b"wst audit record v1\x00" + body,
                               hashlib.sha256).hexdigest()
                if not hmac.compare_digest(tag, parts[2]):
                    return n, "record %d's MAC does not verify" % n
                keyed = True
            prev = rec["hash"]
            n += 1
    return n, None


def main(argv=None):
    ap = argparse.ArgumentParser(description="Decrypt a wst artifact (format wst-aead-v1).")
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--key-file")
    g.add_argument("--passphrase-file")
    g.add_argument("--passphrase-env")
    ap.add_argument("--info", action="store_true", help="list the key slots and exit")
    ap.add_argument("--explain", action="store_true",
                    help="print derived values as JSON and exit (prints the data key: test vectors only)")
    ap.add_argument("--check-sidecar", action="store_true",
                    help="the file is a sidecar: check its MAC with --key-file (exit 0 authentic, 1 not)")
    ap.add_argument("--check-audit", action="store_true",
                    help="the file is an audit log: verify its chain and MACs with --key-file "
                         "(exit 0 intact, 1 broken)")
    ap.add_argument("--wal", metavar="NAME",
                    help="the file is a WAL object (docs/WAL.md): require its header to name WAL file NAME")
    ap.add_argument("-o", "--output")
    ap.add_argument("artifact", help="the .wst file, or - for standard input")
    a = ap.parse_args(argv)
    key = passphrase = None
    try:
        if a.key_file:
            key = load_key_file(a.key_file)
        elif a.passphrase_file:
            passphrase = load_passphrase_file(a.passphrase_file)
        elif a.passphrase_env:
            passphrase = os.environ.get(a.passphrase_env, "").encode()
        elif not a.info:
            ap.error("one of --key-file, --passphrase-file, --passphrase-env is required")
        if a.check_audit:
            if key is None:
                ap.error("--check-audit needs --key-file")
            n, problem = check_audit(a.artifact, key)
            print("intact: %d records" % n if problem is None else "broken: " + problem)
            return 0 if problem is None else 1
        if a.check_sidecar:
            if key is None:
                ap.error("--check-sidecar needs --key-file")
            with open(a.artifact, "rb") as f:
                verdict = check_sidecar(f.read(65536), key)
            print(verdict)
            return 0 if verdict == "authentic" else 1
        with (os.fdopen(os.dup(sys.stdin.fileno()), "rb") if a.artifact == "-" else open(a.artifact, "rb")) as f:
            header, chunk_size, slots = parse_header(f)
            if a.info:
                print(json.dumps({
                    "format": "wst-aead-v1", "chunk_size": chunk_size, "header_len": len(header),
                    "artifact_id": header[16:32].hex(),
                    "slots": [{"type": "raw-key" if s["type"] == 1 else "passphrase",
                               "fingerprint": s["fingerprint"].hex(),
                               **({"argon2id": {"memory_kib": s["m"], "iterations": s["t"],
                                                "parallelism": s["p"]}} if s["type"] == 2 else {})}
                              for s in slots]}, indent=2))
                return 0
            data_key, fp, slot = open_slots(slots, key, passphrase)
            if a.explain:
                d = derive(header, data_key)
                out = bytearray()
                chunks = decrypt_stream(f, out.extend, header, chunk_size, data_key)
                print(json.dumps({
                    "opened_slot": slot, "opened_with": fp.hex(), "data_key": data_key.hex(),
                    "payload_key": d["payload_key"].hex(), "mac_key": d["mac_key"].hex(),
                    "nonce_prefix": d["nonce_prefix"].hex(), "chunk_size": chunk_size,
                    "chunks": chunks, "plaintext_sha256": hashlib.sha256(out).hexdigest(),
                    "slot_fingerprints": [s["fingerprint"].hex() for s in slots],
                }, indent=2, sort_keys=True))
                return 0
            if a.output:
                partial = a.output + ".partial"
                try:
                    with open(partial, "wb") as out:
                        if a.wal:
                            wal = WalHeaderCheck(a.wal, out.write)
                            decrypt_stream(f, wal.write, header, chunk_size, data_key)
                            wal.finish()
                        else:
                            decrypt_stream(f, out.write, header, chunk_size, data_key)
                        out.flush()
                        os.fsync(out.fileno())
                    os.replace(partial, a.output)
                except BaseException:
                    if os.path.exists(partial):
                        os.unlink(partial)
                    raise
            elif a.wal:
                wal = WalHeaderCheck(a.wal, sys.stdout.buffer.write)
                decrypt_stream(f, wal.write, header, chunk_size, data_key)
                wal.finish()
                sys.stdout.buffer.flush()
            else:
                decrypt_stream(f, sys.stdout.buffer.write, header, chunk_size, data_key)
                sys.stdout.buffer.flush()
        return 0
    except ArtifactError as e:
        sys.stderr.write("wst_decrypt: %s\n" % e)
        return 1
    except OSError as e:
        sys.stderr.write("wst_decrypt: %s\n" % e)
        return 1


if __name__ == "__main__":
    sys.exit(main())
