//! The SSH client: one connection per operation, host keys pinned, commands
//! multiplexed as channels, files over SFTP.

use super::{CommandRunner, Output, SshError};
use crate::driver::SshTarget;
use async_trait::async_trait;
use russh::client::{self, Handle};
use russh::keys::{HashAlg, PrivateKey, PrivateKeyWithHashAlg, PublicKey};
use russh::ChannelMsg;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::OnceCell;

/// Deadlines and retries of a connection.
#[derive(Debug, Clone)]
pub struct SshConfig {
    /// Deadline of one connection attempt (TCP, key exchange and authentication).
    pub connect_timeout: Duration,
    /// How many attempts before giving up (at least 1).
    pub attempts: u32,
    /// Wait after the first failed attempt; doubles each time up to `max_backoff`.
    pub backoff: Duration,
    /// Upper bound of the wait between attempts.
    pub max_backoff: Duration,
    /// Deadline of one command or transfer (`None`: none).
    pub command_timeout: Option<Duration>,
}

impl Default for SshConfig {
    fn default() -> Self {
        SshConfig {
            connect_timeout: Duration::from_secs(15),
            attempts: 4,
            backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(5),
            command_timeout: Some(Duration::from_secs(1800)),
        }
    }
}

/// What to do with the server's host key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostKeyCheck {
    /// Accept only this key (OpenSSH public key text, `ssh-ed25519 AAAA...`).
    Pinned(String),
    /// Accept the key presented now and report it (first contact at create time).
    TrustOnFirstUse,
}

/// The SHA-256 fingerprint of an OpenSSH public key text, as `ssh-keygen -l` prints it.
pub fn fingerprint(openssh_key: &str) -> String {
    PublicKey::from_openssh(openssh_key.trim())
        .map(|k| k.fingerprint(HashAlg::Sha256).to_string())
        .unwrap_or_else(|_| openssh_key.trim().to_string())
}

#[derive(Debug, Default)]
struct Seen {
    presented: Option<String>,
    mismatch: bool,
}

struct Checker {
    expected: Option<PublicKey>,
    seen: Arc<Mutex<Seen>>,
}

impl client::Handler for Checker {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        key: &russh::keys::PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let russh::keys::PublicKeyOrCertificate::PublicKey { key, .. } = key else {
            return Ok(false);
        };
        let mut seen = self.seen.lock().map_err(|_| russh::Error::Inconsistent)?;
        seen.presented = key.to_openssh().ok();
        match &self.expected {
            None => Ok(true),
            Some(want) if want.key_data() == key.key_data() => Ok(true),
            Some(_) => {
                seen.mismatch = true;
                Ok(false)
            }
        }
    }
}

/// An authenticated SSH connection to one machine.
pub struct SshClient {
    handle: Handle<Checker>,
    host: String,
    user: String,
    host_key: String,
    cfg: SshConfig,
    sftp: OnceCell<russh_sftp::client::SftpSession>,
}

impl std::fmt::Debug for SshClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshClient")
            .field("host", &self.host)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// Load a private key file (OpenSSH or PEM; ed25519, RSA, ECDSA).
