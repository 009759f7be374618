//! Settings of `driftgate serve`: defaults, then a file (`--config`), then `DRIFTGATE_…`
//! environment variables, then flags. Validated once at start-up.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::sinks::settings::{self as sink_settings, SinkSettings};

/// Prefix of the environment variables that set settings (`DRIFTGATE_LISTEN`, …).
pub const ENV_PREFIX: &str = "DRIFTGATE";
/// The variable holding the `sinks` list (YAML or JSON).
pub const SINKS_ENV: &str = "DRIFTGATE_SINKS";

/// Log output format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object a line.
    Json,
}

/// Whether drift events also become Kubernetes Events.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum EventsMode {
    /// On whenever a Kubernetes client configuration is found: a kubeconfig (`KUBECONFIG`,
    /// `~/.kube/config`) or, in a pod, the service account.
    #[default]
    Auto,
    /// On; start-up fails when no client configuration can be loaded.
    On,
    /// Off.
    Off,
}

/// Everything `serve` needs to know.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// HTTPS address of the webhook endpoints.
    pub listen: SocketAddr,
    /// Plain-HTTP address of `GET /metrics`.
    pub metrics_listen: SocketAddr,
    /// Folder of DriftPolicy files.
    pub policies: PathBuf,
    /// Folder with `tls.crt` and `tls.key` (and `ca.crt`).
    pub cert_dir: PathBuf,
    /// Make a development CA and a localhost certificate in `cert_dir` when it has none.
    pub dev_certs: bool,
    /// The drift-event journal.
    pub journal: PathBuf,
    /// Size at which the journal is rotated.
    pub journal_max_bytes: u64,
    /// Rotated journal files kept.
    pub journal_keep: usize,
    /// Largest request body accepted.
    pub max_body_bytes: usize,
    /// driftgate's own namespace: never protected, whatever the policies say.
    pub namespace: String,
    /// Log format.
    pub log_format: LogFormat,
    /// Log filter (`info`, `driftgate=debug`, …); `RUST_LOG` wins when set.
    pub log_level: String,
    /// Seconds a shutdown waits for requests in flight.
    pub shutdown_grace_seconds: u64,
    /// Seconds the server stays up, unready, after SIGTERM before it stops accepting (the time
    /// the endpoint takes to leave the Service).
    pub shutdown_delay_seconds: u64,
    /// Seconds between checks of `cert_dir` for a rotated certificate.
    pub cert_reload_seconds: u64,
    /// Seconds between checks of `policies` for changed files.
    pub policy_reload_seconds: u64,
    /// CA bundle of the kube-apiserver's client certificate: when set, `/validate` and `/mutate`
    /// answer only clients that present a certificate it signed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_ca: Option<PathBuf>,
    /// Seconds a request may take, body included, before it is answered 503 (below the
    /// webhook's 5 s `timeoutSeconds`).
    pub request_timeout_seconds: u64,
    /// Kubernetes Events for drift: `auto` (when a client configuration is found), `on`, `off`.
    pub events: EventsMode,
    /// The most bytes of journal the slowest sink may be behind before rotation deletes the
    /// oldest files all the same (their events are then dropped for that sink, and counted).
    pub journal_undelivered_max_bytes: u64,
    /// Where drift events are delivered besides the journal (`DRIFTGATE_SINKS`: the same list
    /// as YAML or JSON).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sinks: Vec<SinkSettings>,
    /// Drift events a second one source address may produce, sustained, before the rest are
    /// summarised (counted into one journal line every 10 s) instead of journaled one by one;
    /// 0 turns the limit off.
    pub rate_limit_per_source: f64,
    /// Drift events one source may produce at once before the rate limit applies.
    pub rate_limit_burst: u32,
    /// Hours a rotated journal file is kept, whatever `journal_keep` says, after its last
    /// event (until `journal_max_total_bytes`).
    pub journal_min_retention_hours: u64,
    /// The most bytes all journal files may take: beyond it the oldest unauthenticated events
    /// go first, then the oldest files, whatever their age (counted and logged).
    pub journal_max_total_bytes: u64,
    /// BreakGlassGrants: watched in `namespace` (auto: whenever a kubeconfig or an in-cluster
    /// service account is found).
    pub grants: EventsMode,
    /// The longest a BreakGlassGrant may last, in minutes from its creation.
    pub break_glass_max_minutes: u64,
    /// Whether a BreakGlassGrant may name its own granter among its subjects.
    pub break_glass_allow_self_grant: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            listen: SocketAddr::from(([127, 0, 0, 1], 8443)),
            metrics_listen: SocketAddr::from(([127, 0, 0, 1], 9090)),
            policies: PathBuf::from("policies"),
            cert_dir: PathBuf::from("certs"),
            dev_certs: true,
            journal: PathBuf::from("drift-events.jsonl"),
            journal_max_bytes: 64 * 1024 * 1024,
            journal_keep: 5,
            max_body_bytes: 16 * 1024 * 1024,
            namespace: "driftgate".to_owned(),
            log_format: LogFormat::Text,
            log_level: "info".to_owned(),
            shutdown_grace_seconds: 15,
            shutdown_delay_seconds: 5,
            cert_reload_seconds: 2,
            policy_reload_seconds: 2,
            request_timeout_seconds: 4,
            client_ca: None,
            events: EventsMode::Auto,
            journal_undelivered_max_bytes: 256 * 1024 * 1024,
            sinks: Vec::new(),
            rate_limit_per_source: 20.0,
            rate_limit_burst: 200,
            journal_min_retention_hours: 24,
            journal_max_total_bytes: 768 * 1024 * 1024,
            grants: EventsMode::Auto,
            break_glass_max_minutes: 240,
            break_glass_allow_self_grant: false,
        }
    }
}

