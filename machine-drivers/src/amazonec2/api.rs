//! A small client for the EC2 query API (`Action=...&Version=2016-11-15`):
//! requests signed with Signature V4 (`aws-sigv4`), sent by reqwest (rustls
//! with aws-lc-rs, or plain http for `--amazonec2-insecure-transport`),
//! answers parsed with roxmltree into an owned tree ([`Xml`]).
//!
//! Every request is bounded by [`REQUEST_TIMEOUT`]; throttling
//! (`RequestLimitExceeded`, `Throttling`, ...), 5xx answers and transport
//! failures are retried with exponential backoff, `retries` times at most.

use super::creds::Credentials;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// The API version every request names.
pub const API_VERSION: &str = "2016-11-15";
/// The longest one HTTP request may take, connecting included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest a connection attempt may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The first pause before a retry; doubled each time, at most [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_millis(200);
/// The longest pause between two attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(20);
/// The longest answer read (DescribeInstances of a big account is a few MiB).
const MAX_ANSWER: usize = 64 << 20;
/// The longest an error answer's body is kept (for the message).
const MAX_ERROR_BODY: usize = 4096;

/// What can go wrong talking to EC2.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Ec2Error {
    /// EC2 answered with an error code.
    #[error("EC2 {action}: {code}: {message}")]
    Api {
        action: String,
        code: String,
        message: String,
        status: u16,
    },
    /// The request could not be sent or its answer not read.
    #[error("EC2 {action}: request to {endpoint} failed")]
    Http {
        action: String,
        endpoint: String,
        #[source]
        source: reqwest::Error,
    },
    /// An answer that is not the XML it should be.
    #[error("EC2 {action}: unreadable answer (HTTP {status}): {reason}")]
    Answer {
        action: String,
        status: u16,
        reason: String,
    },
    /// The request could not be signed.
    #[error("EC2 {action}: cannot sign the request: {reason}")]
    Sign { action: String, reason: String },
    /// The endpoint or client settings are unusable.
    #[error("EC2 client: {reason}")]
    Config { reason: String },
}

impl Ec2Error {
    /// The EC2 error code, for API errors.
    pub fn code(&self) -> Option<&str> {
        match self {
            Ec2Error::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    /// Whether the error code says the thing does not exist (`*.NotFound`,
    /// `*.NotFoundException`).
    pub fn is_not_found(&self) -> bool {
        self.code()
            .is_some_and(|c| c.ends_with(".NotFound") || c.ends_with(".NotFoundException"))
    }

    fn retryable(&self) -> bool {
        match self {
            Ec2Error::Api { code, status, .. } => {
                matches!(
                    code.as_str(),
                    "RequestLimitExceeded"
                        | "Throttling"
                        | "ThrottlingException"
                        | "RequestThrottled"
                        | "RequestThrottledException"
                        | "TooManyRequestsException"
                        | "InternalError"
                        | "InternalFailure"
                        | "ServiceUnavailable"
                        | "Unavailable"
                ) || *status >= 500
            }
            Ec2Error::Http { source, .. } => {
                source.is_timeout() || source.is_connect() || source.is_request()
            }
            Ec2Error::Answer { status, .. } => *status >= 500,
            _ => false,
        }
    }
}

/// An element of an answer, owned: name (without namespace), text, children.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Xml {
    pub name: String,
    pub text: String,
    pub children: Vec<Xml>,
}

impl Xml {
    /// Parse a document.
    pub fn parse(text: &str) -> Result<Xml, String> {
        let doc = roxmltree::Document::parse(text).map_err(|e| e.to_string())?;
        Ok(Self::from_node(doc.root_element()))
    }

    fn from_node(n: roxmltree::Node<'_, '_>) -> Xml {
        let mut x = Xml {
            name: n.tag_name().name().to_string(),
            ..Xml::default()
        };
        for c in n.children() {
            if c.is_element() {
                x.children.push(Self::from_node(c));
            } else if c.is_text() {
                x.text.push_str(c.text().unwrap_or_default());
            }
        }
        x.text = x.text.trim().to_string();
        x
    }

    /// The first child named `name`.
    pub fn child(&self, name: &str) -> Option<&Xml> {
        self.children.iter().find(|c| c.name == name)
    }

