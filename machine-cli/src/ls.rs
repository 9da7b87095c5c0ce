//! `ls`: every machine queried at once (the library bounds each by the
//! timeout), filtered, and printed through a Go template, with the column
//! alignment of the original's tabwriter, or as JSON.

use crate::error::{CliError, CliResult};
use crate::gotemplate::{self, GoTemplate};
use crate::tabwriter::TabWriter;
use crate::Ctx;
use clap::ArgMatches;
use gtmpl::Value;
use machine_core::config::HostConfig;
use machine_core::host::{ListEntry, ListQuery};
use machine_core::State;
use regex::Regex;
use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

/// The original's default listing.
const DEFAULT_FORMAT: &str =
    "table {{ .Name }}\t{{ .Active }}\t{{ .DriverName}}\t{{ .State }}\t{{ .URL }}\t{{ .Swarm }}\t{{ .DockerVersion }}\t{{ .Error}}";

const HEADERS: [(&str, &str); 13] = [
    ("Name", "NAME"),
    ("Active", "ACTIVE"),
    ("ActiveHost", "ACTIVE_HOST"),
    ("ActiveSwarm", "ACTIVE_SWARM"),
    ("DriverName", "DRIVER"),
    ("State", "STATE"),
    ("URL", "URL"),
    ("SwarmOptions", "SWARM_OPTIONS"),
    ("Swarm", "SWARM"),
    ("EngineOptions", "ENGINE_OPTIONS"),
    ("Error", "ERRORS"),
    ("DockerVersion", "DOCKER"),
    ("ResponseTime", "RESPONSE"),
];

#[derive(Debug, Default)]
struct Filters {
    swarm: Vec<String>,
    driver: Vec<String>,
    state: Vec<String>,
    name: Vec<Regex>,
    label: Vec<String>,
}

impl Filters {
    fn parse(values: &[String]) -> CliResult<Filters> {
        let mut f = Filters::default();
        for v in values {
            let Some((k, val)) = v.split_once('=') else {
                return Err(CliError::msg("Unsupported filter syntax"));
            };
            let val = val.to_string();
            match k.to_ascii_lowercase().as_str() {
                "swarm" => f.swarm.push(val),
                "driver" => f.driver.push(val),
                "state" => f.state.push(val),
                "name" => f
                    .name
                    .push(Regex::new(&val).map_err(|e| CliError::msg(format!("Error: {e}")))?),
                "label" => f.label.push(val),
                other => return Err(CliError::msg(format!("Unsupported filter key '{other}'"))),
            }
        }
        Ok(f)
    }

    /// The filters that need no query of the machine.
    fn static_match(
        &self,
        name: &str,
        driver: &str,
        cfg: Option<&HostConfig>,
        masters: &BTreeMap<String, String>,
    ) -> bool {
        let driver_ok =
            self.driver.is_empty() || self.driver.iter().any(|d| d.eq_ignore_ascii_case(driver));
        let name_ok = self.name.is_empty() || self.name.iter().any(|r| r.is_match(name));
        let swarm_ok = self.swarm.is_empty()
            || cfg.is_some_and(|c| {
                let master = masters.get(&c.host_options.swarm_options.discovery);
                self.swarm
                    .iter()
                    .any(|s| master.is_some_and(|m| m.eq_ignore_ascii_case(s)))
            });
        let label_ok = self.label.is_empty()
            || cfg.is_some_and(|c| {
                let labels: HashMap<&str, &str> = c
                    .host_options
                    .engine_options
                    .labels
                    .iter()
                    .flatten()
                    .filter_map(|l| l.split_once('='))
                    .collect();
                self.label.iter().any(|l| match l.split_once('=') {
                    Some((k, v)) => labels
                        .get(k)
                        .is_some_and(|have| have.eq_ignore_ascii_case(v)),
                    None => false,
                })
            });
        driver_ok && name_ok && swarm_ok && label_ok
    }

    fn state_match(&self, state: State) -> bool {
        self.state.is_empty()
            || self
                .state
                .iter()
                .any(|s| s.eq_ignore_ascii_case(state.as_str()))
    }
}

