//! Notification payloads and their delivery to the webhook.
//!
//! The outbox keeps each notification as an **Azure Monitor common alert schema** document
//! (`schemaId: azureMonitorCommonAlertSchema`; `data.essentials` + `data.alertContext`); the webhook
//! receives it as is, or turned into a Microsoft Teams or Slack incoming-webhook message.
//!
//! Idempotency: `essentials.alertId` identifies the incident (its fired and resolved notices share it,
//! as Azure Monitor does), and every request carries the notification's own id in the
//! `X-Patientflow-Notification-Id` header and in `alertContext.notificationId`. A notice whose
//! acknowledgement was lost (a timeout, a crash before the outbox recorded it) is sent again with the
//! same ids, so a receiver that keeps the ids it has seen handles each notice once.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::rules::Condition;

/// The shape of the webhook's requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WebhookFormat {
    /// The Azure Monitor common alert schema (default).
    #[default]
    AzureMonitor,
    /// A Microsoft Teams message with an Adaptive Card (Teams Workflows "post to a channel when a
    /// webhook request is received", and incoming webhooks).
    Teams,
    /// A Slack incoming-webhook message (`{"text": …}`).
    Slack,
}

impl WebhookFormat {
    /// Parses `azure-monitor` (also `azure`, `common`), `teams`, `slack`.
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "" | "azure-monitor" | "azuremonitor" | "azure" | "common" => {
                Some(WebhookFormat::AzureMonitor)
            }
            "teams" | "msteams" => Some(WebhookFormat::Teams),
            "slack" => Some(WebhookFormat::Slack),
            _ => None,
        }
    }
}

/// The common-alert-schema document of one notification.
pub fn common_schema(
    condition: &Condition,
    alert_id: &str,
    notification_id: &str,
    fired_at: DateTime<Utc>,
    resolved_at: Option<DateTime<Utc>>,
) -> Value {
    let rule = condition.rule;
    let monitor_condition = if resolved_at.is_some() {
        "Resolved"
    } else {
        "Fired"
    };
    let (host, instance) = crate::ops::ledger::identity();
    json!({
        "schemaId": "azureMonitorCommonAlertSchema",
        "data": {
            "essentials": {
                "alertId": alert_id,
                "alertRule": format!("patientflow-{}", rule.name()),
                "severity": rule.severity(),
                "signalType": "Log",
                "monitorCondition": monitor_condition,
                "monitoringService": "patientflow",
                "alertTargetIDs": [format!("patientflow/{}", condition.key())],
                "configurationItems": [condition.subject],
                "originAlertId": condition.key(),
                "firedDateTime": fired_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                "resolvedDateTime": resolved_at
                    .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
                "description": condition.description,
                "essentialsVersion": "1.0",
                "alertContextVersion": "1.0"
            },
            "alertContext": {
                "notificationId": notification_id,
                "incidentKey": condition.key(),
                "rule": rule.name(),
                "category": rule.category(),
                "subject": condition.subject,
                "condition": condition.context,
                "host": host,
                "instance": instance,
            },
            "customProperties": null
        }
    })
}

/// The request body for `format`, from a stored common-schema document.
pub fn render(format: WebhookFormat, common: &Value) -> Value {
    let e = &common["data"]["essentials"];
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let resolved = e["monitorCondition"] == "Resolved";
    let title = format!(
        "{} {} {}: {}",
        if resolved { "✅" } else { "🚨" },
        s(&e["severity"]),
        s(&e["monitorCondition"]),
        s(&e["alertRule"])
    );
    let when = if resolved {
        format!("resolved {}", s(&e["resolvedDateTime"]))
    } else {
        format!("fired {}", s(&e["firedDateTime"]))
    };
    let key = s(&common["data"]["alertContext"]["incidentKey"]);
    match format {
        WebhookFormat::AzureMonitor => common.clone(),
        WebhookFormat::Slack => json!({
            "text": format!("{title}\n{}\nincident {key}, {when}", s(&e["description"]))
        }),
        WebhookFormat::Teams => json!({
            "type": "message",
            "attachments": [{
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": null,
                "content": {
                    "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                    "type": "AdaptiveCard",
                    "version": "1.4",
                    "body": [
                        {"type": "TextBlock", "size": "Medium", "weight": "Bolder", "wrap": true,
                         "text": title},
                        {"type": "TextBlock", "wrap": true, "text": s(&e["description"])},
                        {"type": "FactSet", "facts": [
                            {"title": "Incident", "value": key},
                            {"title": "Alert id", "value": s(&e["alertId"])},
                            {"title": "When", "value": when}
                        ]}
                    ]
                }
            }]
        }),
    }
}

/// Sends one notification; `Ok` when the receiver answered 2xx.
pub async fn send(
    client: &reqwest::Client,
    url: &str,
    format: WebhookFormat,
    notification_id: &str,
    common: &Value,
    timeout: Duration,
) -> Result<(), String> {
    let body = render(format, common);
    let response = client
        .post(url)
        .timeout(timeout)
        .header("X-Patientflow-Notification-Id", notification_id)
        .json(&body)
        .send()
        .await
        .map_err(|e| format!("webhook request failed: {e}"))?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let text = response.text().await.unwrap_or_default();
    let text: String = text.chars().take(300).collect();
    Err(format!("webhook answered {status}: {text}"))
}
