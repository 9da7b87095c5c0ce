//! Machine images: the project's own Debian image built from Debian's packages,
//! and disk images given by path or downloaded with a checksum.
//!
//! The built image lives in `<cache>/machine-debian-12/`: `disk.qcow2` (an ext4
//! root file system on the whole disk, compressed), `vmlinuz` and `initrd.img`
//! for direct kernel boot, and `manifest.json` (versions, sizes, build time,
//! kernel command line). [`build`] runs the embedded `build-image.sh` (debootstrap,
//! `mkfs.ext4 -d`, `qemu-img convert -c`), so no checkout of the sources is needed.
//!
//! Downloaded images (over http or https, by a [`Downloader`]) go to
//! `<cache>/images/<sha256>/`. When a disk holds an ext4 file system with a
//! kernel in `/boot` (the built image does), the kernel and initramfs are
//! extracted with `debugfs` and the machine boots them directly; any other
//! disk boots through the firmware and is handed a cloud-init NoCloud seed.

pub use super::download::{Downloader, STALL_LIMIT};
use serde_json::Value;
use sha2::Digest;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

/// Name (and cache directory) of the default image.
pub const IMAGE_NAME: &str = "machine-debian-12";
/// Name of the image without Docker (Docker is installed by provisioning).
pub const IMAGE_NAME_NODOCKER: &str = "machine-debian-12-nodocker";
/// Kernel command line for images booted directly (root file system on `/dev/vda`).
pub const DEFAULT_CMDLINE: &str = "root=/dev/vda rw console=ttyS0,115200 loglevel=4";

/// A kernel command line without words that switch off the guest's defences
/// (`mitigations=off`, as images built by earlier releases carry).
pub fn hardened_cmdline(cmdline: &str) -> String {
    cmdline
        .split_whitespace()
        .filter(|w| *w != "mitigations=off")
        .collect::<Vec<_>>()
        .join(" ")
}

const BUILD_SCRIPT: &str = include_str!("build-image.sh");

/// A progress callback (one line per call).
pub type Progress<'a> = &'a (dyn Fn(&str) + Send + Sync);

/// Errors of image building, download and preparation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImageError {
    /// The image spec (`--qemu-image` and its checksum) is not usable.
    #[error("image {spec:?}: {reason}")]
    BadSpec { spec: String, reason: String },
    /// The build script failed.
    #[error("building image {name} failed (exit status {status}):\n{log_tail}")]
    Build {
        name: String,
        status: String,
        log_tail: String,
    },
    /// A helper program failed or is missing.
    #[error("{tool} failed: {reason}")]
    Tool { tool: String, reason: String },
    /// Local file I/O.
    #[error("file {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The trusted roots for https cannot be read.
    #[error("cannot read the trusted certificates in {path}")]
    Roots {
        path: PathBuf,
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    /// The HTTP client cannot be set up.
    #[error("cannot set up the HTTP client")]
    Client {
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The request failed: the server cannot be reached, or the connection
    /// broke (a body shorter than its announced length included).
    #[error("download of {url} failed")]
    Request {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    /// The server answered with another status than `200 OK`.
    #[error("download of {url} failed: HTTP {status}{}", status_reason(*.status))]
    HttpStatus { url: String, status: u16 },
    /// The server's certificate was refused (not issued by a trusted root,
    /// not for this host, expired, ...).
    #[error("download of {url} failed: the server's certificate was refused")]
    Certificate {
        url: String,
        #[source]
        source: rustls::Error,
    },
    /// The TLS handshake failed for another reason.
    #[error("download of {url} failed: TLS handshake failed")]
    Tls {
        url: String,
        #[source]
        source: rustls::Error,
    },
    /// More redirects than allowed.
    #[error("download of {url} failed: more than {limit} redirects")]
    Redirects { url: String, limit: usize },
    /// The server sent nothing for the stall limit.
    #[error("download of {url} failed: no data for {} s", .limit.as_secs())]
    Stalled { url: String, limit: Duration },
    /// The downloaded file does not have the expected checksum.
    #[error("checksum mismatch for {url}: expected sha256 {expected}, got {actual}")]
    Checksum {
        url: String,
        expected: String,
        actual: String,
    },
}

/// ` Not Found` after 404, and so on; empty for a status without a name.
fn status_reason(status: u16) -> String {
    reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .map(|r| format!(" {r}"))
        .unwrap_or_default()
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ImageError + '_ {
    move |source| ImageError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Which image the build script makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// systemd, sshd, Docker (docker.io) and AppArmor.
    Docker,
    /// The same without Docker, plus an offline apt repository holding docker.io
    /// and its dependencies (`apt-repo/` beside the disk).
    NoDocker,
}

impl Variant {
    /// The image's name and cache directory.
    pub fn name(self) -> &'static str {
        match self {
            Variant::Docker => IMAGE_NAME,
            Variant::NoDocker => IMAGE_NAME_NODOCKER,
        }
    }
    fn arg(self) -> &'static str {
        match self {
            Variant::Docker => "docker",
            Variant::NoDocker => "nodocker",
        }
    }
}

