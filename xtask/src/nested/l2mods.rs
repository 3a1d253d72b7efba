//! L2 modules that `l2/modules` lacks (e.g. `crc32c_generic`, which ext4
//! needs): taken from the Debian package of the very kernel in `l2/vmlinuz`
//! (its release read from the bzImage header), downloaded once with
//! `apt-get download` and cached under the target directory.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, ensure, Context, Result};

use super::Settings;

/// The kernel release of a bzImage (`6.1.0-56-amd64`): the first word of the
/// string the setup header's `kernel_version` field points to.
pub fn kernel_release(bzimage: &Path) -> Result<String> {
    let bytes = std::fs::read(bzimage).with_context(|| format!("cannot read {}", bzimage.display()))?;
    let field = bytes.get(0x20E..0x210).context("not a bzImage: too short")?;
    let at = usize::from(u16::from_le_bytes([field[0], field[1]])) + 0x200;
    let text = bytes.get(at..).context("kernel_version points past the end")?;
    let end = text.iter().position(|b| *b == 0 || *b == b' ').unwrap_or(0);
    let release = std::str::from_utf8(&text[..end]).context("kernel_version is not text")?;
    ensure!(!release.is_empty() && release.chars().all(|c| c.is_ascii_alphanumeric() || "-._+".contains(c)), "odd kernel release {release:?}");
    Ok(release.to_string())
}

/// Where module `name` is: `l2/modules/NAME.ko`, or the cache (filled from
/// the kernel's Debian package on first use).
pub fn module_path(settings: &Settings, name: &str) -> Result<PathBuf> {
    let shipped = settings.l2_modules().join(format!("{name}.ko"));
    if shipped.is_file() {
        return Ok(shipped);
    }
    let release = kernel_release(&settings.l2_kernel())?;
    let cache = settings.target_dir.join("nested/l2-modules").join(&release);
    let cached = cache.join(format!("{name}.ko"));
    if !cached.is_file() {
        fetch(&release, &cache)?;
    }
    ensure!(cached.is_file(), "L2 module {name} is neither in {} nor in linux-image-{release}", settings.l2_modules().display());
    Ok(cached)
}

/// Unpacks every module of `linux-image-RELEASE` flat into `dest`.
fn fetch(release: &str, dest: &Path) -> Result<()> {
    let work = dest.with_extension("download");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    eprintln!("xtask: fetching linux-image-{release} for modules l2/modules lacks (apt-get download)");
    run(Command::new("apt-get").args(["download", &format!("linux-image-{release}")]).current_dir(&work))?;
    let deb = std::fs::read_dir(&work)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .context("apt-get download left no .deb")?;
    let tree = work.join("tree");
    run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&tree))?;
    std::fs::create_dir_all(dest)?;
    let modules = tree.join("lib/modules").join(release).join("kernel");
    copy_flat(&modules, dest)?;
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}

fn copy_flat(dir: &Path, dest: &Path) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            copy_flat(&path, dest)?;
        } else if path.extension().is_some_and(|x| x == "ko") {
            if let Some(name) = path.file_name() {
                std::fs::copy(&path, dest.join(name))?;
            }
        }
    }
    Ok(())
}

fn run(cmd: &mut Command) -> Result<()> {
    let st = cmd.status().with_context(|| format!("cannot run {cmd:?}"))?;
    if !st.success() {
        bail!("{cmd:?} failed: {st}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_release_comes_from_the_setup_header() {
        let mut img = vec![0u8; 0x400];
        img[0x20E..0x210].copy_from_slice(&0x100u16.to_le_bytes());
        img[0x300..0x300 + 40].copy_from_slice(b"6.1.0-56-amd64 (debian-kernel@lists) #1\0");
        let p = std::env::temp_dir().join(format!("xk-bz-{}", std::process::id()));
        std::fs::write(&p, &img).unwrap();
        assert_eq!(kernel_release(&p).unwrap(), "6.1.0-56-amd64");
        img[0x300] = 0;
        std::fs::write(&p, &img).unwrap();
        assert!(kernel_release(&p).is_err());
        let _ = std::fs::remove_file(p);
    }
}