/// Why settings could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file, an environment variable or a flag has a bad value or an unknown key.
    #[error("failed to load settings: {0}")]
    Load(#[from] config::ConfigError),
    /// A value is out of range.
    #[error("invalid setting {field}: {reason}")]
    Invalid {
        /// The setting.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
}

impl Settings {
    /// The limits every BreakGlassGrant is held to.
    pub fn grant_limits(&self) -> crate::policy::grant::GrantLimits {
        crate::policy::grant::GrantLimits {
            max_duration: time::Duration::minutes(i64::try_from(self.break_glass_max_minutes).unwrap_or(i64::MAX)),
            allow_self_grant: self.break_glass_allow_self_grant,
        }
    }

    /// Settings for tests: an ephemeral loopback port and everything under `dir`.
    pub fn for_test(dir: &Path) -> Self {
        Settings {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            metrics_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            policies: dir.join("policies"),
            cert_dir: dir.join("certs"),
            dev_certs: false,
            journal: dir.join("drift-events.jsonl"),
            shutdown_grace_seconds: 5,
            shutdown_delay_seconds: 0,
            cert_reload_seconds: 1,
            policy_reload_seconds: 1,
            events: EventsMode::Off,
            grants: EventsMode::Off,
            // Rotation tests rotate within seconds.
            journal_min_retention_hours: 0,
            ..Settings::default()
        }
    }

    /// Layers defaults, `file`, the process environment and `overrides` (flag name → value).
    pub fn load(file: Option<&Path>, overrides: &[(&str, String)]) -> Result<Self, ConfigError> {
        Self::load_with_env(file, std::env::vars(), overrides)
    }

    /// As [`Settings::load`], with the environment given.
    pub fn load_with_env(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        overrides: &[(&str, String)],
    ) -> Result<Self, ConfigError> {
        let env: Vec<(String, String)> = env.into_iter().collect();
        // A list is no scalar the config crate parses from a variable: read as YAML (or JSON).
        let sinks_env = env.iter().find(|(k, _)| k == SINKS_ENV).map(|(_, v)| v.clone());
        let defaults = config::Config::try_from(&Settings::default())?;
        let mut builder = config::Config::builder().add_source(defaults);
        if let Some(file) = file {
            builder = builder.add_source(config::File::from(file).required(true));
        }
        builder = builder
            .add_source(config::Environment::with_prefix(ENV_PREFIX).try_parsing(true).source(Some(known_env(env))));
        for (key, value) in overrides {
            builder = builder.set_override(*key, value.clone())?;
        }
        let mut settings: Settings = builder.build()?.try_deserialize()?;
        if let Some(list) = sinks_env {
            settings.sinks = serde_yaml_ng::from_str::<Vec<SinkSettings>>(&list)
                .map_err(|e| ConfigError::Invalid { field: "sinks", reason: format!("{SINKS_ENV}: {e}") })?;
        }
        settings.validate()?;
        Ok(settings)
    }

    /// Checks values that types alone do not.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |field, reason: &str| Err(ConfigError::Invalid { field, reason: reason.to_owned() });
        if self.max_body_bytes < 1024 {
            return invalid("max_body_bytes", "must be at least 1024");
        }
        if self.journal_max_bytes < 4096 {
            return invalid("journal_max_bytes", "must be at least 4096");
        }
        if self.cert_reload_seconds == 0 {
            return invalid("cert_reload_seconds", "must be at least 1");
        }
        if self.policy_reload_seconds == 0 {
            return invalid("policy_reload_seconds", "must be at least 1");
        }
        if self.request_timeout_seconds == 0 || self.request_timeout_seconds >= 30 {
            return invalid(
                "request_timeout_seconds",
                "must be between 1 and 29 (the kube-apiserver waits at most 30 s)",
            );
        }
        if self.namespace.is_empty() {
            return invalid("namespace", "must not be empty");
        }
        if self.journal.as_os_str().is_empty() {
            return invalid("journal", "must not be empty");
        }
        if self.journal_undelivered_max_bytes < self.journal_max_bytes {
            return invalid(
                "journal_undelivered_max_bytes",
                "must be at least journal_max_bytes (a sink may be a whole file behind)",
            );
        }
        if !(self.rate_limit_per_source >= 0.0 && self.rate_limit_per_source.is_finite()) {
            return invalid("rate_limit_per_source", "must be a number of events a second, 0 or more (0: off)");
        }
        if self.rate_limit_per_source > 0.0 && self.rate_limit_burst == 0 {
            return invalid("rate_limit_burst", "must be at least 1 while rate_limit_per_source is set");
        }
        if self.journal_max_total_bytes < 2 * self.journal_max_bytes {
            return invalid(
                "journal_max_total_bytes",
                "must be at least twice journal_max_bytes (the live file and one rotated file)",
            );
        }
        if self.break_glass_max_minutes == 0 || self.break_glass_max_minutes > 7 * 24 * 60 {
            return invalid("break_glass_max_minutes", "must be between 1 and 10080 (a week)");
        }
        sink_settings::validate_all(&self.sinks).map_err(|reason| ConfigError::Invalid { field: "sinks", reason })?;
        Ok(())
    }
}