/// What [`build`] made.
#[derive(Debug, Clone)]
pub struct BuildReport {
    /// The image directory.
    pub dir: PathBuf,
    /// Wall-clock build time.
    pub elapsed: Duration,
    /// Size of the compressed `disk.qcow2` in bytes.
    pub disk_bytes: u64,
    /// The image's `manifest.json`.
    pub manifest: Value,
}

/// Where `variant` lives in `cache_dir`.
pub fn image_dir(cache_dir: &Path, variant: Variant) -> PathBuf {
    cache_dir.join(variant.name())
}

/// The manifest of a built image, if it is complete.
pub fn manifest(dir: &Path) -> Option<Value> {
    let m: Value = serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).ok()?).ok()?;
    ["disk.qcow2", "vmlinuz", "initrd.img"]
        .iter()
        .all(|f| dir.join(f).is_file())
        .then_some(m)
}

/// The tools the build needs that are missing (empty when it can run).
pub fn missing_build_tools() -> Vec<&'static str> {
    [
        "debootstrap",
        "mkfs.ext4",
        "debugfs",
        "qemu-img",
        "chroot",
        "bash",
    ]
    .into_iter()
    .filter(|t| find_program(t).is_none())
    .collect()
}

/// `name` in `PATH` (or the path itself when it contains a slash).
pub fn find_program(name: &str) -> Option<PathBuf> {
    if name.contains('/') {
        let p = PathBuf::from(name);
        return p.is_file().then_some(p);
    }
    let path = std::env::var_os("PATH")
        .unwrap_or_else(|| "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

async fn lock(cache_dir: &Path, name: &str) -> Result<std::fs::File, ImageError> {
    std::fs::create_dir_all(cache_dir).map_err(io_err(cache_dir))?;
    let path = cache_dir.join(format!(".{name}.lock"));
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io_err(&path))?;
    tokio::task::spawn_blocking(move || file.lock().map(|()| file))
        .await
        .map_err(|e| ImageError::Io {
            path: path.clone(),
            source: std::io::Error::other(e.to_string()),
        })?
        .map_err(io_err(&path))
}

/// Build (or rebuild) `variant` into `<cache_dir>/<name>/`, telling `progress`
/// each step. Runs debootstrap as root and takes a few minutes. Machines made
/// earlier keep working: each holds a hard link to the disk it was made from.
pub async fn build(
    cache_dir: &Path,
    variant: Variant,
    progress: Progress<'_>,
) -> Result<BuildReport, ImageError> {
    let _lock = lock(cache_dir, variant.name()).await?;
    build_locked(cache_dir, variant, progress).await
}

async fn build_locked(
    cache_dir: &Path,
    variant: Variant,
    progress: Progress<'_>,
) -> Result<BuildReport, ImageError> {
    let missing = missing_build_tools();
    if !missing.is_empty() {
        return Err(ImageError::Tool {
            tool: missing.join(", "),
            reason: "not installed (apt-get install debootstrap e2fsprogs qemu-utils)".into(),
        });
    }
    let dir = image_dir(cache_dir, variant);
    let started = Instant::now();
    progress(&format!(
        "Building image {} in {}",
        variant.name(),
        dir.display()
    ));
    let mut child = tokio::process::Command::new("bash")
        .arg("-c")
        .arg(BUILD_SCRIPT)
        .arg("build-image.sh")
        .arg(&dir)
        .arg(variant.arg())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| ImageError::Tool {
            tool: "bash".into(),
            reason: e.to_string(),
        })?;
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let err_task = tokio::spawn(async move {
        let mut text = String::new();
        if let Some(mut e) = stderr {
            let _ = e.read_to_string(&mut text).await;
        }
        text
    });
    let mut log = Vec::new();
    if let Some(out) = stdout {
        let mut lines = BufReader::new(out).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(step) = line.strip_prefix("==> ") {
                progress(&build_step(step, started.elapsed()));
            }
            log.push(line);
        }
    }
    let status = child.wait().await.map_err(|e| ImageError::Tool {
        tool: "bash".into(),
        reason: e.to_string(),
    })?;
    let stderr = err_task.await.unwrap_or_default();
    if !status.success() {
        let mut tail: Vec<&str> = log
            .iter()
            .map(String::as_str)
            .chain(stderr.lines())
            .collect();
        let n = tail.len().saturating_sub(30);
        tail.drain(..n);
        return Err(ImageError::Build {
            name: variant.name().into(),
            status: status.to_string(),
            log_tail: tail.join("\n"),
        });
    }
    let manifest = manifest(&dir).ok_or_else(|| ImageError::Build {
        name: variant.name().into(),
        status: status.to_string(),
        log_tail: "the build finished but the image is incomplete".into(),
    })?;
    let disk_bytes = std::fs::metadata(dir.join("disk.qcow2"))
        .map(|m| m.len())
        .unwrap_or(0);
    Ok(BuildReport {
        dir,
        elapsed: started.elapsed(),
        disk_bytes,
        manifest,
    })
}

