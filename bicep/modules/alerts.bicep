// Operator alerting: one action group (email + webhook, both with the common alert schema) and the alert rules.
//   (a) function-failures      log alert: failed `requests` per function (operation_Name), 5 min window
//   (b) pipeline-run-failed    log alert: `pipeline_run_failed` marker / customEvent, or a `patientflow.run.duration`
//                              metric with status=failed, per stage                         (app rule stage_failed)
//   (c) adt-feed-silent        metric alert: Event Hubs IncomingMessages < 1 over 30 min on the ADT hub
//   (d) health-availability    standard availability test on /api/health from 3 US locations + metric alert
//   (e) adf-pipeline-failed    metric alert: Data Factory PipelineFailedRuns > 0 per pipeline name
//   (f) retries-exhausted      log alert: the app's ledger-evaluated incident `retries_exhausted:<stage>` is open
//                              (its `alert_fired` log line without a later `alert_resolved`), per stage
//   (g) gold-refresh-late      log alert: Gold has runs but none succeeded within goldLateMinutes
//                              (`patientflow.run.duration` stage=gold, or the Gold summary log lines) (app gold_late)
//   (h) dq-breach              log alert: latest `patientflow.quarantine.rate` of a source > dqQuarantineRate
//                                                                                           (app rule dq_breach)
//   (i) hospital-feed-silent   log alert: no `patientflow.ingest.lag` sample from a hospital for longer than its
//                              threshold, or its recent lag above that threshold, per hospital_id (app silent_feed)
// Log alerts are stateful (autoMitigate): one alert per incident per dimension value and a Resolved notice once an
// evaluation is clean. The thresholds below default to the app's own defaults (core/src/ops/alerts/mod.rs) and
// main.bicep passes the same values to the Function App (PATIENTFLOW_ALERT_*), so both sides judge alike.
// Department overload and ED boarding are raised by patientflow itself and POSTed to PATIENTFLOW_ALERT_WEBHOOK_URL
// (same receiver URL as the webhook below).

@description('Azure region for regional resources (log alerts, web test).')
param location string

@description('Action group resource name.')
param actionGroupName string

@description('Action group short name (max 12 characters, shown in SMS/email).')
@maxLength(12)
param actionGroupShortName string = 'pflowops'

@description('Operator e-mail address.')
param opsEmail string

@description('Operator webhook receiver (common alert schema).')
param alertWebhookUrl string

@description('Application Insights component id.')
param appInsightsId string

@description('Event Hubs namespace id.')
param eventHubsNamespaceId string

@description('ADT event hub name (dimension EntityName).')
param eventHubName string

@description('Function App default host name, for the availability test.')
param functionAppHostName string

@description('Data Factory id.')
param dataFactoryId string

@description('Minutes without a successful Gold refresh before gold-refresh-late fires (app: PATIENTFLOW_ALERT_GOLD_LATE_MINUTES, 90).')
@minValue(5)
@maxValue(2880)
param goldLateMinutes int = 90

@description('Quarantine rate of a source (0-1, decimal text: Bicep has no float literal) above which dq-breach fires (app: PATIENTFLOW_ALERT_DQ_RATE, 0.05).')
param dqQuarantineRate string = '0.05'

@description('Minutes without an ADT message from a hospital before hospital-feed-silent fires (app: PATIENTFLOW_ALERT_SILENT_FEED_MINUTES, 60).')
@minValue(5)
@maxValue(2880)
param silentFeedMinutes int = 60

@description('Per-hospital silence thresholds in minutes, e.g. { MHA01: 30, MHB02: 240 } (app: PATIENTFLOW_ALERT_SILENT_FEED_BY_HOSPITAL).')
param silentFeedByHospital object = {}

@description('Prefix for alert rule names.')
param namePrefix string = 'patientflow'

param tags object = {}

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = {
  name: actionGroupName
  location: 'global'
  tags: tags
  properties: {
    groupShortName: actionGroupShortName
    enabled: true
    emailReceivers: [
      {
        name: 'ops-email'
        emailAddress: opsEmail
        useCommonAlertSchema: true
      }
    ]
    webhookReceivers: [
      {
        name: 'ops-webhook'
        serviceUri: alertWebhookUrl
        useCommonAlertSchema: true
      }
    ]
  }
}