/// Natural order of lower-cased names (`m2` before `m10`), as the original sorted.
fn natural_cmp(a: &str, b: &str) -> Ordering {
    fn chunks(s: &str) -> Vec<(bool, String)> {
        let mut out: Vec<(bool, String)> = Vec::new();
        for c in s.to_lowercase().chars() {
            let digit = c.is_ascii_digit();
            match out.last_mut() {
                Some((d, text)) if *d == digit => text.push(c),
                _ => out.push((digit, c.to_string())),
            }
        }
        out
    }
    let (ca, cb) = (chunks(a), chunks(b));
    for (x, y) in ca.iter().zip(cb.iter()) {
        let o = match (x, y) {
            ((true, p), (true, q)) => {
                let (p, q) = (p.trim_start_matches('0'), q.trim_start_matches('0'));
                p.len().cmp(&q.len()).then_with(|| p.cmp(q))
            }
            ((_, p), (_, q)) => p.cmp(q),
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    ca.len().cmp(&cb.len()).then_with(|| a.cmp(b))
}

/// Whether the template `text` reads one of `fields`, or the whole row
/// (a lone `.`): the listing asks the machines only what is shown.
fn uses_any(text: &str, fields: &[&str]) -> bool {
    let bytes = text.as_bytes();
    let lone_dot = bytes.iter().enumerate().any(|(i, &b)| {
        let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c == b')';
        b == b'.'
            && !bytes.get(i + 1).is_some_and(|&c| ident(c) || c == b'.')
            && !i
                .checked_sub(1)
                .and_then(|j| bytes.get(j))
                .is_some_and(|&c| ident(c))
    });
    lone_dot || fields.iter().any(|f| text.contains(f))
}

fn url_port(url: &str) -> &str {
    url.rsplit(':').next().unwrap_or_default()
}

struct Item {
    entry: ListEntry,
    loaded: bool,
    active: String,
    active_host: bool,
    active_swarm: bool,
    swarm: String,
    docker_version: String,
    swarm_options: serde_json::Value,
    engine_options: serde_json::Value,
}

impl Item {
    fn template_value(&self) -> Value {
        let e = &self.entry;
        gotemplate::object(vec![
            ("Name", Value::from(e.name.clone())),
            ("Active", Value::from(self.active.clone())),
            ("ActiveHost", Value::Bool(self.active_host)),
            ("ActiveSwarm", Value::Bool(self.active_swarm)),
            ("DriverName", Value::from(e.driver_name.clone())),
            ("State", Value::from(e.state.as_str())),
            ("URL", Value::from(e.url.clone())),
            ("SwarmOptions", gotemplate::from_json(&self.swarm_options)),
            ("Swarm", Value::from(self.swarm.clone())),
            ("EngineOptions", gotemplate::from_json(&self.engine_options)),
            ("Error", Value::from(e.error.clone())),
            ("DockerVersion", Value::from(self.docker_version.clone())),
            (
                "ResponseTime",
                Value::from(gotemplate::go_duration_ms(e.response_time_ms)),
            ),
        ])
    }

    fn json(&self) -> serde_json::Value {
        let e = &self.entry;
        serde_json::json!({
            "Name": e.name,
            "Active": self.active,
            "ActiveHost": self.active_host,
            "ActiveSwarm": self.active_swarm,
            "DriverName": e.driver_name,
            "State": e.state.as_str(),
            "URL": e.url,
            "Swarm": self.swarm,
            "DockerVersion": self.docker_version,
            "Error": e.error,
            "ResponseTimeMs": e.response_time_ms,
            "SwarmOptions": self.swarm_options,
            "EngineOptions": self.engine_options,
        })
    }
}

pub(crate) async fn ls(ctx: &Ctx, m: &ArgMatches) -> CliResult<i32> {
    let filter_values: Vec<String> = m
        .get_many::<String>("filter")
        .map(|v| v.cloned().collect())
        .unwrap_or_default();
    let filters = Filters::parse(&filter_values)?;
    let quiet = m.get_flag("quiet");
    let timeout = Duration::from_secs(*m.get_one::<u64>("timeout").unwrap_or(&10));
    let format = m
        .get_one::<String>("format")
        .cloned()
        .filter(|f| !f.is_empty());

    let loaded = ctx
        .store
        .files()
        .load_all()
        .map_err(|e| ctx.err("Error listing machines", &e.into()))?;
    let mut names: Vec<String> = loaded.iter().map(|(n, _)| n.clone()).collect();
    names.sort_by(|a, b| natural_cmp(a, b));
    let configs: HashMap<String, Option<HostConfig>> = loaded
        .iter()
        .map(|(n, c)| (n.clone(), c.as_ref().ok().cloned()))
        .collect();
    let masters = machine_core::swarm::masters(
        configs
            .iter()
            .filter_map(|(n, c)| c.as_ref().map(|c| (n.as_str(), c))),
    );
    let static_ok = |name: &str| {
        let cfg = configs.get(name).and_then(Option::as_ref);
        let driver = cfg.map(|c| c.driver_name.as_str()).unwrap_or("not found");
        filters.static_match(name, driver, cfg, &masters)
    };

    // Quiet mode without a state filter needs no query at all.
    if quiet && filters.state.is_empty() {
        let mut out = String::new();
        for n in names
            .iter()
            .filter(|n| configs.get(*n).is_some_and(Option::is_some) && static_ok(n))
        {
            out.push_str(n);
            out.push('\n');
        }
        out!("{out}");
        return Ok(0);
    }

    let template = match format.as_deref() {
        Some("json") => None,
        other => Some(gotemplate::ls_format(other.unwrap_or(DEFAULT_FORMAT))),
    };
    let parsed = match &template {
        Some((text, _)) => Some(GoTemplate::parse(text).map_err(CliError::msg)?),
        None => None,
    };

    let mut query = ListQuery::new(timeout);
    if let Some((text, _)) = &template {
        if filters.state.is_empty() {
            query.version = uses_any(
                text,
                &["DockerVersion", "Error", "ResponseTime", "State", "Active"],
            );
            query.state = query.version || uses_any(text, &["URL"]);
        }
    }
    let rows = ctx
        .store
        .list_with(loaded, query)
        .await
        .map_err(|e| ctx.err("Error listing machines", &e))?;
    let docker_host = std::env::var("DOCKER_HOST").unwrap_or_default();
    let mut items: Vec<Item> = Vec::new();
    for entry in rows {
        let cfg = configs.get(&entry.name).and_then(Option::as_ref);
        if !static_ok(&entry.name) || !filters.state_match(entry.state) {
            continue;
        }
        let loaded = cfg.is_some() && entry.driver_name != "not found";
        let swarm_opts = cfg.map(|c| &c.host_options.swarm_options);
        let swarm = entry.swarm.clone();
        let running = entry.state == State::Running;
        let active_host = running && !entry.url.is_empty() && entry.url == docker_host;
        let active_swarm = swarm_opts.is_some_and(|s| {
            // Swarm mode: the cluster's API is the manager's own daemon
            let swarm_mode = machine_core::swarm::discovery_machine(&s.discovery).is_some();
            s.master && running && swarm_mode && active_host
        }) || swarm_opts.is_some_and(|s| {
            s.master
                && running
                && machine_core::swarm::discovery_machine(&s.discovery).is_none()
                && {
                    let swarm_url = entry.url.replacen(
                        &format!(":{}", url_port(&entry.url)),
                        &format!(":{}", url_port(&s.host)),
                        1,
                    );
                    !docker_host.is_empty() && swarm_url == docker_host
                }
        });
        let plain = !loaded || entry.state == State::Timeout;
        let active = if plain {
            String::new()
        } else if active_swarm {
            "* (swarm)".into()
        } else if active_host {
            "*".into()
        } else {
            "-".into()
        };
        let docker_version = if plain {
            String::new()
        } else {
            entry.docker_version.clone()
        };
        let to_value = |v: Option<serde_json::Value>| v.unwrap_or(serde_json::Value::Null);
        items.push(Item {
            swarm_options: to_value(
                cfg.and_then(|c| serde_json::to_value(&c.host_options.swarm_options).ok()),
            ),
            engine_options: to_value(
                cfg.and_then(|c| serde_json::to_value(&c.host_options.engine_options).ok()),
            ),
            entry: ListEntry {
                error: entry.error.replace('\n', " "),
                ..entry
            },
            loaded,
            active,
            active_host,
            active_swarm,
            swarm,
            docker_version,
        });
    }
    items.sort_by(|a, b| natural_cmp(&a.entry.name, &b.entry.name));

    if quiet {
        let mut out = String::new();
        for i in items.iter().filter(|i| i.loaded) {
            out.push_str(&i.entry.name);
            out.push('\n');
        }
        out!("{out}");
        return Ok(0);
    }
    let (Some((_, table)), Some(t)) = (template, parsed) else {
        let list: Vec<serde_json::Value> = items.iter().map(Item::json).collect();
        let bytes = machine_core::config::to_go_json(&list)
            .map_err(|e| CliError::msg(format!("Error: {e}")))?;
        outln!("{}", String::from_utf8_lossy(&bytes));
        return Ok(0);
    };
    let mut text = String::new();
    if table {
        let headers = Value::Map(
            HEADERS
                .iter()
                .map(|(k, v)| (k.to_string(), Value::from(*v)))
                .collect(),
        );
        text.push_str(&t.render(&headers).map_err(CliError::msg)?);
    }
    for i in &items {
        text.push_str(&t.render(&i.template_value()).map_err(CliError::msg)?);
    }
    if table {
        text = TabWriter::default().format(&text);
    }
    out!("{text}");
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natural_order() {
        let mut v = vec!["m10", "M2", "a", "m1", "b-3"];
        v.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(v, vec!["a", "b-3", "m1", "M2", "m10"]);
    }

    #[test]
    fn only_the_fields_shown_are_asked_for() {
        let fields = ["DockerVersion", "State"];
        assert!(uses_any("{{ .Name }} {{ .State }}", &fields));
        assert!(!uses_any("{{ .Name }}\t{{ .DriverName }}", &fields));
        assert!(uses_any("{{ . }}", &fields));
        assert!(uses_any("{{json .}}", &fields));
        assert!(!uses_any("{{ .Name }} 1.5", &fields));
    }

    #[test]
    fn filter_syntax() {
        assert!(Filters::parse(&["driver".into()]).is_err());
        let e = Filters::parse(&["color=red".into()]).expect_err("key");
        assert_eq!(e.message, "Unsupported filter key 'color'");
        let f = Filters::parse(&["Driver=none".into(), "name=^a".into()]).expect("ok");
        assert!(f.static_match("ab", "NONE", None, &BTreeMap::new()));
        assert!(!f.static_match("ba", "none", None, &BTreeMap::new()));
    }
}
