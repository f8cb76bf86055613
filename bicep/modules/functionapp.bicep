// Elastic Premium (Linux) plan + Function App running the `patientflow` binary as a custom handler,
// system-assigned identity, app settings (same keys as local.settings.sample.json) and Easy Auth (authsettingsV2).
//
// Access control: Easy Auth (Entra ID) rejects every unauthenticated request with 401 before it reaches the app,
// and injects X-MS-CLIENT-PRINCIPAL. The app trusts that header only because the security settings JSON
// (PATIENTFLOW_SECURITY, a Key Vault reference to the secret `securitySettingsSecretName`; format in
// core/src/security/settings.rs and docs/security.md) says `"trust_easy_auth": true`, and it must keep
// `"anonymous_demo": false` (the default). A minimal secret:
//   {"trust_easy_auth": true, "pseudonym_key": "<32+ random bytes>",
//    "tokens": {"issuer": "https://login.microsoftonline.com/<tenant>/v2.0", "audience": "api://<clientId>"},
//    "app_roles": {"PatientFlow.Analyst": {"role": "analyst"}, "PatientFlow.Operator": {"role": "operator"},
//                  "PatientFlow.Admin": {"role": "admin"}, ...}}
// Nothing here enables the anonymous demo mode.

@description('Azure region.')
param location string

@description('Function App name; the default host name is <name>.azurewebsites.net.')
param functionAppName string

@description('App Service plan name.')
param planName string

@description('Elastic Premium SKU. EP plans give 30 min default timeouts, always-ready instances and no cold start for the 202-then-callback Gold refresh.')
@allowed([
  'EP1'
  'EP2'
  'EP3'
])
param planSku string = 'EP1'

@description('Always-ready instances (at least 1 keeps the Gold refresh worker and timers warm).')
@minValue(1)
@maxValue(20)
param alwaysReadyInstances int = 1

@description('Upper bound of elastic scale-out.')
@minValue(1)
@maxValue(100)
param maximumElasticWorkerCount int = 10

@description('Storage account used as AzureWebJobsStorage (also holds the lake and landing containers).')
param storageAccountName string

@description('Application Insights connection string.')
param appInsightsConnectionString string

@description('Event Hubs namespace FQDN, e.g. evhns-x.servicebus.windows.net (identity-based trigger connection).')
param eventHubsFullyQualifiedNamespace string

@description('Event hub name, read by AdtIngest as %EventHubName%.')
param eventHubName string

@description('Lake URL, e.g. abfss://lake@<account>.dfs.core.windows.net/mha.')
param lakeUrl string

@description('Landing container name; must match the blob trigger path in functions/EhrBatchIngest/function.json.')
param landingContainerName string

@description('NCRONTAB (6 fields) for SilverRefresh.')
param silverSchedule string

@description('Webhook that receives patientflow\'s own alerts (common alert schema shape).')
param alertWebhookUrl string

@description('Entra ID application (client) id of the Easy Auth app registration.')
param easyAuthClientId string

@description('Extra audiences Easy Auth accepts besides api://<clientId> and <clientId> (e.g. the Application ID URI of entra-app.bicep).')
param easyAuthAllowedAudiences array = []

@description('Key Vault holding the security settings secret (the Function App identity reads it: Key Vault Secrets User, roles.bicep).')
param keyVaultName string

@description('Name of the Key Vault secret whose value is the security settings JSON (PATIENTFLOW_SECURITY).')
param securitySettingsSecretName string = 'patientflow-security'

@description('App alert rule settings (PATIENTFLOW_ALERT_*), the same values the Azure alert rules use (alerts.bicep).')
param alertMaxRetries int = 3

@description('PATIENTFLOW_ALERT_GOLD_LATE_MINUTES.')
param alertGoldLateMinutes int = 90

@description('PATIENTFLOW_ALERT_DQ_RATE (0-1, decimal text).')
param alertDqQuarantineRate string = '0.05'

