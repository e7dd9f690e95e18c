//! A tiny container image for the real-caller tests: a docker-archive tar of
//! Debian's busybox-static with the applets the tests use. Built locally, so
//! no registry is involved; containerd (`ctr image import`) and podman
//! (`podman load`) both read this format.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;

use vpc_cni_testkit::process::run_checked;

/// Reference the image is tagged with.
pub const IMAGE_REF: &str = "localhost/vpc-cni-test/busybox:1";

const BUSYBOX: &str = "/bin/busybox";

/// Applets linked into /bin. `sleep` keeps a sandbox alive; the rest are
/// what tests exec in pods.
const APPLETS: &[&str] = &[
    "sh", "sleep", "ping", "wget", "httpd", "nc", "ip", "cat", "echo", "ls", "hostname", "true",
    "ifconfig", "mkdir",
];

fn sha256_of(path: &Path) -> std::io::Result<String> {
    let out = run_checked(Command::new("sha256sum").arg(path))?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .next()
        .map(ToString::to_string)
        .ok_or_else(|| std::io::Error::other("sha256sum printed nothing"))
}

/// Writes the image as `<dir>/busybox-image.tar` and returns its path.
pub fn build_busybox_image(dir: &Path) -> std::io::Result<PathBuf> {
    if !Path::new(BUSYBOX).exists() {
        return Err(std::io::Error::other(
            "/bin/busybox is missing: install busybox-static (make test does)",
        ));
    }
    let work = dir.join("image-build");
    let rootfs = work.join("rootfs");
    for sub in ["bin", "etc", "tmp", "www", "proc", "sys", "dev"] {
        std::fs::create_dir_all(rootfs.join(sub))?;
    }
    std::fs::copy(BUSYBOX, rootfs.join("bin/busybox"))?;
    for applet in APPLETS {
        let link = rootfs.join("bin").join(applet);
        if !link.exists() {
            std::os::unix::fs::symlink("busybox", link)?;
        }
    }
    std::fs::write(rootfs.join("etc/passwd"), "root:x:0:0:root:/:/bin/sh\n")?;
    std::fs::write(rootfs.join("etc/group"), "root:x:0:\n")?;
    std::fs::write(rootfs.join("www/index.html"), "hello from a vpc-cni pod\n")?;

    let layer = work.join("layer.tar");
    run_checked(
        Command::new("tar")
            .args(["--owner=0", "--group=0", "--numeric-owner", "-C"])
            .arg(&rootfs)
            .arg("-cf")
            .arg(&layer)
            .arg("."),
    )?;
    let diff_id = format!("sha256:{}", sha256_of(&layer)?);
    let config = json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Cmd": ["sleep", "2147483647"],
            "Env": ["PATH=/bin"],
            "WorkingDir": "/"
        },
        "rootfs": {"type": "layers", "diff_ids": [diff_id]}
    });
    std::fs::write(work.join("config.json"), config.to_string())?;
    let manifest = json!([{
        "Config": "config.json",
        "RepoTags": [IMAGE_REF],
        "Layers": ["layer.tar"]
    }]);
    std::fs::write(work.join("manifest.json"), manifest.to_string())?;
    let image = dir.join("busybox-image.tar");
    run_checked(
        Command::new("tar")
            .arg("-C")
            .arg(&work)
            .arg("-cf")
            .arg(&image)
            .args(["manifest.json", "config.json", "layer.tar"]),
    )?;
    Ok(image)
}

/// The image the DaemonSet runs, as `deploy/base/kustomization.yaml` names it:
/// `vpc-cni:<the workspace's version>`.
#[must_use]
pub fn vpc_cni_image_ref() -> String {
    format!("vpc-cni:{}", env!("CARGO_PKG_VERSION"))
}

/// Builds vpc-cni's image with `deploy/image/build.sh` (what an operator runs, through `make
/// image`) from the binaries of this build profile, as `<dir>/vpc-cni-image.tar`, tagged
/// [`vpc_cni_image_ref`]. Returns its path.
pub fn build_vpc_cni_image(dir: &Path) -> std::io::Result<PathBuf> {
    let bin_dir = vpc_cni_testkit::bins::ipamd()
        .parent()
        .map(Path::to_path_buf)
        .ok_or_else(|| std::io::Error::other("ipamd's path has no directory"))?;
    let out = dir.join("vpc-cni-image.tar");
    let script = crate::deploy::repo().join("deploy/image/build.sh");
    run_checked(
        Command::new("bash")
            .arg(&script)
            .arg("--bin-dir")
            .arg(&bin_dir)
            .arg("--tag")
            .arg(vpc_cni_image_ref())
            .arg("--out")
            .arg(&out)
            .env("TMPDIR", dir),
    )?;
    Ok(out)
}
