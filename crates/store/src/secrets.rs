//! Secrets at rest: AES-256-GCM under a keyring of master keys.
//!
//! Every secret is sealed with the newest key and a fresh random 96-bit nonce; the key id, the
//! nonce and the ciphertext (with its tag) are stored. The associated data binds a ciphertext to
//! its row and column, so a sealed value copied to another row does not open. Older keys stay in
//! the keyring to open values sealed before a rotation; [`crate::Store::rotate_secrets`] reseals
//! everything with the newest key, after which old keys can be dropped.

use std::fmt;
use std::sync::Arc;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rand::RngCore;
use secrecy::SecretString;

/// Environment variable holding the master key(s) inline.
pub const MASTER_KEY_ENV: &str = "SLOTBRIDGE_MASTER_KEY";
/// Environment variable naming a file that holds the master key(s).
pub const MASTER_KEY_FILE_ENV: &str = "SLOTBRIDGE_MASTER_KEY_FILE";

const NONCE_LEN: usize = 12;

/// Why the keyring could not be built or a secret could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Neither variable is set.
    #[error("no master key: set {MASTER_KEY_ENV} (base64 of 32 bytes) or {MASTER_KEY_FILE_ENV}")]
    Missing,
    /// Both variables are set; which one wins would be a guess.
    #[error("both {MASTER_KEY_ENV} and {MASTER_KEY_FILE_ENV} are set: set only one")]
    Ambiguous,
    /// The key file could not be read.
    #[error("cannot read master key file {path}: {source}")]
    ReadFile {
        /// The file named by the variable.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A keyring entry is malformed. The message never contains key material.
    #[error("master key entry {entry} is invalid: {reason}")]
    InvalidEntry {
        /// 1-based position of the entry.
        entry: usize,
        /// What was expected.
        reason: String,
    },
    /// Two entries share an id.
    #[error("master key id {key_id:?} appears more than once")]
    DuplicateId {
        /// The repeated id.
        key_id: String,
    },
    /// A stored secret was sealed with a key that is not in the keyring.
    #[error(
        "a stored secret is sealed with master key {key_id:?}, which is not in the keyring; \
         add it back (keys: {known})"
    )]
    UnknownKeyId {
        /// The id stored with the secret.
        key_id: String,
        /// The ids the keyring has, comma-separated.
        known: String,
    },
    /// The ciphertext did not authenticate: wrong key material, or a tampered value.
    #[error("a stored secret sealed with key {key_id:?} failed to decrypt (wrong key or tampered)")]
    DecryptFailed {
        /// The key id stored with the secret.
        key_id: String,
    },
    /// The decrypted bytes were not UTF-8.
    #[error("a stored secret sealed with key {key_id:?} is not valid UTF-8")]
    NotUtf8 {
        /// The key id stored with the secret.
        key_id: String,
    },
}

struct MasterKey {
    id: String,
    cipher: Aes256Gcm,
    /// The key of the blind indexes ([`Keyring::blind_indexes`]): HMAC-SHA256 of a fixed label
    /// under the master key, so it is never the encryption key itself.
    index: [u8; 32],
}

/// The label the blind-index key is derived under (see [`MasterKey::index`]).
const INDEX_KEY_LABEL: &[u8] = b"slotbridge blind index v1";

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    use hmac::{Hmac, Mac};
    let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(key)
        .expect("HMAC-SHA256 takes a key of any length");
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

/// The master keys. The last entry is the newest: it seals; every entry opens.
///
/// Text form (the value of `SLOTBRIDGE_MASTER_KEY` or the contents of the file named by
/// `SLOTBRIDGE_MASTER_KEY_FILE`): entries separated by commas or newlines, each `id:BASE64`
/// where BASE64 is standard base64 of exactly 32 random bytes. A single entry may omit the id
/// (it is then `default`). Blank lines and lines starting with `#` are ignored.
///
/// ```
/// use slotbridge_store::Keyring;
/// let k1 = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
/// let k2 = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
/// let keys = Keyring::parse(&format!("2025:{k1}\n2026:{k2}")).unwrap();
/// assert_eq!(keys.newest_key_id(), "2026");
/// assert!(format!("{keys:?}").contains("2025"));
/// assert!(!format!("{keys:?}").contains(k1));
/// ```
#[derive(Clone)]
pub struct Keyring {
    keys: Arc<Vec<MasterKey>>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("key_ids", &self.key_ids())
            .finish_non_exhaustive()
    }
}