/// A progress line for one phase of the image build, with the time since the
/// build began (the build takes minutes; a front end without a spinner shows
/// how far it got).
fn build_step(step: &str, elapsed: Duration) -> String {
    format!(
        "Building the machine image: {step} [{}:{:02}]",
        elapsed.as_secs() / 60,
        elapsed.as_secs() % 60
    )
}

/// The version of the image's boot-time unit (`machine-init`) that this
/// build script makes: 2 installs the daemon's configuration handed over at
/// first boot. Cached images of the project made by an older script are
/// built again (machines made from them keep their own hard link).
pub const INIT_VERSION: u64 = 2;

/// Whether a built image's manifest is current (see [`INIT_VERSION`]).
fn is_current(m: &Value) -> bool {
    m.get("init_version").and_then(Value::as_u64).unwrap_or(1) >= INIT_VERSION
}

/// The image directory of `variant`, built first if it is not in the cache
/// (or was built by an older build script).
pub async fn ensure_built(
    cache_dir: &Path,
    variant: Variant,
    progress: Progress<'_>,
) -> Result<PathBuf, ImageError> {
    let dir = image_dir(cache_dir, variant);
    if manifest(&dir).is_some_and(|m| is_current(&m)) {
        return Ok(dir);
    }
    let _lock = lock(cache_dir, variant.name()).await?;
    if !manifest(&dir).is_some_and(|m| is_current(&m)) {
        let r = build_locked(cache_dir, variant, progress).await?;
        progress(&format!(
            "Image {} built in {:.0} s ({} MiB)",
            variant.name(),
            r.elapsed.as_secs_f64(),
            r.disk_bytes / (1024 * 1024)
        ));
    }
    Ok(dir)
}

