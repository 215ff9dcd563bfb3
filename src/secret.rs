//! The secrets that come from this machine rather than from the wire: the
//! shared key, read from its key file, and fresh random nonces from the
//! kernel. `proto::auth` does the MAC and proof arithmetic on them and
//! stays free of files and system calls.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use crate::error::{Error, Result};
use crate::proto::auth::{Key, MAX_KEY_LEN};
use crate::sys;

impl Key {
    /// Read a key file: at least 32 bytes, and like ssh, refused when group
    /// or others may read it.
    pub fn load(path: &Path) -> Result<Key> {
        let shown = path.display();
        // O_NONBLOCK: a FIFO would otherwise hold the open forever, and
        // the check is on what was opened, so nothing swapped in after a
        // look at the name gets read (O_NOCTTY for a tty).
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(sys::O_NONBLOCK | sys::O_NOCTTY)
            .open(path)
            .map_err(|e| Error::local(format!("cannot open key file '{shown}'"), e))?;
        let meta = file
            .metadata()
            .map_err(|e| Error::local(format!("cannot read key file '{shown}'"), e))?;
        // A directory would otherwise be told to 'chmod 600'.
        if !meta.is_file() {
            return Err(Error::Other(format!(
                "key file '{shown}' is not a regular file; give the file that holds the key"
            )));
        }
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(Error::Other(format!(
                "key file '{shown}' is readable by others (mode {:o}); run 'chmod 600 {shown}'",
                meta.permissions().mode() & 0o777
            )));
        }
        let mut bytes = Vec::new();
        // One byte past the bound, so that a longer file is told apart.
        file.take(MAX_KEY_LEN + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| Error::local(format!("cannot read key file '{shown}'"), e))?;
        Key::from_bytes(bytes).map_err(|why| Error::Other(format!("key file '{shown}': {why}")))
    }
}

/// 32 fresh random bytes from the kernel (a handshake nonce, a page token).
pub fn nonce() -> Result<[u8; 32]> {
    let mut n = [0u8; 32];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut n))
        .map_err(|e| Error::local("cannot read /dev/urandom", e))?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loose_permissions_are_refused() {
        let dir = std::env::temp_dir().join(format!("tcpfetch-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("key");
        std::fs::write(&path, [1u8; 32]).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = Key::load(&path).unwrap_err().to_string();
        assert!(err.contains("readable by others"), "{err}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(Key::load(&path).is_ok());
        std::fs::write(&path, [1u8; 31]).unwrap();
        let err = Key::load(&path).unwrap_err().to_string();
        assert!(err.contains("at least 32 bytes"), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn nonces_are_fresh() {
        assert_ne!(nonce().unwrap(), nonce().unwrap());
    }
}