// (a) Every function invocation is one `requests` row (any trigger type); success == false is a failed invocation
//     (handler answered non-2xx, timed out, or a binding failed). Split per function name.
resource functionFailures 'Microsoft.Insights/scheduledQueryRules@2022-06-15' = {
  name: '${namePrefix}-function-failures'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: '${namePrefix}: function invocation failures'
    description: 'At least one failed invocation of a patientflow function in the last 5 minutes (per function).'
    enabled: true
    severity: 1
    scopes: [
      appInsightsId
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT5M'
    criteria: {
      allOf: [
        {
          query: '''
requests
| where success == false
| summarize failures = count() by operation_Name
'''
          timeAggregation: 'Total'
          metricMeasureColumn: 'failures'
          dimensions: [
            {
              name: 'operation_Name'
              operator: 'Include'
              values: [
                '*'
              ]
            }
          ]
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: {
      actionGroups: [
        actionGroup.id
      ]
      customProperties: {
        service: 'patientflow'
        alert: 'function-failures'
      }
    }
  }
}

// (b) The run ledger logs `pipeline_run_failed` when a stage run ends in failure (Logs[] / stdout -> traces,
//     or a customEvent with that name); the OpenTelemetry metric `patientflow.run.duration` (dims stage, status)
//     records the same run with status=failed. The stage is taken from customDimensions.stage or from the line itself
//     (`stage=silver` or `"stage":"silver"`).
resource pipelineRunFailed 'Microsoft.Insights/scheduledQueryRules@2022-06-15' = {
  name: '${namePrefix}-pipeline-run-failed'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: '${namePrefix}: pipeline run failed'
    description: 'A patientflow stage run ended with status failed (log line pipeline_run_failed, or a patientflow.run.duration sample with status=failed).'
    enabled: true
    severity: 1
    scopes: [
      appInsightsId
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT5M'
    criteria: {
      allOf: [
        {
          query: '''
union isfuzzy=true
  (traces
   | where message contains "pipeline_run_failed"
   | project message, customDimensions),
  (customEvents
   | where name == "pipeline_run_failed"
   | project message = name, customDimensions),
  (customMetrics
   | where name == "patientflow.run.duration" and tostring(customDimensions.status) == "failed"
   | project message = name, customDimensions)
| extend stage = coalesce(tostring(customDimensions.stage), tostring(customDimensions["prop__stage"]), extract(@"stage\W{1,3}(\w+)", 1, message), "unknown")
| summarize failures = count() by stage
'''
          timeAggregation: 'Total'
          metricMeasureColumn: 'failures'
          dimensions: [
            {
              name: 'stage'
              operator: 'Include'
              values: [
                '*'
              ]
            }
          ]
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: {
      actionGroups: [
        actionGroup.id
      ]
      customProperties: {
        service: 'patientflow'
        alert: 'pipeline-run-failed'
      }
    }
  }
}

// (c) Whole-feed silence. Per-hospital silence needs the facility, which Event Hubs metrics do not carry; patientflow
//     detects that itself from Bronze (and Azure from the ingest-lag metric, rule (i)).
resource adtFeedSilent 'Microsoft.Insights/metricAlerts@2018-03-01' = {
  name: '${namePrefix}-adt-feed-silent'
  location: 'global'
  tags: tags
  properties: {
    description: 'No ADT message reached the ${eventHubName} event hub for 30 minutes.'
    severity: 2
    enabled: true
    scopes: [
      eventHubsNamespaceId
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT30M'
    criteria: {
      'odata.type': 'Microsoft.Azure.Monitor.SingleResourceMultipleMetricCriteria'
      allOf: [
        {
          criterionType: 'StaticThresholdCriterion'
          name: 'IncomingMessagesBelowOne'
          metricNamespace: 'Microsoft.EventHub/namespaces'
          metricName: 'IncomingMessages'
          dimensions: [
            {
              name: 'EntityName'
              operator: 'Include'
              values: [
                eventHubName
              ]
            }
          ]
          operator: 'LessThan'
          threshold: 1
          timeAggregation: 'Total'
        }
      ]
    }
    autoMitigate: true
    actions: [
      {
        actionGroupId: actionGroup.id
      }
    ]
  }
}

// (d) Availability: a standard web test GETs /api/health (anonymous, excluded from Easy Auth) every 5 minutes from
//     three US locations; the alert fires when 2 of 3 locations fail.
var webTestName = '${namePrefix}-health'

resource healthWebTest 'Microsoft.Insights/webtests@2022-06-15' = {
  name: webTestName
  location: location
  tags: union(tags, {
    'hidden-link:${appInsightsId}': 'Resource'
  })
  kind: 'standard'
  properties: {
    SyntheticMonitorId: webTestName
    Name: '${namePrefix} /api/health'
    Description: 'GET https://${functionAppHostName}/api/health must answer 200.'
    Enabled: true
    Frequency: 300
    Timeout: 30
    Kind: 'standard'
    RetryEnabled: true
    Locations: [
      {
        Id: 'us-il-ch1-azr' // Central US
      }
      {
        Id: 'us-tx-sn1-azr' // South Central US
      }
      {
        Id: 'us-va-ash-azr' // East US
      }
    ]
    Request: {
      RequestUrl: 'https://${functionAppHostName}/api/health'
      HttpVerb: 'GET'
      ParseDependentRequests: false
    }
    ValidationRules: {
      ExpectedHttpStatusCode: 200
      SSLCheck: true
      SSLCertRemainingLifetimeCheck: 7
    }
  }
}

resource healthAvailability 'Microsoft.Insights/metricAlerts@2018-03-01' = {
  name: '${namePrefix}-health-availability'
  location: 'global'
  tags: tags
  properties: {
    description: 'The Function App health endpoint failed from at least 2 of 3 test locations.'
    severity: 1
    enabled: true
    scopes: [
      healthWebTest.id
      appInsightsId
    ]
    evaluationFrequency: 'PT1M'
    windowSize: 'PT5M'
    criteria: {
      'odata.type': 'Microsoft.Azure.Monitor.WebtestLocationAvailabilityCriteria'
      webTestId: healthWebTest.id
      componentId: appInsightsId
      failedLocationCount: 2
    }
    autoMitigate: true
    actions: [
      {
        actionGroupId: actionGroup.id
      }
    ]
  }
}

// (e) ADF orchestration failures (daily EHR ingestion, Gold refresh WebHook timeouts / callback StatusCode >= 400).
resource adfPipelineFailed 'Microsoft.Insights/metricAlerts@2018-03-01' = {
  name: '${namePrefix}-adf-pipeline-failed'
  location: 'global'
  tags: tags
  properties: {
    description: 'An Azure Data Factory pipeline run failed (per pipeline).'
    severity: 1
    enabled: true
    scopes: [
      dataFactoryId
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    criteria: {
      'odata.type': 'Microsoft.Azure.Monitor.SingleResourceMultipleMetricCriteria'
      allOf: [
        {
          criterionType: 'StaticThresholdCriterion'
          name: 'PipelineFailedRuns'
          metricNamespace: 'Microsoft.DataFactory/factories'
          metricName: 'PipelineFailedRuns'
          dimensions: [
            {
              name: 'Name'
              operator: 'Include'
              values: [
                '*'
              ]
            }
          ]
          operator: 'GreaterThan'
          threshold: 0
          timeAggregation: 'Total'
        }
      ]
    }
    autoMitigate: true
    actions: [
      {
        actionGroupId: actionGroup.id
      }
    ]
  }
}

// ---------------------------------------------------------------------------------------------------------------
// (f)-(i): the app's pipeline and feed rules (core/src/ops/alerts/rules.rs), judged in Azure from App Insights.
// ---------------------------------------------------------------------------------------------------------------

// Per-hospital silence thresholds as a KQL dynamic literal.
var silentFeedOverrides = string(silentFeedByHospital)

// (f) Retries exhausted: patientflow evaluates `retries_exhausted` from the run ledger (a failed run whose
//     retry_count reached its budget) and logs `alert_fired: ... incident=retries_exhausted:<stage>` when the
//     incident opens and `alert_resolved: ...` when the stage recovers. The rule holds while the stage's latest such
//     line within the last 6 hours is a fired one.
resource retriesExhausted 'Microsoft.Insights/scheduledQueryRules@2022-06-15' = {
  name: '${namePrefix}-retries-exhausted'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: '${namePrefix}: stage retries exhausted'
    description: 'A patientflow stage failed after its last retry (ledger rule retries_exhausted), per stage.'
    enabled: true
    severity: 1
    scopes: [
      appInsightsId
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT6H'
    criteria: {
      allOf: [
        {
          query: '''
union isfuzzy=true
  (traces | project timestamp, message, customDimensions),
  (customEvents | project timestamp, message = name, customDimensions)
| where message contains "retries_exhausted"
| extend incident = coalesce(tostring(customDimensions.incident), extract(@"incident\W{1,3}(retries_exhausted:[\w.\-]+)", 1, message))
| extend kind = coalesce(tostring(customDimensions.kind), extract(@"alert_(fired|resolved)", 1, message))
| where incident startswith "retries_exhausted:" and kind in ("fired", "resolved")
| summarize arg_max(timestamp, kind) by incident
| where kind == "fired"
| extend stage = substring(incident, strlen("retries_exhausted:"))
| summarize open = count() by stage
'''
          timeAggregation: 'Total'
          metricMeasureColumn: 'open'
          dimensions: [
            {
              name: 'stage'
              operator: 'Include'
              values: [
                '*'
              ]
            }
          ]
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: {
      actionGroups: [
        actionGroup.id
      ]
      customProperties: {
        service: 'patientflow'
        alert: 'retries-exhausted'
      }
    }
  }
}

// (g) Gold refresh late: within the last 2 days Gold ran (a `patientflow.run.duration` sample with stage=gold, or a
//     Gold summary / failure log line) but no run succeeded or was skipped within goldLateMinutes.
resource goldRefreshLate 'Microsoft.Insights/scheduledQueryRules@2022-06-15' = {
  name: '${namePrefix}-gold-refresh-late'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: '${namePrefix}: Gold refresh late'
    description: 'No successful Gold refresh within ${goldLateMinutes} minutes (ledger rule gold_late).'
    enabled: true
    severity: 3
    scopes: [
      appInsightsId
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT6H'
    overrideQueryTimeRange: 'P2D'
    criteria: {
      allOf: [
        {
          // Multi-line strings take no interpolation: the threshold goes in with replace().
          query: replace('''
let lateAfter = __GOLD_LATE_MINUTES__m;
union isfuzzy=true
  (customMetrics
   | where name == "patientflow.run.duration" and tostring(customDimensions.stage) == "gold"
   | project timestamp, status = tostring(customDimensions.status), runs = toint(valueCount)),
  (traces
   | where message contains "stage gold " or message contains "pipeline_run_failed stage=gold "
   | extend status = iff(message contains "pipeline_run_failed", "failed", extract(@"stage gold (\w+)", 1, message))
   | project timestamp, status, runs = 1)
| where isnotempty(status)
| summarize runs = sum(runs), lastOk = maxif(timestamp, status in ("succeeded", "skipped"))
| where runs > 0 and (isnull(lastOk) or lastOk < ago(lateAfter))
| project stage = "gold", late = 1
''', '__GOLD_LATE_MINUTES__', string(goldLateMinutes))
          timeAggregation: 'Total'
          metricMeasureColumn: 'late'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: {
      actionGroups: [
        actionGroup.id
      ]
      customProperties: {
        service: 'patientflow'
        alert: 'gold-refresh-late'
      }
    }
  }
}

// (h) DQ breach: the latest `patientflow.quarantine.rate` sample of each source (one per Silver run) above
//     dqQuarantineRate. The app's minimum record count (PATIENTFLOW_ALERT_DQ_MIN_RECORDS) is applied by the app's
//     own rule only: the metric carries the rate, not the record count.
resource dqBreach 'Microsoft.Insights/scheduledQueryRules@2022-06-15' = {
  name: '${namePrefix}-dq-breach'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: '${namePrefix}: DQ quarantine rate above threshold'
    description: 'A source\'s quarantine rate in the latest Silver run is above ${dqQuarantineRate} (ledger rule dq_breach), per source.'
    enabled: true
    severity: 3
    scopes: [
      appInsightsId
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT1H'
    criteria: {
      allOf: [
        {
          query: replace('''
let threshold = todouble("__DQ_RATE__");
customMetrics
| where name == "patientflow.quarantine.rate"
| extend source = tostring(customDimensions.source)
| where isnotempty(source)
| extend rate = iff(valueCount > 0, valueSum / valueCount, value)
| summarize arg_max(timestamp, rate) by source
| where rate > threshold
| summarize breaches = count() by source
''', '__DQ_RATE__', dqQuarantineRate)
          timeAggregation: 'Total'
          metricMeasureColumn: 'breaches'
          dimensions: [
            {
              name: 'source'
              operator: 'Include'
              values: [
                '*'
              ]
            }
          ]
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: {
      actionGroups: [
        actionGroup.id
      ]
      customProperties: {
        service: 'patientflow'
        alert: 'dq-breach'
      }
    }
  }
}

// (i) A hospital's feed silent or late: every ingested ADT batch records `patientflow.ingest.lag` (seconds, dim
//     hospital_id). A hospital seen in the last 2 days fires when its newest sample is older than its threshold
//     (silentFeedMinutes, or its entry in silentFeedByHospital), or when its mean lag over the last 15 minutes is
//     above that same threshold (messages still arrive, but that late).
resource hospitalFeedSilent 'Microsoft.Insights/scheduledQueryRules@2022-06-15' = {
  name: '${namePrefix}-hospital-feed-silent'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: '${namePrefix}: hospital ADT feed silent or late'
    description: 'A hospital\'s ADT feed sent nothing (or only late messages) for longer than its threshold (default ${silentFeedMinutes} min; ledger rule silent_feed), per hospital.'
    enabled: true
    severity: 2
    scopes: [
      appInsightsId
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT6H'
    overrideQueryTimeRange: 'P2D'
    criteria: {
      allOf: [
        {
          query: replace(replace('''
let defaultMinutes = __SILENT_MINUTES__;
let overrides = dynamic(__SILENT_OVERRIDES__);
customMetrics
| where name == "patientflow.ingest.lag"
| extend hospital_id = tostring(customDimensions.hospital_id)
| where isnotempty(hospital_id)
// The smallest lag any instance reports: an instance that no longer owns the partition keeps reporting a
// growing lag for the hospitals it saw, while the owner reports the live one.
| extend lagSeconds = iff(valueCount > 0, valueSum / valueCount, value)
| summarize lastSeen = max(timestamp), recentLag = minif(lagSeconds, timestamp > ago(15m)) by hospital_id
| extend limitMinutes = coalesce(toint(overrides[hospital_id]), defaultMinutes)
| extend silentMinutes = datetime_diff("minute", now(), lastSeen)
| where silentMinutes > limitMinutes or (isnotnull(recentLag) and recentLag > limitMinutes * 60)
| summarize silent = count() by hospital_id
''', '__SILENT_MINUTES__', string(silentFeedMinutes)), '__SILENT_OVERRIDES__', silentFeedOverrides)
          timeAggregation: 'Total'
          metricMeasureColumn: 'silent'
          dimensions: [
            {
              name: 'hospital_id'
              operator: 'Include'
              values: [
                '*'
              ]
            }
          ]
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: {
      actionGroups: [
        actionGroup.id
      ]
      customProperties: {
        service: 'patientflow'
        alert: 'hospital-feed-silent'
      }
    }
  }
}

output actionGroupId string = actionGroup.id