/// Only the `DRIFTGATE_…` variables that name a setting. Kubernetes injects
/// `DRIFTGATE_SERVICE_HOST`, `DRIFTGATE_PORT`, … for a Service named driftgate; those are not
/// settings and must not stop the server.
fn known_env(env: impl IntoIterator<Item = (String, String)>) -> config::Map<String, String> {
    let keys: Vec<String> = match serde_json::to_value(Settings::default()) {
        Ok(serde_json::Value::Object(map)) => {
            map.keys().map(|k| format!("{ENV_PREFIX}_{}", k.to_uppercase())).collect()
        }
        _ => Vec::new(),
    };
    env.into_iter().filter(|(k, _)| k != SINKS_ENV && keys.contains(k)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_defaults_file_env_and_flags() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("driftgate.yaml");
        std::fs::write(&file, "listen: 0.0.0.0:9443\njournal: /var/log/a.jsonl\njournal_keep: 9\n").unwrap();
        let env = vec![
            ("DRIFTGATE_JOURNAL".to_owned(), "/var/log/b.jsonl".to_owned()),
            ("DRIFTGATE_MAX_BODY_BYTES".to_owned(), "2048".to_owned()),
            ("DRIFTGATE_SERVICE_HOST".to_owned(), "10.0.0.1".to_owned()),
            ("DRIFTGATE_PORT".to_owned(), "tcp://10.0.0.1:443".to_owned()),
        ];
        let s = Settings::load_with_env(Some(&file), env, &[("journal_keep", "2".into())]).unwrap();
        assert_eq!(s.listen, "0.0.0.0:9443".parse().unwrap());
        assert_eq!(s.journal, PathBuf::from("/var/log/b.jsonl"));
        assert_eq!(s.max_body_bytes, 2048);
        assert_eq!(s.journal_keep, 2);
        assert_eq!(s.policies, PathBuf::from("policies"));
    }

    #[test]
    fn sinks_come_from_the_file_or_as_a_list_in_one_variable() {
        use crate::sinks::settings::{Secret, SinkType, WebhookFormat};
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("driftgate.yaml");
        std::fs::write(
            &file,
            "sinks:\n  - type: stdout\n  - name: slack\n    type: webhook\n    format: slack\n    url: {from_env: SLACK_URL}\n    \
             headers: {Authorization: {from_file: /var/run/token}}\n    decisions: [denied]\n",
        )
        .unwrap();
        let s = Settings::load_with_env(Some(&file), vec![], &[]).unwrap();
        assert_eq!(s.sinks.len(), 2);
        assert_eq!(s.sinks[0].kind, SinkType::Stdout);
        assert_eq!(s.sinks[1].format, WebhookFormat::Slack);
        assert_eq!(s.sinks[1].url, Some(Secret::Env { from_env: "SLACK_URL".into() }));
        assert_eq!(s.sinks[1].headers["Authorization"], Secret::File { from_file: "/var/run/token".into() });
        assert_eq!(s.sinks[1].decisions, vec![crate::event::Decision::Denied]);
        let env = vec![(SINKS_ENV.to_owned(), r#"[{"type": "otlp", "endpoint": "http://c:4318/v1/logs"}]"#.to_owned())];
        let s = Settings::load_with_env(Some(&file), env, &[]).unwrap();
        assert_eq!(s.sinks.len(), 1, "the variable replaces the file's list");
        assert_eq!(s.sinks[0].kind, SinkType::Otlp);

        let bad = |list: &str| {
            let env = vec![(SINKS_ENV.to_owned(), list.to_owned())];
            Settings::load_with_env(None, env, &[]).unwrap_err().to_string()
        };
        assert!(
            bad("[{type: webhook}]").contains("sink webhook: a webhook needs a url"),
            "{}",
            bad("[{type: webhook}]")
        );
        assert!(bad("[{type: stdout}, {type: stdout}]").contains("used twice"));
        assert!(bad("[{type: pager}]").contains("unknown variant `pager`"), "{}", bad("[{type: pager}]"));
        assert!(bad("[{type: stdout, colour: red}]").contains("unknown field `colour`"));
    }

    #[test]
    fn reports_bad_values_and_unknown_keys() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.yaml");
        std::fs::write(&file, "listne: 1\n").unwrap();
        let e = Settings::load_with_env(Some(&file), vec![], &[]).unwrap_err().to_string();
        assert!(e.contains("listne"), "{e}");
        let e = Settings::load_with_env(None, vec![], &[("listen", "nope".into())]).unwrap_err().to_string();
        assert!(e.contains("listen") || e.contains("address"), "{e}");
        let e = Settings::load_with_env(None, vec![], &[("max_body_bytes", "10".into())]).unwrap_err().to_string();
        assert!(e.contains("max_body_bytes"), "{e}");
    }
}
