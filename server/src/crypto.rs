//! Encryption of the members' OAuth2 tokens at rest.
//!
//! Tokens are sealed with AES-256-GCM under one key per deployment. Every encryption draws a
//! fresh random 96-bit nonce; the stored blob is the nonce followed by the ciphertext (which
//! ends with the 16-byte tag). The member's project member ID is the associated data, so a blob
//! copied into another member's row fails to open instead of handing out someone else's token.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// Length of an AES-256 key in bytes.
const KEY_LEN: usize = 32;
/// Length of the GCM nonce in bytes.
const NONCE_LEN: usize = 12;
/// Length of the GCM authentication tag in bytes.
const TAG_LEN: usize = 16;

/// Why a key could not be loaded or a blob could not be opened. Never carries key material.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// The key is not standard base64.
    #[error("the token encryption key is not valid base64")]
    KeyEncoding,
    /// The key decodes to the wrong number of bytes.
    #[error("the token encryption key must be {KEY_LEN} bytes, found {found}")]
    KeyLength {
        /// How many bytes the key had.
        found: usize,
    },
    /// The key file could not be read or written.
    #[error("token key file {path}: {source}")]
    KeyFile {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The blob is too short, was altered, belongs to another member or another key.
    #[error("an encrypted token could not be opened (altered, moved or under another key)")]
    Decrypt,
    /// The decrypted bytes are not UTF-8 text.
    #[error("a decrypted token is not UTF-8 text")]
    NotText,
}

/// Seals and opens tokens with one AES-256-GCM key.
#[derive(Clone)]
pub struct TokenCipher {
    aead: Aes256Gcm,
}

impl fmt::Debug for TokenCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenCipher(<redacted>)")
    }
}

impl TokenCipher {
    /// A cipher over a key given as standard base64 of 32 bytes.
    ///
    /// # Errors
    ///
    /// [`CryptoError::KeyEncoding`] or [`CryptoError::KeyLength`].
    pub fn from_base64_key(encoded: &str) -> Result<Self, CryptoError> {
        let bytes = STANDARD.decode(encoded.trim()).map_err(|_| CryptoError::KeyEncoding)?;
        Self::from_bytes(&bytes)
    }

    fn from_bytes(bytes: &[u8]) -> Result<Self, CryptoError> {
        if bytes.len() != KEY_LEN {
            return Err(CryptoError::KeyLength { found: bytes.len() });
        }
        let key = Key::<Aes256Gcm>::from_slice(bytes);
        Ok(Self { aead: Aes256Gcm::new(key) })
    }

    /// Reads the key file at `path`, or creates it (and its directory) with a new random key,
    /// readable by the owner only.
    ///
    /// The new file is written under a temporary name and linked into place, so two processes
    /// starting together agree on one key: the one that loses the link reads the winner's.
    ///
    /// # Errors
    ///
    /// When the file cannot be read or written, or holds a malformed key.
    pub fn load_or_create(path: &Path) -> Result<Self, CryptoError> {
        let file_error = |source| CryptoError::KeyFile { path: path.to_owned(), source };
        match std::fs::read_to_string(path) {
            Ok(text) => {
                warn_if_shared(path);
                return Self::from_base64_key(&text);
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => return Err(file_error(err)),
        }
        if let Some(parent) = path.parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent).map_err(file_error)?;
        }
        let key = Aes256Gcm::generate_key(OsRng);
        let encoded = STANDARD.encode(key.as_slice());
        let temporary = temporary_sibling(path);
        write_private(&temporary, &encoded).map_err(file_error)?;
        let linked = std::fs::hard_link(&temporary, path);
        let _ = std::fs::remove_file(&temporary);
        match linked {
            Ok(()) => {
                tracing::info!(path = %path.display(), "created a new token encryption key");
                Ok(Self { aead: Aes256Gcm::new(&key) })
            }
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {
                let text = std::fs::read_to_string(path).map_err(file_error)?;
                Self::from_base64_key(&text)
            }
            Err(err) => Err(file_error(err)),
        }
    }

    /// Seals `plaintext` for the member `member_id`: a random nonce followed by the ciphertext.
    pub fn encrypt(&self, member_id: &str, plaintext: &str) -> Vec<u8> {
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let payload = Payload { msg: plaintext.as_bytes(), aad: member_id.as_bytes() };
        let sealed = self
            .aead
            .encrypt(&nonce, payload)
            .expect("AES-GCM encryption only fails for inputs of many gigabytes");
        let mut blob = Vec::with_capacity(NONCE_LEN + sealed.len());
        blob.extend_from_slice(nonce.as_slice());
        blob.extend_from_slice(&sealed);
        blob
    }

    /// Opens a blob made by [`TokenCipher::encrypt`] for the same member.
    ///
    /// # Errors
    ///
    /// [`CryptoError::Decrypt`] when the blob is short, altered, sealed for another member or
    /// under another key; [`CryptoError::NotText`] when it does not hold UTF-8.
    pub fn decrypt(&self, member_id: &str, blob: &[u8]) -> Result<String, CryptoError> {
        if blob.len() < NONCE_LEN + TAG_LEN {
            return Err(CryptoError::Decrypt);
        }
        let (nonce, sealed) = blob.split_at(NONCE_LEN);
        let plain = self
            .aead
            .decrypt(Nonce::from_slice(nonce), Payload { msg: sealed, aad: member_id.as_bytes() })
            .map_err(|_| CryptoError::Decrypt)?;
        String::from_utf8(plain).map_err(|_| CryptoError::NotText)
    }
}

