//! Parsing `/etc/os-release`.

use std::collections::BTreeMap;

/// The fields of `/etc/os-release` that pick a provisioner, plus all others raw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OsRelease {
    /// `ID`, lower-cased (`debian`, `ubuntu`, `fedora`, ...).
    pub id: String,
    /// `ID_LIKE`, split on white space, lower-cased, in file order.
    pub id_like: Vec<String>,
    /// `VERSION_ID`.
    pub version_id: String,
    /// `PRETTY_NAME`.
    pub pretty_name: String,
    /// Every `KEY=value` line, unquoted.
    pub fields: BTreeMap<String, String>,
}

impl OsRelease {
    /// Parse the file's text. Unparsable lines are skipped, as the format asks.
    pub fn parse(text: &str) -> Self {
        let mut fields = BTreeMap::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((k, v)) = line.split_once('=') else {
                continue;
            };
            let k = k.trim();
            if k.is_empty() || !k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                continue;
            }
            fields.insert(k.to_string(), unquote(v.trim()));
        }
        let get = |k: &str| fields.get(k).cloned().unwrap_or_default();
        OsRelease {
            id: get("ID").to_ascii_lowercase(),
            id_like: get("ID_LIKE")
                .split_whitespace()
                .map(str::to_ascii_lowercase)
                .collect(),
            version_id: get("VERSION_ID"),
            pretty_name: get("PRETTY_NAME"),
            fields,
        }
    }

    /// A name for messages: `PRETTY_NAME`, else `ID`.
    pub fn display_name(&self) -> &str {
        if self.pretty_name.is_empty() {
            &self.id
        } else {
            &self.pretty_name
        }
    }
}

/// Undo shell-style quoting of an os-release value.
fn unquote(v: &str) -> String {
    let bytes = v.as_bytes();
    if bytes.len() >= 2
        && (bytes[0] == b'"' || bytes[0] == b'\'')
        && bytes[bytes.len() - 1] == bytes[0]
    {
        let inner = &v[1..v.len() - 1];
        if bytes[0] == b'\'' {
            return inner.to_string();
        }
        let mut out = String::with_capacity(inner.len());
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            if c == '\\' {
                if let Some(n) = chars.next() {
                    out.push(n);
                }
            } else {
                out.push(c);
            }
        }
        out
    } else {
        v.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_quoted_and_bare_values() {
        let o = OsRelease::parse(
            "# comment\nNAME=\"Rocky Linux\"\nID=\"rocky\"\nID_LIKE=\"rhel centos fedora\"\nVERSION_ID=9.3\nPRETTY_NAME='Rocky Linux 9.3 (Blue Onyx)'\nBAD LINE\nX=\"a\\\"b\"\n",
        );
        assert_eq!(o.id, "rocky");
        assert_eq!(o.id_like, ["rhel", "centos", "fedora"]);
        assert_eq!(o.version_id, "9.3");
        assert_eq!(o.pretty_name, "Rocky Linux 9.3 (Blue Onyx)");
        assert_eq!(o.fields["X"], "a\"b");
        assert!(!o.fields.contains_key("BAD LINE"));
    }
}
