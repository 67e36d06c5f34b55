//! Alerts of `coffre serve`: one JSON document POSTed to `[alerts] webhook_url` per event
//! (a failed or degraded backup, a failed drill, prune or heal, a source past its
//! `rpo_hours` and back within it).
//!
//! Delivery never holds a job up: each alert is sent on its own task, with up to three
//! attempts (1 s then 4 s apart) each bounded by `timeout_secs`; an alert that cannot be
//! delivered is logged. The payload carries names, times and the error text coffre
//! already logs (URLs without passwords); the bearer token, read from the variable
//! named by `webhook_token_env`, is sent in the `Authorization` header and never logged.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::config::AlertsConfig;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    BackupFailed,
    BackupDegraded,
    DrillFailed,
    PruneFailed,
    HealFailed,
    RpoExceeded,
    RpoRecovered,
}

impl Event {
    fn severity(self) -> &'static str {
        match self {
            Event::BackupDegraded | Event::HealFailed | Event::PruneFailed => "warning",
            Event::RpoRecovered => "info",
            _ => "critical",
        }
    }
}

/// One alert as POSTed.
#[derive(Debug, Clone, Serialize)]
pub struct Alert {
    pub event: Event,
    pub severity: &'static str,
    /// The source concerned (`*` for jobs over every source).
    pub source: String,
    /// One line for people.
    pub summary: String,
    /// Event-specific fields (job id, backup id, target, failure, ages…).
    pub details: serde_json::Value,
    pub time: DateTime<Utc>,
    pub coffre_version: &'static str,
}

impl Alert {
    pub fn new(event: Event, source: &str, summary: String, details: serde_json::Value) -> Alert {
        Alert {
            event,
            severity: event.severity(),
            source: source.to_owned(),
            summary,
            details,
            time: Utc::now(),
            coffre_version: env!("CARGO_PKG_VERSION"),
        }
    }
}

/// Why the alerter could not be built.
#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    #[error(
        "[alerts] webhook_token_env names {0}, which is not set: export it, or remove webhook_token_env"
    )]
    MissingToken(String),
    #[error("[alerts]: cannot build the HTTP client: {0}")]
    Client(String),
}

/// Sends alerts to the configured webhook, if any.
#[derive(Debug, Clone)]
pub struct Alerter {
    hook: Option<Hook>,
}

#[derive(Debug, Clone)]
struct Hook {
    url: String,
    token: Option<String>,
    client: reqwest::Client,
}

const ATTEMPTS: u32 = 3;

impl Alerter {
    /// An alerter for `config` (one that drops every alert when no webhook is set).
    pub fn new(config: &AlertsConfig) -> Result<Alerter, AlertError> {
        let Some(url) = &config.webhook_url else {
            return Ok(Alerter { hook: None });
        };
        let token = match &config.webhook_token_env {
            None => None,
            Some(var) => Some(
                std::env::var(var)
                    .ok()
                    .filter(|t| !t.is_empty())
                    .ok_or_else(|| AlertError::MissingToken(var.clone()))?,
            ),
        };
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(config.timeout_secs))
            .user_agent(concat!("coffre/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| AlertError::Client(e.to_string()))?;
        Ok(Alerter {
            hook: Some(Hook {
                url: url.clone(),
                token,
                client,
            }),
        })
    }

    /// Sends `alert` on its own task (logged in any case).
    pub fn send(&self, alert: Alert) {
        tracing::warn!(
            event = ?alert.event,
            source = %alert.source,
            summary = %alert.summary,
            "alert"
        );
        if let Some(hook) = self.hook.clone() {
            tokio::spawn(async move { hook.deliver(&alert).await });
        }
    }
}

impl Hook {
    async fn deliver(&self, alert: &Alert) {
        let mut wait = Duration::from_secs(1);
        for attempt in 1..=ATTEMPTS {
            let mut request = self.client.post(&self.url).json(alert);
            if let Some(token) = &self.token {
                request = request.bearer_auth(token);
            }
            let outcome = match request.send().await {
                Ok(response) if response.status().is_success() => return,
                Ok(response) => format!("answered {}", response.status()),
                // Without the URL: it may hold a secret path.
                Err(e) => e.without_url().to_string(),
            };
            if attempt == ATTEMPTS {
                tracing::error!(event = ?alert.event, source = %alert.source, error = %outcome, attempts = ATTEMPTS, "alert not delivered to the webhook");
                return;
            }
            tracing::warn!(event = ?alert.event, error = %outcome, attempt, "webhook failed; retrying");
            tokio::time::sleep(wait).await;
            wait *= 4;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alerts_say_what_and_how_bad() {
        let a = Alert::new(
            Event::BackupFailed,
            "billing",
            "backup failed".into(),
            serde_json::json!({ "job": 3 }),
        );
        let v = serde_json::to_value(&a).expect("json");
        assert_eq!(v["event"], "backup_failed");
        assert_eq!(v["severity"], "critical");
        assert_eq!(v["source"], "billing");
        assert_eq!(v["details"]["job"], 3);
        assert_eq!(
            serde_json::to_value(Event::RpoRecovered).expect("json"),
            "rpo_recovered"
        );
    }

    #[test]
    fn a_token_variable_must_be_set() {
        let config = AlertsConfig {
            webhook_url: Some("http://127.0.0.1:9/hook".into()),
            webhook_token_env: Some("COFFRE_TEST_SURELY_UNSET_TOKEN".into()),
            timeout_secs: 1,
        };
        let err = Alerter::new(&config).expect_err("unset");
        assert!(
            err.to_string().contains("COFFRE_TEST_SURELY_UNSET_TOKEN"),
            "{err}"
        );
        assert!(Alerter::new(&AlertsConfig::default()).is_ok());
    }
}
