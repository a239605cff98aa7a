//! A small tmpfs to fill: the data directory of the disk-full tests (e2e
//! `storage_full`, the chaos `disk-full` fault). Mounting needs root.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// ENOSPC: the file system is full.
const NO_SPACE: i32 = 28;

/// A tmpfs of a given size mounted on a fresh temp directory; unmounted
/// (lazily: a server a failed test left behind may still hold files open)
/// and removed on drop.
pub struct Tmpfs {
    _parent: tempfile::TempDir,
    dir: PathBuf,
}

impl Tmpfs {
    /// Why not, when it cannot be mounted (not root, most likely).
    pub fn mount(mib: u32) -> Result<Tmpfs, String> {
        let parent = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
        let dir = parent.path().join("data");
        std::fs::create_dir(&dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}M"), "tmpfs"])
            .arg(&dir)
            .output()
            .map_err(|e| format!("run mount: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
        }
        Ok(Tmpfs { _parent: parent, dir })
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

/// Writes `path` until the file system holding it is full (in ever smaller
/// pieces, so hardly a byte is left); the bytes written.
pub fn fill(path: &Path) -> std::io::Result<u64> {
    let mut f = File::create(path)?;
    let mut written = 0u64;
    for chunk in [1 << 20, 4096, 512] {
        let buf = vec![0xa5u8; chunk];
        loop {
            match f.write_all(&buf) {
                Ok(()) => written += chunk as u64,
                Err(e) if e.raw_os_error() == Some(NO_SPACE) => break,
                Err(e) => return Err(e),
            }
        }
    }
    Ok(written)
}