/// What `--qemu-image` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageSpec {
    /// One of the project's images, built on first use.
    Builtin(Variant),
    /// A directory laid out like a built image (disk.qcow2, vmlinuz, initrd.img).
    Dir(PathBuf),
    /// A qcow2 or raw disk image file.
    File(PathBuf),
    /// A qcow2 or raw disk image to download, with its SHA-256.
    Url { url: String, sha256: String },
}

fn normalize_sha256(spec: &str, raw: &str) -> Result<String, ImageError> {
    let h = raw.trim();
    let h = h
        .strip_prefix("sha256:")
        .or_else(|| h.strip_prefix("sha256="))
        .unwrap_or(h);
    if h.len() == 64 && h.chars().all(|c| c.is_ascii_hexdigit()) {
        Ok(h.to_ascii_lowercase())
    } else {
        Err(ImageError::BadSpec {
            spec: spec.into(),
            reason: format!(
                "{raw:?} is not a SHA-256 checksum (64 hex digits, optionally prefixed sha256:)"
            ),
        })
    }
}

impl ImageSpec {
    /// Read `--qemu-image` and `--qemu-image-checksum`. URLs need a checksum,
    /// given as `URL#sha256=HEX` or by the checksum flag.
    pub fn parse(spec: &str, checksum: &str) -> Result<ImageSpec, ImageError> {
        let s = spec.trim();
        match s {
            "" | "default" | IMAGE_NAME => return Ok(ImageSpec::Builtin(Variant::Docker)),
            IMAGE_NAME_NODOCKER => return Ok(ImageSpec::Builtin(Variant::NoDocker)),
            _ => {}
        }
        if s.starts_with("http://") || s.starts_with("https://") {
            let (url, frag) = match s.split_once('#') {
                Some((u, f)) => (u, Some(f)),
                None => (s, None),
            };
            let sum = match (frag, checksum.trim()) {
                (Some(f), _) => normalize_sha256(spec, f)?,
                (None, c) if !c.is_empty() => normalize_sha256(spec, c)?,
                (None, _) => {
                    return Err(ImageError::BadSpec {
                        spec: spec.into(),
                        reason: "a downloaded image needs a checksum: URL#sha256=HEX or --qemu-image-checksum".into(),
                    })
                }
            };
            return Ok(ImageSpec::Url {
                url: url.to_string(),
                sha256: sum,
            });
        }
        if s.contains("://") {
            return Err(ImageError::BadSpec {
                spec: spec.into(),
                reason: "only http:// and https:// URLs are supported".into(),
            });
        }
        let p = PathBuf::from(s);
        if p.is_dir() {
            Ok(ImageSpec::Dir(p))
        } else if p.is_file() {
            Ok(ImageSpec::File(p))
        } else {
            Err(ImageError::BadSpec {
                spec: spec.into(),
                reason: format!(
                    "not an image name ({IMAGE_NAME}, {IMAGE_NAME_NODOCKER}), an existing file or directory, or an http(s) URL"
                ),
            })
        }
    }
}

/// What a machine boots from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootImage {
    /// The base disk (the machine's overlay is made on top of it).
    pub disk: PathBuf,
    /// `qcow2` or `raw`.
    pub format: String,
    /// Kernel and initramfs for direct boot; `None`: boot through the firmware.
    pub kernel: Option<PathBuf>,
    pub initrd: Option<PathBuf>,
    /// Kernel command line for direct boot.
    pub cmdline: String,
    /// The path of `dockerd` in the image, when the image installs the
    /// daemon's configuration handed over at first boot (fw_cfg
    /// `opt/machine/docker/*`) and starts it under systemd.
    pub dockerd: Option<String>,
}