/// A sealed secret as stored.
pub(crate) struct Sealed {
    pub key_id: String,
    pub nonce: Vec<u8>,
    pub ciphertext: Vec<u8>,
}

impl Keyring {
    /// Build the keyring from `SLOTBRIDGE_MASTER_KEY` or the file named by
    /// `SLOTBRIDGE_MASTER_KEY_FILE` (exactly one must be set).
    pub fn from_env() -> Result<Keyring, KeyError> {
        let inline = std::env::var(MASTER_KEY_ENV).ok().filter(|v| !v.is_empty());
        let file = std::env::var(MASTER_KEY_FILE_ENV)
            .ok()
            .filter(|v| !v.is_empty());
        match (inline, file) {
            (Some(_), Some(_)) => Err(KeyError::Ambiguous),
            (Some(text), None) => Keyring::parse(&text),
            (None, Some(path)) => {
                let text = std::fs::read_to_string(&path)
                    .map_err(|source| KeyError::ReadFile { path, source })?;
                Keyring::parse(&text)
            }
            (None, None) => Err(KeyError::Missing),
        }
    }

    /// Parse the text form (see the type's documentation).
    pub fn parse(text: &str) -> Result<Keyring, KeyError> {
        let entries: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.starts_with('#'))
            .flat_map(|l| l.split(','))
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .collect();
        if entries.is_empty() {
            return Err(KeyError::Missing);
        }
        let mut keys: Vec<MasterKey> = Vec::with_capacity(entries.len());
        for (i, entry) in entries.iter().enumerate() {
            let n = i + 1;
            let (id, b64) = match entry.split_once(':') {
                Some((id, b64)) => (id.trim(), b64.trim()),
                None if entries.len() == 1 => ("default", *entry),
                None => {
                    return Err(KeyError::InvalidEntry {
                        entry: n,
                        reason: "expected id:BASE64 when several keys are given".into(),
                    });
                }
            };
            if id.is_empty()
                || id.len() > 64
                || !id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            {
                return Err(KeyError::InvalidEntry {
                    entry: n,
                    reason: format!(
                        "key id {id:?} must be 1 to 64 letters, digits, '-', '_' or '.'"
                    ),
                });
            }
            let bytes = STANDARD.decode(b64).map_err(|_| KeyError::InvalidEntry {
                entry: n,
                reason: "key is not valid standard base64".into(),
            })?;
            let bytes: [u8; 32] =
                bytes
                    .as_slice()
                    .try_into()
                    .map_err(|_| KeyError::InvalidEntry {
                        entry: n,
                        reason: format!("key must be 32 bytes, found {} bytes", bytes.len()),
                    })?;
            if keys.iter().any(|k| k.id == id) {
                return Err(KeyError::DuplicateId { key_id: id.into() });
            }
            keys.push(MasterKey {
                id: id.to_owned(),
                cipher: Aes256Gcm::new(&Key::<Aes256Gcm>::from(bytes)),
                index: hmac_sha256(&bytes, &[INDEX_KEY_LABEL]),
            });
        }
        Ok(Keyring {
            keys: Arc::new(keys),
        })
    }

    /// A fresh random key in the text form's BASE64, for `id:BASE64` entries.
    pub fn generate_key() -> SecretString {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        SecretString::from(STANDARD.encode(bytes))
    }

    /// The id of the key that seals new values.
    pub fn newest_key_id(&self) -> &str {
        // parse() guarantees at least one key.
        self.keys.last().map(|k| k.id.as_str()).unwrap_or_default()
    }

    /// Every key id, oldest first.
    pub fn key_ids(&self) -> Vec<&str> {
        self.keys.iter().map(|k| k.id.as_str()).collect()
    }

    fn find(&self, key_id: &str) -> Result<&MasterKey, KeyError> {
        self.keys
            .iter()
            .find(|k| k.id == key_id)
            .ok_or_else(|| KeyError::UnknownKeyId {
                key_id: key_id.to_owned(),
                known: self.key_ids().join(", "),
            })
    }

    /// Check that `key_id` is in the keyring.
    pub(crate) fn require(&self, key_id: &str) -> Result<(), KeyError> {
        self.find(key_id).map(|_| ())
    }

    /// The blind index of `value` in the column named by `purpose`, under each key of the ring,
    /// newest first: hex of HMAC-SHA256(index key, purpose, 0, value), where the index key is
    /// derived from the master key. The newest is what a row stores; a search looks for any of
    /// them, so rows indexed before a key rotation are still found. Equal values give equal
    /// indexes (that is what makes them searchable) but the value cannot be read back, nor
    /// guessed without the master key.
    pub(crate) fn blind_indexes(&self, purpose: &str, value: &str) -> Vec<String> {
        self.keys
            .iter()
            .rev()
            .map(|k| {
                hex::encode(hmac_sha256(
                    &k.index,
                    &[purpose.as_bytes(), &[0], value.as_bytes()],
                ))
            })
            .collect()
    }

    /// Seal `plaintext` with the newest key; `aad` binds it to its place.
    pub(crate) fn seal(&self, plaintext: &str, aad: &[u8]) -> Sealed {
        let key = self.keys.last().expect("a keyring has at least one key");
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let ciphertext = key
            .cipher
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: plaintext.as_bytes(),
                    aad,
                },
            )
            // AES-GCM only fails for inputs over 64 GiB.
            .expect("AES-GCM encryption of a short secret cannot fail");
        Sealed {
            key_id: key.id.clone(),
            nonce: nonce.to_vec(),
            ciphertext,
        }
    }

    /// Open a value sealed by [`Keyring::seal`] with the same `aad`.
    pub(crate) fn open(&self, sealed: &Sealed, aad: &[u8]) -> Result<SecretString, KeyError> {
        let key = self.find(&sealed.key_id)?;
        let nonce: [u8; NONCE_LEN] =
            sealed
                .nonce
                .as_slice()
                .try_into()
                .map_err(|_| KeyError::DecryptFailed {
                    key_id: sealed.key_id.clone(),
                })?;
        let plain = key
            .cipher
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: &sealed.ciphertext,
                    aad,
                },
            )
            .map_err(|_| KeyError::DecryptFailed {
                key_id: sealed.key_id.clone(),
            })?;
        String::from_utf8(plain)
            .map(SecretString::from)
            .map_err(|_| KeyError::NotUtf8 {
                key_id: sealed.key_id.clone(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    fn ring(text: &str) -> Keyring {
        Keyring::parse(text).expect("valid keyring")
    }

    #[test]
    fn seal_and_open_round_trip_with_fresh_nonces() {
        let k = Keyring::generate_key();
        let keys = ring(k.expose_secret());
        let a = keys.seal("hunter2", b"link:1:pms");
        let b = keys.seal("hunter2", b"link:1:pms");
        assert_ne!(a.nonce, b.nonce, "every value gets its own nonce");
        assert_ne!(a.ciphertext, b.ciphertext);
        assert_eq!(a.key_id, "default");
        assert_eq!(
            keys.open(&a, b"link:1:pms").unwrap().expose_secret(),
            "hunter2"
        );
    }

    #[test]
    fn wrong_aad_or_tampering_fails() {
        let keys = ring(Keyring::generate_key().expose_secret());
        let mut s = keys.seal("secret", b"row-a");
        assert!(matches!(
            keys.open(&s, b"row-b"),
            Err(KeyError::DecryptFailed { .. })
        ));
        s.ciphertext[0] ^= 1;
        assert!(matches!(
            keys.open(&s, b"row-a"),
            Err(KeyError::DecryptFailed { .. })
        ));
    }

    #[test]
    fn newest_seals_all_open() {
        let (k1, k2) = (Keyring::generate_key(), Keyring::generate_key());
        let old = ring(&format!("old:{}", k1.expose_secret()));
        let both = ring(&format!(
            "old:{}\nnew:{}",
            k1.expose_secret(),
            k2.expose_secret()
        ));
        let sealed_old = old.seal("v", b"x");
        assert_eq!(both.open(&sealed_old, b"x").unwrap().expose_secret(), "v");
        let sealed_new = both.seal("v", b"x");
        assert_eq!(sealed_new.key_id, "new");
        assert!(matches!(
            old.open(&sealed_new, b"x"),
            Err(KeyError::UnknownKeyId { .. })
        ));
    }

    #[test]
    fn blind_indexes_are_keyed_per_purpose_and_newest_first() {
        let (k1, k2) = (Keyring::generate_key(), Keyring::generate_key());
        let old = ring(&format!("old:{}", k1.expose_secret()));
        let both = ring(&format!(
            "old:{}\nnew:{}",
            k1.expose_secret(),
            k2.expose_secret()
        ));
        let a = both.blind_indexes("surname", "smith");
        assert_eq!(a.len(), 2);
        assert_eq!(
            a[1],
            old.blind_indexes("surname", "smith")[0],
            "oldest last"
        );
        assert_ne!(a[0], a[1], "each key gives its own index");
        assert_eq!(a, both.blind_indexes("surname", "smith"), "deterministic");
        assert_ne!(a, both.blind_indexes("surname", "smyth"));
        assert_ne!(
            a,
            both.blind_indexes("given", "smith"),
            "bound to its purpose"
        );
        assert_eq!(a[0].len(), 64);
        assert!(!a[0].contains("smith"));
        // Not the plain hash of the value: without the master key it cannot be guessed.
        use sha2::Digest as _;
        assert_ne!(a[0], hex::encode(sha2::Sha256::digest(b"smith")));
    }

    proptest::proptest! {
        #[test]
        fn any_text_round_trips_and_only_with_its_own_aad(
            text in ".{0,200}",
            aad in proptest::collection::vec(proptest::num::u8::ANY, 0..40),
            other in proptest::collection::vec(proptest::num::u8::ANY, 0..40),
        ) {
            let keys = ring(&format!("a:{}\nb:{}",
                Keyring::generate_key().expose_secret(),
                Keyring::generate_key().expose_secret()));
            let sealed = keys.seal(&text, &aad);
            proptest::prop_assert_eq!(sealed.key_id.as_str(), "b");
            proptest::prop_assert_eq!(sealed.ciphertext.len(), text.len() + 16);
            let opened = keys.open(&sealed, &aad).unwrap();
            proptest::prop_assert_eq!(opened.expose_secret(), text.as_str());
            if other != aad {
                proptest::prop_assert!(keys.open(&sealed, &other).is_err());
            }
        }
    }

    #[test]
    fn bad_entries_are_named_without_key_material() {
        let k = Keyring::generate_key();
        let short = "c2hvcnQ=";
        let err = Keyring::parse(&format!("a:{}, b:{short}", k.expose_secret())).unwrap_err();
        assert!(
            matches!(err, KeyError::InvalidEntry { entry: 2, .. }),
            "{err}"
        );
        assert!(!err.to_string().contains(short));
        assert!(matches!(
            Keyring::parse(" \n# only a comment\n"),
            Err(KeyError::Missing)
        ));
        let dup = format!("a:{0}\na:{0}", k.expose_secret());
        assert!(matches!(
            Keyring::parse(&dup),
            Err(KeyError::DuplicateId { .. })
        ));
        let two_bare = format!("{0},{0}", k.expose_secret());
        assert!(matches!(
            Keyring::parse(&two_bare),
            Err(KeyError::InvalidEntry { .. })
        ));
        assert!(matches!(
            Keyring::parse("a b:xx"),
            Err(KeyError::InvalidEntry { .. })
        ));
    }
}