    /// The element at `path` (child names separated by `/`).
    pub fn at(&self, path: &str) -> Option<&Xml> {
        path.split('/').try_fold(self, |x, name| x.child(name))
    }

    /// The text at `path`, empty when absent.
    pub fn text_at(&self, path: &str) -> String {
        self.at(path).map(|x| x.text.clone()).unwrap_or_default()
    }

    /// The `item` children of the element at `path`.
    pub fn items(&self, path: &str) -> Vec<&Xml> {
        self.at(path)
            .map(|x| x.children.iter().filter(|c| c.name == "item").collect())
            .unwrap_or_default()
    }
}

/// Parameters of one call, in the query API's `Name.N.Field` form.
#[derive(Debug, Clone, Default)]
pub struct Params(Vec<(String, String)>);

impl Params {
    /// No parameters.
    pub fn new() -> Self {
        Params::default()
    }
    /// Add `name=value`.
    pub fn add(&mut self, name: impl Into<String>, value: impl Into<String>) -> &mut Self {
        self.0.push((name.into(), value.into()));
        self
    }
    /// Add `prefix.1=v1`, `prefix.2=v2`, ...
    pub fn list(&mut self, prefix: &str, values: &[String]) -> &mut Self {
        for (i, v) in values.iter().enumerate() {
            self.add(format!("{prefix}.{}", i + 1), v.clone());
        }
        self
    }
    /// Add filter number `n` (from 1): `Filter.n.Name` and its values.
    pub fn filter(&mut self, n: usize, name: &str, values: &[String]) -> &mut Self {
        self.add(format!("Filter.{n}.Name"), name);
        self.list(&format!("Filter.{n}.Value"), values)
    }
    /// The parameters as they are sent (read by tests).
    pub fn pairs(&self) -> &[(String, String)] {
        &self.0
    }
}

/// `application/x-www-form-urlencoded` as the AWS SDKs write it: RFC 3986's
/// unreserved characters kept, space as `+`, every other byte as `%XX`.
/// (Any encoding signs correctly; this one also matches servers that
/// re-encode the parsed form before checking the signature.)
pub fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(b))
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Where requests go: the endpoint URL and the region they are signed for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub url: String,
    pub region: String,
}

impl Endpoint {
    /// The endpoint for `region`, or `custom` (a host name or a full URL; a
    /// host name gets `http://` when `insecure`, else `https://`).
    pub fn resolve(region: &str, custom: &str, insecure: bool) -> Result<Endpoint, Ec2Error> {
        let custom = custom.trim();
        let url = if custom.is_empty() {
            if insecure {
                return Err(Ec2Error::Config {
                    reason:
                        "using --amazonec2-insecure-transport also requires --amazonec2-endpoint"
                            .into(),
                });
            }
            format!("https://ec2.{region}.amazonaws.com/")
        } else if custom.starts_with("http://") || custom.starts_with("https://") {
            custom.to_string()
        } else if insecure {
            format!("http://{custom}")
        } else {
            format!("https://{custom}")
        };
        let parsed = reqwest::Url::parse(&url).map_err(|e| Ec2Error::Config {
            reason: format!("endpoint {url:?}: {e}"),
        })?;
        if parsed.scheme() == "http" && !insecure {
            return Err(Ec2Error::Config {
                reason: format!(
                    "endpoint {url:?} is plain http: pass --amazonec2-insecure-transport to use it"
                ),
            });
        }
        let mut url = parsed.to_string();
        if !url.ends_with('/') {
            url.push('/');
        }
        Ok(Endpoint {
            url,
            region: region.to_string(),
        })
    }
}

/// A signed-request client for one endpoint with one set of credentials.
#[derive(Clone)]
pub struct Ec2Client {
    http: reqwest::Client,
    endpoint: Endpoint,
    creds: Arc<Credentials>,
    retries: u32,
    backoff: Duration,
}

impl fmt::Debug for Ec2Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ec2Client")
            .field("endpoint", &self.endpoint)
            .field("retries", &self.retries)
            .finish_non_exhaustive()
    }
}