/// `<name>.<random>.tmp` next to `path`.
fn temporary_sibling(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let suffix: u64 = rand::random();
    path.with_file_name(format!(".{name}.{suffix:016x}.tmp"))
}

/// Creates `path` (which must not exist) with owner-only permissions and writes `text`.
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(text.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()
}

/// Warns when the key file can be read by anyone but its owner.
fn warn_if_shared(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(path = %path.display(), "the token key file is readable by others");
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cipher() -> TokenCipher {
        TokenCipher::from_base64_key(&STANDARD.encode([7u8; KEY_LEN])).expect("valid key")
    }

    #[test]
    fn round_trip() {
        let c = cipher();
        let blob = c.encrypt("01234567", "token-value");
        assert_eq!(c.decrypt("01234567", &blob).expect("opens"), "token-value");
        assert!(!blob.windows(11).any(|w| w == b"token-value"), "plaintext is not visible");
    }

    #[test]
    fn every_encryption_uses_a_new_nonce() {
        let c = cipher();
        let a = c.encrypt("01234567", "same");
        let b = c.encrypt("01234567", "same");
        assert_ne!(a[..NONCE_LEN], b[..NONCE_LEN]);
        assert_ne!(a, b);
    }

    #[test]
    fn another_member_cannot_open_it() {
        let c = cipher();
        let blob = c.encrypt("01234567", "token-value");
        assert!(matches!(c.decrypt("76543210", &blob), Err(CryptoError::Decrypt)));
    }

    #[test]
    fn tampering_is_detected() {
        let c = cipher();
        let blob = c.encrypt("01234567", "token-value");
        for index in [0, NONCE_LEN, blob.len() - 1] {
            let mut altered = blob.clone();
            altered[index] ^= 0x01;
            assert!(matches!(c.decrypt("01234567", &altered), Err(CryptoError::Decrypt)));
        }
        assert!(matches!(c.decrypt("01234567", &blob[..20]), Err(CryptoError::Decrypt)));
    }

    #[test]
    fn another_key_cannot_open_it() {
        let other = TokenCipher::from_base64_key(&STANDARD.encode([8u8; KEY_LEN])).expect("key");
        let blob = cipher().encrypt("01234567", "token-value");
        assert!(matches!(other.decrypt("01234567", &blob), Err(CryptoError::Decrypt)));
    }

    #[test]
    fn bad_keys_are_refused() {
        let short = TokenCipher::from_base64_key(&STANDARD.encode([1u8; 16]));
        assert!(matches!(short, Err(CryptoError::KeyLength { found: 16 })));
        let long = TokenCipher::from_base64_key(&STANDARD.encode([1u8; 33]));
        assert!(matches!(long, Err(CryptoError::KeyLength { found: 33 })));
        assert!(matches!(
            TokenCipher::from_base64_key("not base64!"),
            Err(CryptoError::KeyEncoding)
        ));
    }

    #[test]
    fn debug_hides_the_key() {
        assert_eq!(format!("{:?}", cipher()), "TokenCipher(<redacted>)");
    }

    #[test]
    fn key_file_is_created_once_and_reused() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("keys").join("token.key");
        let first = TokenCipher::load_or_create(&path).expect("creates the key");
        let blob = first.encrypt("01234567", "token-value");
        let second = TokenCipher::load_or_create(&path).expect("reads the key");
        assert_eq!(second.decrypt("01234567", &blob).expect("same key"), "token-value");
        let leftovers = std::fs::read_dir(path.parent().expect("parent"))
            .expect("list")
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .count();
        assert_eq!(leftovers, 0, "no temporary file is left behind");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("metadata").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn malformed_key_file_is_an_error() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("token.key");
        std::fs::write(&path, STANDARD.encode([3u8; 10])).expect("write");
        assert!(matches!(
            TokenCipher::load_or_create(&path),
            Err(CryptoError::KeyLength { found: 10 })
        ));
    }
}