/// Find (building or downloading if needed) what `spec` names.
pub async fn resolve(
    cache_dir: &Path,
    spec: &ImageSpec,
    progress: Progress<'_>,
) -> Result<BootImage, ImageError> {
    match spec {
        ImageSpec::Builtin(v) => {
            let dir = ensure_built(cache_dir, *v, progress).await?;
            dir_image(&dir)
        }
        ImageSpec::Dir(d) => dir_image(d),
        ImageSpec::File(f) => {
            let f = std::fs::canonicalize(f).map_err(io_err(f))?;
            let meta = std::fs::metadata(&f).map_err(io_err(&f))?;
            let mtime = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_secs())
                .unwrap_or(0);
            let key = hex::encode(sha2::Sha256::digest(format!(
                "{}\0{}\0{mtime}",
                f.display(),
                meta.len()
            )));
            let work = cache_dir
                .join("images")
                .join(format!("file-{}", &key[..16]));
            disk_image(&f, &work, progress).await
        }
        ImageSpec::Url { url, sha256 } => {
            let disk = download(cache_dir, url, sha256, progress).await?;
            let work = disk
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| cache_dir.to_path_buf());
            disk_image(&disk, &work, progress).await
        }
    }
}

/// A built image directory.
pub fn dir_image(dir: &Path) -> Result<BootImage, ImageError> {
    let m = manifest(dir).ok_or_else(|| ImageError::BadSpec {
        spec: dir.display().to_string(),
        reason: "not a complete image directory (disk.qcow2, vmlinuz, initrd.img, manifest.json)"
            .into(),
    })?;
    let cmdline = m
        .get("cmdline")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map_or_else(|| DEFAULT_CMDLINE.to_string(), hardened_cmdline);
    let dockerd = m
        .get("dockerd")
        .and_then(Value::as_str)
        .filter(|d| is_current(&m) && d.starts_with('/'))
        .map(str::to_string);
    Ok(BootImage {
        disk: dir.join("disk.qcow2"),
        format: "qcow2".into(),
        kernel: Some(dir.join("vmlinuz")),
        initrd: Some(dir.join("initrd.img")),
        cmdline,
        dockerd,
    })
}

/// `qcow2` or `raw`, from the file's first bytes.
pub fn detect_format(path: &Path) -> Result<String, ImageError> {
    let mut magic = [0u8; 4];
    let mut f = std::fs::File::open(path).map_err(io_err(path))?;
    let n = std::io::Read::read(&mut f, &mut magic).map_err(io_err(path))?;
    Ok(if n == 4 && magic == *b"QFI\xfb" {
        "qcow2"
    } else {
        "raw"
    }
    .to_string())
}

async fn run_tool(
    tool: &str,
    args: &[&std::ffi::OsStr],
) -> Result<std::process::Output, ImageError> {
    let out = tokio::process::Command::new(tool)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|e| ImageError::Tool {
            tool: tool.into(),
            reason: e.to_string(),
        })?;
    Ok(out)
}

/// A disk image file: find a kernel in it for direct boot (remembered in
/// `work/boot.json`), else boot through the firmware.
async fn disk_image(
    disk: &Path,
    work: &Path,
    progress: Progress<'_>,
) -> Result<BootImage, ImageError> {
    let format = detect_format(disk)?;
    check_no_external_files(disk, &format).await?;
    let marker = work.join("boot.json");
    let (kernel, initrd) = (work.join("vmlinuz"), work.join("initrd.img"));
    let known: Option<Value> = std::fs::read(&marker)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let direct = match known
        .as_ref()
        .and_then(|v| v.get("direct"))
        .and_then(Value::as_bool)
    {
        Some(d) => d && kernel.is_file() && initrd.is_file(),
        None => {
            std::fs::create_dir_all(work).map_err(io_err(work))?;
            progress("Looking for a kernel in the image");
            let found = extract_kernel(disk, &format, work).await.unwrap_or(false);
            let text = serde_json::json!({ "direct": found, "format": format }).to_string();
            machine_core::fsutil::write_atomic(&marker, text.as_bytes(), 0o644)
                .map_err(io_err(&marker))?;
            found
        }
    };
    Ok(BootImage {
        disk: disk.to_path_buf(),
        format,
        kernel: direct.then_some(kernel),
        initrd: direct.then_some(initrd),
        cmdline: DEFAULT_CMDLINE.into(),
        dockerd: None,
    })
}