/// The shared HTTP client: rustls with aws-lc-rs and the system's roots.
pub fn http_client(timeout: Duration) -> Result<reqwest::Client, Ec2Error> {
    let config = |e: String| Ec2Error::Config { reason: e };
    let roots =
        crate::qemu::download::roots_from_pem_file(&crate::qemu::download::system_roots_file())
            .unwrap_or_else(|_| rustls::RootCertStore::empty());
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| config(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .user_agent(concat!("machine/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .connect_timeout(CONNECT_TIMEOUT.min(timeout))
        .timeout(timeout)
        .build()
        .map_err(|e| config(e.to_string()))
}

impl Ec2Client {
    /// A client; `retries` is how many times a failed call is tried again
    /// (the `--amazonec2-retries` value; negative means none).
    pub fn new(endpoint: Endpoint, creds: Credentials, retries: i64) -> Result<Self, Ec2Error> {
        Ok(Ec2Client {
            http: http_client(REQUEST_TIMEOUT)?,
            endpoint,
            creds: Arc::new(creds),
            retries: u32::try_from(retries.clamp(0, 20)).unwrap_or(0),
            backoff: FIRST_BACKOFF,
        })
    }

    /// The same client with another first backoff (tests).
    pub fn with_backoff(mut self, first: Duration) -> Self {
        self.backoff = first;
        self
    }

    /// The endpoint.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Call `action` with `params`; retried as the module says.
    pub async fn call(&self, action: &str, params: &Params) -> Result<Xml, Ec2Error> {
        let mut attempt = 0u32;
        loop {
            match self.call_once(action, params).await {
                Ok(x) => return Ok(x),
                Err(e) if e.retryable() && attempt < self.retries => {
                    let pause = self
                        .backoff
                        .saturating_mul(1u32 << attempt.min(16))
                        .min(MAX_BACKOFF);
                    // up to a quarter more, so that concurrent clients spread out
                    let jitter = pause.mul_f64(rand::random::<f64>() / 4.0);
                    tracing::debug!(action, attempt, error = %e, "EC2 call failed; retrying");
                    tokio::time::sleep(pause + jitter).await;
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn call_once(&self, action: &str, params: &Params) -> Result<Xml, Ec2Error> {
        let mut body = format!("Action={}&Version={API_VERSION}", form_encode(action));
        for (k, v) in params.pairs() {
            body.push('&');
            body.push_str(&form_encode(k));
            body.push('=');
            body.push_str(&form_encode(v));
        }
        let url = &self.endpoint.url;
        let host = reqwest::Url::parse(url)
            .ok()
            .and_then(|u| {
                u.host_str().map(|h| match u.port() {
                    Some(p) => format!("{h}:{p}"),
                    None => h.to_string(),
                })
            })
            .unwrap_or_default();
        let content_type = "application/x-www-form-urlencoded; charset=utf-8";
        let headers = [("content-type", content_type), ("host", host.as_str())];
        let signed = self.sign(action, url, &headers, body.as_bytes())?;
        let mut req = self
            .http
            .post(url)
            .header("content-type", content_type)
            .body(body);
        for (name, value) in &signed {
            req = req.header(name.as_str(), value.as_str());
        }
        let http = |source| Ec2Error::Http {
            action: action.to_string(),
            endpoint: url.clone(),
            source,
        };
        let mut resp = req.send().await.map_err(http)?;
        let status = resp.status().as_u16();
        let answer = |reason: String| Ec2Error::Answer {
            action: action.to_string(),
            status,
            reason,
        };
        let mut bytes = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(http)? {
            if bytes.len() + chunk.len() > MAX_ANSWER {
                return Err(answer(format!("longer than {MAX_ANSWER} bytes")));
            }
            bytes.extend_from_slice(&chunk);
        }
        let text = String::from_utf8_lossy(&bytes);
        let xml = Xml::parse(&text).map_err(|e| {
            let mut shown: String = text.chars().take(MAX_ERROR_BODY).collect();
            shown = machine_core::host::printable(&shown);
            answer(format!("{e}; body: {shown}"))
        })?;
        if (200..300).contains(&status) {
            return Ok(xml);
        }
        // <Response><Errors><Error><Code/><Message/></Error></Errors>...
        let err = xml
            .at("Errors/Error")
            .or_else(|| xml.at("Error"))
            .ok_or_else(|| answer("an error without <Error>".into()))?;
        Err(Ec2Error::Api {
            action: action.to_string(),
            code: machine_core::host::printable(&err.text_at("Code")),
            message: machine_core::host::printable(&err.text_at("Message")),
            status,
        })
    }

    fn sign(
        &self,
        action: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Vec<(String, String)>, Ec2Error> {
        use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
        let bad = |reason: String| Ec2Error::Sign {
            action: action.to_string(),
            reason,
        };
        let identity: aws_smithy_runtime_api::client::identity::Identity =
            aws_credential_types::Credentials::new(
                self.creds.access_key.clone(),
                self.creds.secret_key.clone(),
                self.creds.session_token.clone(),
                None,
                "machine",
            )
            .into();
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.endpoint.region)
            .name("ec2")
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| bad(e.to_string()))?
            .into();
        let req = SignableRequest::new(
            "POST",
            url,
            headers.iter().copied(),
            SignableBody::Bytes(body),
        )
        .map_err(|e| bad(e.to_string()))?;
        let (instructions, _) = sign(req, &params)
            .map_err(|e| bad(e.to_string()))?
            .into_parts();
        Ok(instructions
            .headers()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_tree_paths_and_items() {
        let x = Xml::parse(
            r#"<DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
              <reservationSet><item><instancesSet>
                <item><instanceId>i-1</instanceId><instanceState><name>running</name></instanceState></item>
              </instancesSet></item></reservationSet></DescribeInstancesResponse>"#,
        )
        .expect("parse");
        let r = x.items("reservationSet");
        assert_eq!(r.len(), 1);
        let i = r[0].items("instancesSet");
        assert_eq!(i[0].text_at("instanceId"), "i-1");
        assert_eq!(i[0].text_at("instanceState/name"), "running");
        assert_eq!(i[0].text_at("nope/name"), "");
    }

    #[test]
    fn endpoints() {
        let e = Endpoint::resolve("eu-west-1", "", false).expect("default");
        assert_eq!(e.url, "https://ec2.eu-west-1.amazonaws.com/");
        assert!(Endpoint::resolve("us-east-1", "", true).is_err());
        let e = Endpoint::resolve("us-east-1", "127.0.0.1:5000", true).expect("insecure");
        assert_eq!(e.url, "http://127.0.0.1:5000/");
        let e = Endpoint::resolve("us-east-1", "ec2.example.test", false).expect("host");
        assert_eq!(e.url, "https://ec2.example.test/");
        assert!(Endpoint::resolve("us-east-1", "http://127.0.0.1:1", false).is_err());
    }

    #[test]
    fn form_encoding_keeps_unreserved_only() {
        assert_eq!(
            form_encode("a b/c+d=e~f*g_h.i-j"),
            "a+b%2Fc%2Bd%3De~f%2Ag_h.i-j"
        );
        assert_eq!(form_encode("é"), "%C3%A9");
    }

    #[test]
    fn params_lists_and_filters() {
        let mut p = Params::new();
        p.list("InstanceId", &["i-1".into(), "i-2".into()])
            .filter(1, "vpc-id", &["vpc-1".into()]);
        assert_eq!(
            p.pairs(),
            [
                ("InstanceId.1".to_string(), "i-1".to_string()),
                ("InstanceId.2".into(), "i-2".into()),
                ("Filter.1.Name".into(), "vpc-id".into()),
                ("Filter.1.Value.1".into(), "vpc-1".into()),
            ]
        );
    }

    #[test]
    fn throttling_and_server_errors_are_retryable() {
        let api = |code: &str, status| Ec2Error::Api {
            action: "X".into(),
            code: code.into(),
            message: String::new(),
            status,
        };
        assert!(api("RequestLimitExceeded", 503).retryable());
        assert!(api("Throttling", 400).retryable());
        assert!(api("Whatever", 500).retryable());
        assert!(!api("InvalidParameterValue", 400).retryable());
        assert!(api("InvalidInstanceID.NotFound", 400).is_not_found());
    }
}