pub fn load_key(path: &Path) -> Result<PrivateKey, SshError> {
    russh::keys::load_secret_key(path, None).map_err(|e| SshError::Key {
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

/// Make a new ed25519 key pair for a machine and write it as `path` (0600) and
/// `path.pub`. docker-machine names the files `id_rsa`; the names are kept.
pub fn generate_key(path: &Path) -> Result<String, SshError> {
    let io = |p: &Path, source| SshError::Io {
        path: p.display().to_string(),
        source,
    };
    let seed: [u8; 32] = rand::random();
    let pair = russh::keys::ssh_key::private::Ed25519Keypair::from_seed(&seed);
    let key = PrivateKey::from(pair);
    let bad = |e: russh::keys::ssh_key::Error| SshError::Key {
        path: path.display().to_string(),
        reason: e.to_string(),
    };
    let private = key
        .to_openssh(russh::keys::ssh_key::LineEnding::LF)
        .map_err(bad)?;
    let public = key.public_key().to_openssh().map_err(bad)?;
    crate::fsutil::write_atomic(path, private.as_bytes(), 0o600).map_err(|e| io(path, e))?;
    // OpenSSH's convention: the public key is `<private key path>.pub`.
    let mut pub_path = path.as_os_str().to_owned();
    pub_path.push(".pub");
    let pub_path = std::path::PathBuf::from(pub_path);
    crate::fsutil::write_atomic(&pub_path, format!("{public}\n").as_bytes(), 0o644)
        .map_err(|e| io(&pub_path, e))?;
    Ok(public)
}

impl SshClient {
    /// Connect and authenticate, retrying connection failures with backoff.
    /// Host key mismatches and refused authentication are not retried.
    pub async fn connect(
        target: &SshTarget,
        check: &HostKeyCheck,
        cfg: &SshConfig,
    ) -> Result<Self, SshError> {
        let expected =
            match check {
                HostKeyCheck::Pinned(k) => Some(PublicKey::from_openssh(k.trim()).map_err(
                    |e| SshError::Key {
                        path: format!("pinned host key of {}", target.host),
                        reason: e.to_string(),
                    },
                )?),
                HostKeyCheck::TrustOnFirstUse => None,
            };
        let key = match &target.key_path {
            Some(p) => Some(Arc::new(load_key(p)?)),
            None => None,
        };
        let attempts = cfg.attempts.max(1);
        let mut wait = cfg.backoff;
        let mut last = String::new();
        for attempt in 1..=attempts {
            match tokio::time::timeout(
                cfg.connect_timeout,
                Self::attempt(target, expected.clone(), key.clone(), cfg),
            )
            .await
            {
                Ok(Ok(c)) => {
                    tracing::debug!(host = %target.host, port = target.port, attempt, "ssh connected");
                    return Ok(c);
                }
                Ok(Err(Attempt::Fatal(e))) => return Err(e),
                Ok(Err(Attempt::Retry(reason))) => last = reason,
                Err(_) => last = format!("no answer within {} s", cfg.connect_timeout.as_secs()),
            }
            tracing::debug!(host = %target.host, attempt, reason = %last, "SSH connection attempt failed");
            if attempt < attempts {
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(cfg.max_backoff);
            }
        }
        Err(SshError::Connect {
            host: target.host.clone(),
            port: target.port,
            attempts,
            reason: last,
        })
    }

    async fn attempt(
        target: &SshTarget,
        expected: Option<PublicKey>,
        key: Option<Arc<PrivateKey>>,
        cfg: &SshConfig,
    ) -> Result<Self, Attempt> {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let handler = Checker {
            expected: expected.clone(),
            seen: seen.clone(),
        };
        let config = Arc::new(client::Config {
            inactivity_timeout: None,
            keepalive_interval: Some(Duration::from_secs(15)),
            keepalive_max: 4,
            nodelay: true,
            ..client::Config::default()
        });
        let addr = (target.host.as_str(), target.port);
        let connected = client::connect(config, addr, handler).await;
        let mut handle = match connected {
            Ok(h) => h,
            Err(e) => {
                let s = seen
                    .lock()
                    .map(|s| (s.mismatch, s.presented.clone()))
                    .unwrap_or((false, None));
                if let (true, Some(presented)) = s {
                    let want = expected
                        .as_ref()
                        .map(|k| k.fingerprint(HashAlg::Sha256).to_string())
                        .unwrap_or_default();
                    return Err(Attempt::Fatal(SshError::HostKeyMismatch {
                        host: target.host.clone(),
                        expected: want,
                        presented: fingerprint(&presented),
                    }));
                }
                return Err(Attempt::Retry(e.to_string()));
            }
        };
        let host_key = seen
            .lock()
            .ok()
            .and_then(|s| s.presented.clone())
            .unwrap_or_default();
        let auth_err = |reason: String| {
            Attempt::Fatal(SshError::Auth {
                user: target.user.clone(),
                host: target.host.clone(),
                reason,
            })
        };
        let ok = match key {
            Some(k) => {
                let hash = if k.algorithm().is_rsa() {
                    handle
                        .best_supported_rsa_hash()
                        .await
                        .map_err(|e| Attempt::Retry(e.to_string()))?
                        .flatten()
                        .or(Some(HashAlg::Sha256))
                } else {
                    None
                };
                handle
                    .authenticate_publickey(
                        target.user.clone(),
                        PrivateKeyWithHashAlg::new(k, hash),
                    )
                    .await
                    .map_err(|e| Attempt::Retry(e.to_string()))?
                    .success()
            }
            None => agent_auth(&mut handle, &target.user)
                .await
                .map_err(auth_err)?,
        };
        if !ok {
            return Err(auth_err("the server refused the key".into()));
        }
        Ok(SshClient {
            handle,
            host: target.host.clone(),
            user: target.user.clone(),
            host_key,
            cfg: cfg.clone(),
            sftp: OnceCell::new(),
        })
    }

    /// The server's host key (OpenSSH public key text), to pin on first contact.
    pub fn host_key(&self) -> &str {
        &self.host_key
    }

    /// The host this client is connected to.
    pub fn host(&self) -> &str {
        &self.host
    }

    async fn with_deadline<T>(
        &self,
        what: &str,
        f: impl std::future::Future<Output = Result<T, SshError>>,
    ) -> Result<T, SshError> {
        match self.cfg.command_timeout {
            None => f.await,
            Some(d) => tokio::time::timeout(d, f)
                .await
                .map_err(|_| SshError::Timeout {
                    host: self.host.clone(),
                    what: what.to_string(),
                    seconds: d.as_secs(),
                })?,
        }
    }

    async fn exec(&self, command: &str, stdin: Option<&[u8]>) -> Result<Output, SshError> {
        let err = |reason: String| SshError::Session {
            host: self.host.clone(),
            command: command.to_string(),
            reason,
        };
        let mut ch = self
            .handle
            .channel_open_session()
            .await
            .map_err(|e| err(e.to_string()))?;
        ch.exec(true, command)
            .await
            .map_err(|e| err(e.to_string()))?;
        if let Some(input) = stdin {
            ch.data(input).await.map_err(|e| err(e.to_string()))?;
        }
        ch.eof().await.map_err(|e| err(e.to_string()))?;
        let mut out = Output::default();
        let mut status = None;
        let mut dropped = (0usize, 0usize);
        // The exit status may arrive before the last data: read until the channel
        // closes. What a command prints beyond MAX_CAPTURE is read and dropped.
        while let Some(msg) = ch.wait().await {
            match msg {
                ChannelMsg::Data { data } => dropped.0 += capture(&mut out.stdout, &data),
                ChannelMsg::ExtendedData { data, ext: 1 } => {
                    dropped.1 += capture(&mut out.stderr, &data)
                }
                ChannelMsg::ExitStatus { exit_status } => status = Some(exit_status),
                ChannelMsg::ExitSignal { signal_name, .. } => {
                    status = Some(128);
                    out.stderr.extend_from_slice(
                        format!("killed by signal {signal_name:?}\n").as_bytes(),
                    );
                }
                ChannelMsg::Close => break,
                _ => {}
            }
        }
        out.exit_status =
            status.ok_or_else(|| err("the channel closed without an exit status".into()))?;
        if dropped != (0, 0) {
            tracing::warn!(host = %self.host, command, stdout_dropped = dropped.0,
                stderr_dropped = dropped.1, "command output over the capture limit was dropped");
            out.stderr.extend_from_slice(
                format!(
                    "\n[output over {} MiB dropped: {} bytes of stdout, {} of stderr]\n",
                    MAX_CAPTURE >> 20,
                    dropped.0,
                    dropped.1
                )
                .as_bytes(),
            );
        }
        Ok(out)
    }

    /// Run `command` with `input` as its standard input.
    pub async fn run_with_input(&self, command: &str, input: &[u8]) -> Result<Output, SshError> {
        self.with_deadline(command, self.exec(command, Some(input)))
            .await
    }

    async fn sftp(&self) -> Result<&russh_sftp::client::SftpSession, SshError> {
        self.sftp
            .get_or_try_init(|| async {
                let err = |reason: String| SshError::Transfer {
                    host: self.host.clone(),
                    path: "(sftp subsystem)".into(),
                    reason,
                };
                let ch = self
                    .handle
                    .channel_open_session()
                    .await
                    .map_err(|e| err(e.to_string()))?;
                ch.request_subsystem(true, "sftp")
                    .await
                    .map_err(|e| err(e.to_string()))?;
                russh_sftp::client::SftpSession::new(ch.into_stream())
                    .await
                    .map_err(|e| err(e.to_string()))
            })
            .await
    }

    /// Read a remote file of at most [`MAX_READ`] bytes into memory (larger
    /// files: [`SshClient::download`]).
    pub async fn read_file(&self, path: &str) -> Result<Vec<u8>, SshError> {
        let err = |reason: String| SshError::Transfer {
            host: self.host.clone(),
            path: path.to_string(),
            reason,
        };
        self.with_deadline(path, async {
            let sftp = self.sftp().await?;
            let f = sftp.open(path).await.map_err(|e| err(e.to_string()))?;
            let mut buf = Vec::new();
            f.take(MAX_READ + 1)
                .read_to_end(&mut buf)
                .await
                .map_err(|e| err(e.to_string()))?;
            if buf.len() as u64 > MAX_READ {
                return Err(err(format!(
                    "larger than {} MiB; copy it to a file instead",
                    MAX_READ >> 20
                )));
            }
            Ok(buf)
        })
        .await
    }

    /// Copy a remote file to `local`, streaming (any size), through a
    /// temporary file beside `local` that is renamed over it at the end. The
    /// copy gets the remote file's permission bits (0600 when the server does
    /// not say). Returns the mode given.
    pub async fn download(&self, path: &str, local: &Path) -> Result<u32, SshError> {
        use std::os::unix::fs::PermissionsExt;
        let err = |reason: String| SshError::Transfer {
            host: self.host.clone(),
            path: path.to_string(),
            reason,
        };
        let io = |e: std::io::Error| SshError::Io {
            path: local.display().to_string(),
            source: e,
        };
        self.with_deadline(path, async {
            let sftp = self.sftp().await?;
            let mut f = sftp.open(path).await.map_err(|e| err(e.to_string()))?;
            let mode = f
                .metadata()
                .await
                .ok()
                .and_then(|m| m.permissions)
                .map_or(0o600, |p| p & 0o777);
            let dir = match local.parent() {
                Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
                _ => std::path::PathBuf::from("."),
            };
            let tmp = tempfile::Builder::new()
                .prefix(".machine-copy")
                .permissions(std::fs::Permissions::from_mode(0o600))
                .tempfile_in(&dir)
                .map_err(io)?;
            let mut out = tokio::fs::File::from_std(tmp.reopen().map_err(io)?);
            tokio::io::copy(&mut f, &mut out)
                .await
                .map_err(|e| err(e.to_string()))?;
            out.flush().await.map_err(io)?;
            drop(out);
            std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(mode))
                .map_err(io)?;
            tmp.persist(local).map_err(|e| io(e.error))?;
            Ok(mode)
        })
        .await
    }

    /// Rename `tmp` over `path` atomically (rename(2) on the machine).
    async fn replace(&self, tmp: &str, path: &str) -> Result<(), String> {
        let cmd = format!(
            "mv -f -- {} {}",
            super::shell_quote(tmp),
            super::shell_quote(path)
        );
        let out = self.exec(&cmd, None).await.map_err(|e| e.to_string())?;
        if out.success() {
            Ok(())
        } else {
            Err(format!(
                "rename into place failed: {}",
                out.stderr_text().trim()
            ))
        }
    }

    /// Close the connection politely.
    pub async fn close(self) {
        let _ = self
            .handle
            .disconnect(russh::Disconnect::ByApplication, "", "en")
            .await;
    }
}

/// What a command may print to each of stdout and stderr before the rest is
/// dropped (commands run during provisioning print kilobytes).
pub const MAX_CAPTURE: usize = 32 << 20;
/// The largest file [`SshClient::read_file`] reads into memory.
pub const MAX_READ: u64 = 64 << 20;

/// Append `data` to `buf` up to [`MAX_CAPTURE`]; returns how much was dropped.
fn capture(buf: &mut Vec<u8>, data: &[u8]) -> usize {
    let room = MAX_CAPTURE.saturating_sub(buf.len());
    let take = room.min(data.len());
    buf.extend_from_slice(&data[..take]);
    data.len() - take
}

/// `<path>.machine-<random>`: a temporary name beside `path`.
fn temp_sibling(path: &str) -> String {
    use rand::Rng;
    let n: u64 = rand::thread_rng().gen();
    format!("{path}.machine-{n:016x}")
}

enum Attempt {
    Retry(String),
    Fatal(SshError),
}

async fn agent_auth(handle: &mut Handle<Checker>, user: &str) -> Result<bool, String> {
    let mut agent = russh::keys::agent::client::AgentClient::connect_env()
        .await
        .map_err(|e| format!("no key file given and no SSH agent: {e}"))?;
    let ids = agent
        .request_identities()
        .await
        .map_err(|e| e.to_string())?;
    for id in ids {
        let key = match id {
            russh::keys::agent::AgentIdentity::PublicKey { key, .. } => key,
            _ => continue,
        };
        let hash = if key.algorithm().is_rsa() {
            Some(HashAlg::Sha256)
        } else {
            None
        };
        match handle
            .authenticate_publickey_with(user, key, hash, &mut agent)
            .await
        {
            Ok(r) if r.success() => return Ok(true),
            _ => continue,
        }
    }
    Ok(false)
}

#[async_trait]
impl CommandRunner for SshClient {
    async fn run(&self, command: &str) -> Result<Output, SshError> {
        tracing::debug!(host = %self.host, command, "ssh run");
        let out = self
            .with_deadline(command, self.exec(command, None))
            .await?;
        if out.exit_status != 0 && out.stderr_text().contains("sudo: a password is required") {
            return Err(SshError::SudoPassword {
                user: self.user.clone(),
                host: self.host.clone(),
            });
        }
        Ok(out)
    }

    async fn write_file(&self, path: &str, contents: &[u8], mode: u32) -> Result<(), SshError> {
        tracing::debug!(host = %self.host, path, bytes = contents.len(), "ssh write file");
        let err = |reason: String| SshError::Transfer {
            host: self.host.clone(),
            path: path.to_string(),
            reason,
        };
        self.with_deadline(path, async {
            let sftp = self.sftp().await?;
            // A sibling temp file with an unpredictable name, created exclusively
            // (never through a planted symlink) with the final mode, then
            // renamed over the target in one step.
            let tmp = temp_sibling(path);
            let attrs = russh_sftp::protocol::FileAttributes {
                permissions: Some(mode),
                ..russh_sftp::protocol::FileAttributes::empty()
            };
            use russh_sftp::protocol::OpenFlags;
            let mut f = sftp
                .open_with_flags_and_attributes(
                    &tmp,
                    OpenFlags::CREATE | OpenFlags::EXCLUDE | OpenFlags::WRITE,
                    attrs.clone(),
                )
                .await
                .map_err(|e| err(e.to_string()))?;
            let written = async {
                f.write_all(contents).await?;
                f.flush().await?;
                Ok::<(), std::io::Error>(())
            }
            .await;
            // the mode on the open handle (the server's umask may have narrowed it)
            let chmod = f
                .set_metadata(russh_sftp::client::fs::Metadata::from(attrs))
                .await;
            let _ = f.shutdown().await;
            drop(f);
            let renamed = match (written, chmod) {
                (Ok(()), Ok(())) => self.replace(&tmp, path).await,
                (Err(e), _) => Err(e.to_string()),
                (_, Err(e)) => Err(e.to_string()),
            };
            if let Err(e) = renamed {
                let _ = sftp.remove_file(&tmp).await;
                return Err(err(e));
            }
            Ok(())
        })
        .await
    }
}