/// Refuse a disk image that names other files: a qcow2 backing file or
/// external data file would let an image we did not make read (and show the
/// guest) any file of this machine, `/root/.ssh/id_rsa` say.
pub async fn check_no_external_files(disk: &Path, format: &str) -> Result<(), ImageError> {
    let out = run_tool(
        "qemu-img",
        &[
            "info".as_ref(),
            "--output=json".as_ref(),
            "-f".as_ref(),
            format.as_ref(),
            disk.as_os_str(),
        ],
    )
    .await?;
    let bad = |reason: String| ImageError::BadSpec {
        spec: disk.display().to_string(),
        reason,
    };
    if !out.status.success() {
        return Err(bad(format!(
            "qemu-img info failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let info: Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| bad(format!("qemu-img info printed no JSON: {e}")))?;
    if let Some(b) = info
        .get("full-backing-filename")
        .or_else(|| info.get("backing-filename"))
    {
        return Err(bad(format!(
            "the image has a backing file ({b}); only self-contained images are used"
        )));
    }
    let data_file = info
        .pointer("/format-specific/data/data-file")
        .or_else(|| info.pointer("/format-specific/data/data-file-raw"));
    if let Some(d) = data_file.filter(|d| !d.is_null() && *d != &Value::Bool(false)) {
        return Err(bad(format!(
            "the image has an external data file ({d}); only self-contained images are used"
        )));
    }
    Ok(())
}

/// Copy `/boot/vmlinuz-*` and the matching `/boot/initrd.img-*` out of an ext4
/// file system that fills the disk (no partition table), without mounting it.
async fn extract_kernel(disk: &Path, format: &str, work: &Path) -> Result<bool, ImageError> {
    if find_program("debugfs").is_none() {
        return Ok(false);
    }
    let raw = if format == "qcow2" {
        let tmp = work.join("disk.raw.tmp");
        let out = run_tool(
            "qemu-img",
            &[
                "convert".as_ref(),
                "-O".as_ref(),
                "raw".as_ref(),
                disk.as_os_str(),
                tmp.as_os_str(),
            ],
        )
        .await?;
        if !out.status.success() {
            let _ = std::fs::remove_file(&tmp);
            return Ok(false);
        }
        Some(tmp)
    } else {
        None
    };
    let fs = raw.as_deref().unwrap_or(disk);
    let result = async {
        let out = run_tool(
            "debugfs",
            &["-R".as_ref(), "ls -p /boot".as_ref(), fs.as_os_str()],
        )
        .await?;
        if !out.status.success() {
            return Ok(false);
        }
        // `ls -p` lines: /inode/mode/uid/gid/name/size/
        let names: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| {
                l.trim()
                    .trim_matches('/')
                    .split('/')
                    .nth(4)
                    .map(str::to_string)
            })
            .collect();
        let mut versions: Vec<&str> = names
            .iter()
            .filter_map(|n| n.strip_prefix("vmlinuz-"))
            .collect();
        versions.sort_by(|a, b| version_cmp(a, b));
        let Some(v) = versions
            .into_iter()
            .rev()
            .find(|v| names.iter().any(|n| *n == format!("initrd.img-{v}")))
        else {
            return Ok(false);
        };
        for (src, dst) in [
            (format!("/boot/vmlinuz-{v}"), "vmlinuz"),
            (format!("/boot/initrd.img-{v}"), "initrd.img"),
        ] {
            let target = work.join(dst);
            let cmd = format!("dump {src} {}", target.display());
            let out = run_tool("debugfs", &["-R".as_ref(), cmd.as_ref(), fs.as_os_str()]).await?;
            let ok = out.status.success()
                && std::fs::metadata(&target)
                    .map(|m| m.len() > 0)
                    .unwrap_or(false);
            if !ok {
                return Ok(false);
            }
        }
        Ok(true)
    }
    .await;
    if let Some(tmp) = raw {
        let _ = std::fs::remove_file(tmp);
    }
    result
}

/// Compare dotted/dashed version strings numerically where both parts are numbers.
fn version_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let parts = |s: &str| -> Vec<String> { s.split(['.', '-', '+']).map(str::to_string).collect() };
    let (pa, pb) = (parts(a), parts(b));
    for (x, y) in pa.iter().zip(pb.iter()) {
        let o = match (x.parse::<u64>(), y.parse::<u64>()) {
            (Ok(i), Ok(j)) => i.cmp(&j),
            _ => x.cmp(y),
        };
        if o != std::cmp::Ordering::Equal {
            return o;
        }
    }
    pa.len().cmp(&pb.len())
}

/// Download `url` into `<cache>/images/<sha256>/disk` (reused when already
/// there and verified), checking its SHA-256, with https trusting the
/// system's roots ([`Downloader::system`]). A wrong checksum leaves nothing
/// behind.
pub async fn download(
    cache_dir: &Path,
    url: &str,
    sha256: &str,
    progress: Progress<'_>,
) -> Result<PathBuf, ImageError> {
    download_via(None, cache_dir, url, sha256, progress).await
}

/// The system's downloader; for a plain http URL one that trusts no roots
/// when the system's cannot be read (a redirect to https then fails the
/// certificate check).
fn system_downloader(url: &str) -> Result<Downloader, ImageError> {
    match Downloader::system() {
        Err(ImageError::Roots { path, source }) if url.starts_with("http://") => {
            tracing::debug!(roots = %path.display(), error = %source, "no trusted roots for https");
            Downloader::new(rustls::RootCertStore::empty())
        }
        d => d,
    }
}

/// [`download`] through `downloader` (the system's when `None`, made only
/// when the image is not already in the cache).
pub(super) async fn download_via(
    downloader: Option<&Downloader>,
    cache_dir: &Path,
    url: &str,
    sha256: &str,
    progress: Progress<'_>,
) -> Result<PathBuf, ImageError> {
    let dir = cache_dir.join("images").join(sha256);
    let disk = dir.join("disk");
    let verified = dir.join("verified");
    if disk.is_file() && verified.is_file() {
        return Ok(disk);
    }
    std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
    let _lock = lock(&dir, "download").await?;
    if disk.is_file() && verified.is_file() {
        return Ok(disk);
    }
    let part = dir.join("disk.part");
    let system;
    let downloader = match downloader {
        Some(d) => d,
        None => {
            system = system_downloader(url)?;
            &system
        }
    };
    let actual = match downloader.fetch_to(url, &part, progress).await {
        Ok(h) => h,
        Err(e) => {
            let _ = std::fs::remove_file(&part);
            return Err(e);
        }
    };
    if actual != sha256 {
        let _ = std::fs::remove_file(&part);
        let _ = std::fs::remove_dir_all(&dir);
        return Err(ImageError::Checksum {
            url: url.into(),
            expected: sha256.into(),
            actual,
        });
    }
    std::fs::rename(&part, &disk).map_err(io_err(&disk))?;
    machine_core::fsutil::write_atomic(&verified, url.as_bytes(), 0o644)
        .map_err(io_err(&verified))?;
    Ok(disk)
}

/// The SHA-256 of a file, as lowercase hex.
pub fn sha256_file(path: &Path) -> Result<String, ImageError> {
    let mut f = std::fs::File::open(path).map_err(io_err(path))?;
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = std::io::Read::read(&mut f, &mut buf).map_err(io_err(path))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_phases_carry_the_time_since_the_build_began() {
        assert_eq!(
            build_step("compression (qcow2, zstd)", Duration::from_secs(125)),
            "Building the machine image: compression (qcow2, zstd) [2:05]"
        );
    }

    #[test]
    fn specs() {
        assert_eq!(
            ImageSpec::parse("", "").expect("default"),
            ImageSpec::Builtin(Variant::Docker)
        );
        assert_eq!(
            ImageSpec::parse(IMAGE_NAME_NODOCKER, "").expect("nodocker"),
            ImageSpec::Builtin(Variant::NoDocker)
        );
        let h = "A".repeat(64);
        assert_eq!(
            ImageSpec::parse(&format!("http://127.0.0.1:8000/d.qcow2#sha256={h}"), "")
                .expect("url"),
            ImageSpec::Url {
                url: "http://127.0.0.1:8000/d.qcow2".into(),
                sha256: "a".repeat(64)
            }
        );
        assert!(matches!(
            ImageSpec::parse("https://x/d.img", &format!("sha256:{h}")).expect("flag"),
            ImageSpec::Url { .. }
        ));
        let e = ImageSpec::parse("https://x/d.img", "").expect_err("no checksum");
        assert!(e.to_string().contains("checksum"), "{e}");
        assert!(ImageSpec::parse("https://x/d.img#sha256=abc", "").is_err());
        assert!(ImageSpec::parse("ftp://x/d.img", "").is_err());
        assert!(ImageSpec::parse("/nonexistent/disk.qcow2", "").is_err());
    }

    #[test]
    fn urls_and_versions() {
        let u = reqwest::Url::parse("http://127.0.0.1:8080/a/b.qcow2").expect("url");
        assert_eq!(
            (
                u.host_str(),
                u.port_or_known_default(),
                u.path(),
                u.scheme()
            ),
            (Some("127.0.0.1"), Some(8080), "/a/b.qcow2", "http")
        );
        let u = reqwest::Url::parse("https://[::1]/x").expect("url");
        assert_eq!(
            (u.host_str(), u.port_or_known_default(), u.scheme()),
            (Some("[::1]"), Some(443), "https")
        );
        assert!(reqwest::Url::parse("http://").is_err());
        assert_eq!(
            version_cmp("6.1.0-10-amd64", "6.1.0-9-amd64"),
            std::cmp::Ordering::Greater
        );
    }

    #[test]
    fn defences_stay_on_in_the_guest_kernel() {
        assert!(!DEFAULT_CMDLINE.contains("mitigations"));
        assert_eq!(
            hardened_cmdline("root=/dev/vda rw mitigations=off loglevel=4"),
            "root=/dev/vda rw loglevel=4"
        );
    }

    #[tokio::test]
    async fn images_naming_other_files_are_refused() {
        if find_program("qemu-img").is_none() {
            assert!(
                std::env::var("CI").is_err(),
                "qemu-img is required under CI"
            );
            eprintln!("SKIPPED: qemu-img missing (scripts/qemu-setup.sh)");
            return;
        }
        let d = tempfile::tempdir().expect("tmp");
        let secret = d.path().join("id_rsa");
        std::fs::write(&secret, vec![b'k'; 4096]).expect("secret");
        let evil = d.path().join("evil.qcow2");
        let ok = std::process::Command::new("qemu-img")
            .args(["create", "-q", "-f", "qcow2", "-F", "raw", "-b"])
            .arg(&secret)
            .arg(&evil)
            .status()
            .expect("qemu-img");
        assert!(ok.success());
        let spec = ImageSpec::File(evil.clone());
        let e = resolve(&d.path().join("cache"), &spec, &|_: &str| {})
            .await
            .expect_err("backing file");
        assert!(e.to_string().contains("backing file"), "{e}");
        // a self-contained image passes the check
        let plain = d.path().join("plain.qcow2");
        let ok = std::process::Command::new("qemu-img")
            .args(["create", "-q", "-f", "qcow2"])
            .arg(&plain)
            .arg("1M")
            .status()
            .expect("qemu-img");
        assert!(ok.success());
        check_no_external_files(&plain, "qcow2")
            .await
            .expect("plain image");
    }
}