@description('PATIENTFLOW_ALERT_DQ_MIN_RECORDS.')
param alertDqMinRecords int = 20

@description('PATIENTFLOW_ALERT_SILENT_FEED_MINUTES.')
param alertSilentFeedMinutes int = 60

@description('PATIENTFLOW_ALERT_SILENT_FEED_BY_HOSPITAL as an object, e.g. { MHA01: 30 }.')
param alertSilentFeedByHospital object = {}

@description('Optional client secret of that app registration (enables the auth-code flow and the token store).')
@secure()
param easyAuthClientSecret string = ''

param tags object = {}

var contentShareName = take(toLower(replace(functionAppName, '-', '')), 63)
var easyAuthSecretSettingName = 'MICROSOFT_PROVIDER_AUTHENTICATION_SECRET'
// App Service resolves this with the app's system-assigned identity at start-up (and on secret rotation).
var securitySettingsReference = '@Microsoft.KeyVault(VaultName=${keyVaultName};SecretName=${securitySettingsSecretName})'
var silentFeedByHospitalText = join(map(items(alertSilentFeedByHospital), h => '${h.key}=${h.value}'), ',')

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

var storageConnectionString = 'DefaultEndpointsProtocol=https;AccountName=${storage.name};AccountKey=${storage.listKeys().keys[0].value};EndpointSuffix=${environment().suffixes.storage}'

var baseAppSettings = [
  // --- Functions runtime ---
  {
    name: 'FUNCTIONS_EXTENSION_VERSION'
    value: '~4'
  }
  {
    name: 'FUNCTIONS_WORKER_RUNTIME'
    value: 'custom'
  }
  {
    name: 'AzureWebJobsStorage'
    value: storageConnectionString
  }
  {
    name: 'WEBSITE_CONTENTAZUREFILECONNECTIONSTRING'
    value: storageConnectionString
  }
  {
    name: 'WEBSITE_CONTENTSHARE'
    value: contentShareName
  }
  {
    // Zip deploy / `func azure functionapp publish` run from the package; kept here so an infra redeploy
    // (which replaces the whole app-settings list) does not unset it.
    name: 'WEBSITE_RUN_FROM_PACKAGE'
    value: '1'
  }
  {
    // The package already contains the compiled binary; no Oryx build.
    name: 'SCM_DO_BUILD_DURING_DEPLOYMENT'
    value: 'false'
  }
  {
    name: 'APPLICATIONINSIGHTS_CONNECTION_STRING'
    value: appInsightsConnectionString
  }
  // --- Trigger connections ---
  {
    // Identity-based connection for the `EventHubConnection` binding (locally: a connection string under the bare key).
    name: 'EventHubConnection__fullyQualifiedNamespace'
    value: eventHubsFullyQualifiedNamespace
  }
  {
    name: 'EventHubName'
    value: eventHubName
  }
  {
    name: 'SILVER_SCHEDULE'
    value: silverSchedule
  }
  // --- patientflow settings (read by the binary) ---
  {
    name: 'PATIENTFLOW_LAKE'
    value: lakeUrl
  }
  {
    name: 'PATIENTFLOW_LANDING_CONTAINER'
    value: landingContainerName
  }
  {
    // The app's own alerts (core/src/ops/alerts): the variable the app reads.
    name: 'PATIENTFLOW_ALERT_WEBHOOK_URL'
    value: alertWebhookUrl
  }
  {
    name: 'PATIENTFLOW_ALERT_MAX_RETRIES'
    value: string(alertMaxRetries)
  }
  {
    name: 'PATIENTFLOW_ALERT_GOLD_LATE_MINUTES'
    value: string(alertGoldLateMinutes)
  }
  {
    name: 'PATIENTFLOW_ALERT_DQ_RATE'
    value: alertDqQuarantineRate
  }
  {
    name: 'PATIENTFLOW_ALERT_DQ_MIN_RECORDS'
    value: string(alertDqMinRecords)
  }
  {
    name: 'PATIENTFLOW_ALERT_SILENT_FEED_MINUTES'
    value: string(alertSilentFeedMinutes)
  }
  {
    name: 'PATIENTFLOW_ALERT_SILENT_FEED_BY_HOSPITAL'
    value: silentFeedByHospitalText
  }
  {
    // Security settings JSON (trust_easy_auth true, anonymous_demo false, entitlements, pseudonym key).
    name: 'PATIENTFLOW_SECURITY'
    value: securitySettingsReference
  }
  {
    name: 'AZURE_STORAGE_USE_EMULATOR'
    value: 'false'
  }
]

