//! AWS credentials, found the way AWS tools find them:
//!
//! 1. the driver's flags (`--amazonec2-access-key`, `--amazonec2-secret-key`,
//!    `--amazonec2-session-token`; saved in config.json like the original does);
//! 2. `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`;
//! 3. the shared credentials file (`AWS_SHARED_CREDENTIALS_FILE`, default
//!    `~/.aws/credentials`, section `[PROFILE]`) then the config file
//!    (`AWS_CONFIG_FILE`, default `~/.aws/config`, section `[profile PROFILE]`
//!    or `[default]`), for the profile `AWS_PROFILE` (default `default`);
//! 4. an instance role, through the instance metadata service with an IMDSv2
//!    session token (`AWS_EC2_METADATA_SERVICE_ENDPOINT`, default
//!    `http://169.254.169.254`; `AWS_EC2_METADATA_DISABLED=true` skips it).
//!
//! Secrets never appear in `Debug` output or in errors.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// The default instance metadata endpoint.
pub const IMDS_ENDPOINT: &str = "http://169.254.169.254";
/// The longest one metadata request may take.
pub const IMDS_TIMEOUT: Duration = Duration::from_secs(2);

/// A set of credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub access_key: String,
    pub secret_key: String,
    pub session_token: Option<String>,
    /// Where they came from (`flags`, `environment`, a file and profile,
    /// `instance role NAME`), for messages.
    pub source: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key", &self.access_key)
            .field("secret_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .field("source", &self.source)
            .finish()
    }
}

/// No credentials were found.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialsError {
    #[error("amazonec2 driver requires AWS credentials configured with the --amazonec2-access-key and --amazonec2-secret-key options, environment variables, ~/.aws/credentials, or an instance role (tried: {tried})")]
    Missing { tried: String },
}

