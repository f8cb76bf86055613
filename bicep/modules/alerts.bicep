// Operator alerting: one action group (email + webhook, both with the common alert schema) and the alert rules.
//   (a) function-failures      log alert: failed `requests` per function (operation_Name), 5 min window
//   (b) pipeline-run-failed    log alert: structured log line / custom event `pipeline_run_failed`, per stage
//   (c) adt-feed-silent        metric alert: Event Hubs IncomingMessages < 1 over 30 min on the ADT hub
//   (d) health-availability    standard availability test on /api/health from 3 US locations + metric alert
//   (e) adf-pipeline-failed    metric alert: Data Factory PipelineFailedRuns > 0 per pipeline name
// Log alerts are stateful (autoMitigate): one alert per incident per dimension value and a Resolved notice once a
// window is clean. Per-hospital feed silence, DQ-rate breaches and department overload are raised by patientflow
// itself and POSTed to PATIENTFLOW_ALERT_WEBHOOK (same receiver URL as the webhook below).

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
//     or a customEvent with that name). The stage is taken from customDimensions.stage or from the line itself
//     (`stage=silver` or `"stage":"silver"`).
resource pipelineRunFailed 'Microsoft.Insights/scheduledQueryRules@2022-06-15' = {
  name: '${namePrefix}-pipeline-run-failed'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: '${namePrefix}: pipeline run failed'
    description: 'A patientflow stage run ended with status failed (structured log line pipeline_run_failed).'
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
//     detects that itself from Bronze and alerts through PATIENTFLOW_ALERT_WEBHOOK.
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

output actionGroupId string = actionGroup.id
