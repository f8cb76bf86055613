// Elastic Premium (Linux) plan + Function App running the `patientflow` binary as a custom handler,
// system-assigned identity, app settings (same keys as local.settings.sample.json) and Easy Auth (authsettingsV2).

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

@description('Optional client secret of that app registration (enables the auth-code flow and the token store).')
@secure()
param easyAuthClientSecret string = ''

param tags object = {}

var contentShareName = take(toLower(replace(functionAppName, '-', '')), 63)
var easyAuthSecretSettingName = 'MICROSOFT_PROVIDER_AUTHENTICATION_SECRET'

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
    name: 'PATIENTFLOW_ALERT_WEBHOOK'
    value: alertWebhookUrl
  }
  {
    name: 'PATIENTFLOW_AUTH_MODE'
    value: 'easyauth'
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
// Browsers are redirected to Entra ID sign-in (dashboard); daemon callers (ADF) send a bearer token for
// api://<clientId> obtained with their managed identity. The handler reads X-MS-CLIENT-PRINCIPAL
// (PATIENTFLOW_AUTH_MODE=easyauth).
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
      unauthenticatedClientAction: 'RedirectToLoginPage'
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
          allowedAudiences: [
            'api://${easyAuthClientId}'
            easyAuthClientId
          ]
        }
      }
    }
    login: {
      tokenStore: {
        enabled: !empty(easyAuthClientSecret)
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