var easyAuthSecretSettings = empty(easyAuthClientSecret) ? [] : [
  {
    name: easyAuthSecretSettingName
    value: easyAuthClientSecret
  }
]

resource plan 'Microsoft.Web/serverfarms@2023-12-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'elastic'
  sku: {
    name: planSku
    tier: 'ElasticPremium'
  }
  properties: {
    reserved: true // Linux
    maximumElasticWorkerCount: maximumElasticWorkerCount
  }
}

resource functionApp 'Microsoft.Web/sites@2023-12-01' = {
  name: functionAppName
  location: location
  tags: tags
  kind: 'functionapp,linux'
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    serverFarmId: plan.id
    reserved: true
    httpsOnly: true
    clientAffinityEnabled: false
    siteConfig: {
      // Custom handler stack: FUNCTIONS_WORKER_RUNTIME=custom with an empty linuxFxVersion
      // (the platform's "Custom Handler" stack definition sets exactly these two values).
      linuxFxVersion: ''
      minimumElasticInstanceCount: alwaysReadyInstances
      functionAppScaleLimit: maximumElasticWorkerCount
      healthCheckPath: '/api/health'
      http20Enabled: true
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
      use32BitWorkerProcess: false
      appSettings: concat(baseAppSettings, easyAuthSecretSettings)
    }
  }
}

// Easy Auth in front of every route except the anonymous health probe and the Event Grid blob-trigger webhook.
// An unauthenticated request gets 401 (no redirect: API and daemon callers must not receive a login page);
// browsers sign in at /.auth/login/aad (the dashboard links there) and keep the session through the token store.
// Daemon callers (ADF) send a bearer token for api://<clientId> obtained with their managed identity. The handler
// reads X-MS-CLIENT-PRINCIPAL because the security settings say trust_easy_auth (see the top of this file).
resource authSettings 'Microsoft.Web/sites/config@2023-12-01' = {
  parent: functionApp
  name: 'authsettingsV2'
  properties: {
    platform: {
      enabled: true
      runtimeVersion: '~1'
    }
    globalValidation: {
      requireAuthentication: true
      unauthenticatedClientAction: 'Return401'
      redirectToProvider: 'azureactivedirectory'
      excludedPaths: [
        '/api/health'
        '/runtime/webhooks/blobs'
      ]
    }
    identityProviders: {
      azureActiveDirectory: {
        enabled: true
        registration: union({
          openIdIssuer: '${environment().authentication.loginEndpoint}${tenant().tenantId}/v2.0'
          clientId: easyAuthClientId
        }, empty(easyAuthClientSecret) ? {} : {
          clientSecretSettingName: easyAuthSecretSettingName
        })
        validation: {
          allowedAudiences: union([
            'api://${easyAuthClientId}'
            easyAuthClientId
          ], easyAuthAllowedAudiences)
        }
      }
    }
    login: {
      tokenStore: {
        enabled: true
        tokenRefreshExtensionHours: 72
      }
    }
    httpSettings: {
      requireHttps: true
      forwardProxy: {
        convention: 'NoProxy'
      }
    }
  }
}

output id string = functionApp.id
output name string = functionApp.name
output defaultHostName string = functionApp.properties.defaultHostName
output principalId string = functionApp.identity.principalId