/// Look credentials up in order; `env` is the environment to read (tests
/// pass their own). `flag_*` are the driver's saved or given values.
pub async fn resolve(
    flag_access: &str,
    flag_secret: &str,
    flag_token: &str,
    env: &(dyn Fn(&str) -> Option<String> + Sync),
) -> Result<Credentials, CredentialsError> {
    let nonempty = |s: &str| (!s.is_empty()).then(|| s.to_string());
    let mut tried = Vec::new();
    if !flag_access.is_empty() && !flag_secret.is_empty() {
        return Ok(Credentials {
            access_key: flag_access.to_string(),
            secret_key: flag_secret.to_string(),
            session_token: nonempty(flag_token),
            source: "flags".into(),
        });
    }
    tried.push("flags".to_string());
    let var = |k: &str| env(k).filter(|v| !v.trim().is_empty());
    if let (Some(a), Some(s)) = (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) {
        return Ok(Credentials {
            access_key: a,
            secret_key: s,
            session_token: var("AWS_SESSION_TOKEN"),
            source: "environment".into(),
        });
    }
    tried.push("environment".to_string());
    let profile = var("AWS_PROFILE")
        .or_else(|| var("AWS_DEFAULT_PROFILE"))
        .unwrap_or_else(|| "default".into());
    let home = var("HOME").map(PathBuf::from);
    let file = |var_name: &str, leaf: &str| {
        var(var_name)
            .map(PathBuf::from)
            .or_else(|| home.as_ref().map(|h| h.join(".aws").join(leaf)))
    };
    if let Some(path) = file("AWS_SHARED_CREDENTIALS_FILE", "credentials") {
        if let Some(c) = from_ini(&path, &profile, false) {
            return Ok(c);
        }
        tried.push(format!("{} [{profile}]", path.display()));
    }
    if let Some(path) = file("AWS_CONFIG_FILE", "config") {
        if let Some(c) = from_ini(&path, &profile, true) {
            return Ok(c);
        }
        tried.push(format!("{} [profile {profile}]", path.display()));
    }
    let disabled =
        var("AWS_EC2_METADATA_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
    if !disabled {
        let endpoint =
            var("AWS_EC2_METADATA_SERVICE_ENDPOINT").unwrap_or_else(|| IMDS_ENDPOINT.to_string());
        match from_imds(endpoint.trim_end_matches('/')).await {
            Ok(c) => return Ok(c),
            Err(why) => tried.push(format!("instance role at {endpoint} ({why})")),
        }
    }
    Err(CredentialsError::Missing {
        tried: tried.join(", "),
    })
}

/// The keys of `[section]` in an INI file (AWS's flavour: `key = value`,
/// `#` and `;` comments).
fn ini_section(text: &str, section: &str) -> Option<Vec<(String, String)>> {
    let mut inside = false;
    let mut found = None::<Vec<(String, String)>>;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            inside = name.trim() == section;
            if inside && found.is_none() {
                found = Some(Vec::new());
            }
            continue;
        }
        if inside {
            if let (Some(keys), Some((k, v))) = (found.as_mut(), line.split_once('=')) {
                keys.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
    }
    found
}

fn from_ini(path: &std::path::Path, profile: &str, config_file: bool) -> Option<Credentials> {
    let text = std::fs::read_to_string(path).ok()?;
    let section = if config_file && profile != "default" {
        format!("profile {profile}")
    } else {
        profile.to_string()
    };
    let keys = ini_section(&text, &section)?;
    let get = |k: &str| {
        keys.iter()
            .rev()
            .find(|(name, _)| name == k)
            .map(|(_, v)| v.clone())
            .filter(|v| !v.is_empty())
    };
    Some(Credentials {
        access_key: get("aws_access_key_id")?,
        secret_key: get("aws_secret_access_key")?,
        session_token: get("aws_session_token"),
        source: format!("{} [{section}]", path.display()),
    })
}

/// IMDSv2: a session token (PUT), the role name, then the role's credentials.
async fn from_imds(endpoint: &str) -> Result<Credentials, String> {
    let http = super::api::http_client(IMDS_TIMEOUT).map_err(|e| e.to_string())?;
    let fail = |what: &str, e: reqwest::Error| format!("{what}: {e}");
    let token = http
        .put(format!("{endpoint}/latest/api/token"))
        .header("X-aws-ec2-metadata-token-ttl-seconds", "21600")
        .send()
        .await
        .map_err(|e| fail("token", e))?;
    if !token.status().is_success() {
        return Err(format!("token: HTTP {}", token.status().as_u16()));
    }
    let token = token.text().await.map_err(|e| fail("token", e))?;
    let get = |path: String| {
        let http = http.clone();
        let token = token.clone();
        async move {
            let r = http
                .get(path)
                .header("X-aws-ec2-metadata-token", token.trim())
                .send()
                .await
                .map_err(|e| fail("metadata", e))?;
            if !r.status().is_success() {
                return Err(format!("metadata: HTTP {}", r.status().as_u16()));
            }
            r.text().await.map_err(|e| fail("metadata", e))
        }
    };
    let base = format!("{endpoint}/latest/meta-data/iam/security-credentials/");
    let roles = get(base.clone()).await?;
    let role = roles
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .ok_or("no instance role")?
        .to_string();
    if role.contains('/') || role.contains("..") {
        return Err("unusable role name".into());
    }
    let body = get(format!("{base}{role}")).await?;
    let v: serde_json::Value =
        serde_json::from_str(&body).map_err(|_| "the role's credentials are not JSON")?;
    let field = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_string);
    Ok(Credentials {
        access_key: field("AccessKeyId").ok_or("no AccessKeyId")?,
        secret_key: field("SecretAccessKey").ok_or("no SecretAccessKey")?,
        session_token: field("Token"),
        source: format!("instance role {role}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + Sync {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    #[tokio::test]
    async fn flags_then_env_then_files() {
        let d = tempfile::tempdir().expect("tmp");
        let creds = d.path().join("credentials");
        std::fs::write(
            &creds,
            "[default]\naws_access_key_id = AKDEF\naws_secret_access_key = sdef\n\n[ci]\n# comment\naws_access_key_id=AKCI\naws_secret_access_key=sci\naws_session_token=tci\n",
        )
        .expect("write");
        let config = d.path().join("config");
        std::fs::write(
            &config,
            "[profile other]\naws_access_key_id = AKCFG\naws_secret_access_key = scfg\n",
        )
        .expect("write");
        let base = [
            ("AWS_SHARED_CREDENTIALS_FILE", creds.to_str().expect("utf8")),
            ("AWS_CONFIG_FILE", config.to_str().expect("utf8")),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ];
        let c = resolve("AKF", "sf", "", &env_of(&base))
            .await
            .expect("flags");
        assert_eq!((c.access_key.as_str(), c.source.as_str()), ("AKF", "flags"));
        let mut with_env = base.to_vec();
        with_env.extend([
            ("AWS_ACCESS_KEY_ID", "AKE"),
            ("AWS_SECRET_ACCESS_KEY", "se"),
        ]);
        let c = resolve("", "", "", &env_of(&with_env)).await.expect("env");
        assert_eq!(c.access_key, "AKE");
        let c = resolve("", "", "", &env_of(&base)).await.expect("default");
        assert_eq!(c.access_key, "AKDEF");
        let mut ci = base.to_vec();
        ci.push(("AWS_PROFILE", "ci"));
        let c = resolve("", "", "", &env_of(&ci)).await.expect("profile");
        assert_eq!(
            (c.access_key.as_str(), c.session_token.as_deref()),
            ("AKCI", Some("tci"))
        );
        let mut other = base.to_vec();
        other.push(("AWS_PROFILE", "other"));
        let c = resolve("", "", "", &env_of(&other)).await.expect("config");
        assert_eq!(c.access_key, "AKCFG");
        let mut none = base.to_vec();
        none.push(("AWS_PROFILE", "nope"));
        let e = resolve("", "", "", &env_of(&none)).await.expect_err("none");
        assert!(e.to_string().contains("nope"), "{e}");
        assert!(!format!("{c:?}").contains("scfg"));
    }
}
