// patientflow — Azure infrastructure (resource-group scope).
//
//   az deployment group create -g <rg> -f bicep/main.bicep -p bicep/main.parameters.json            (pass 1)
//   ...publish the Functions package...
//   az deployment group create -g <rg> -f bicep/main.bicep -p bicep/main.parameters.json \
//      -p wireRuntimeKeys=true adfFunctionKey=<secret>                                              (pass 2)
//
// Names default to <kind>-<baseName>-<environmentName>; they must stay in step with adf/ (factory file name,
// linked-service URLs, global parameters) and with local.settings.sample.json keys. See docs/deployment.md.

targetScope = 'resourceGroup'

// ---------------------------------------------------------------------------------------------------------------
// Parameters
// ---------------------------------------------------------------------------------------------------------------

@description('Azure region for all regional resources.')
param location string = resourceGroup().location

@description('Short product name used in resource names.')
@minLength(2)
@maxLength(12)
param baseName string = 'patientflow'

@description('Environment suffix used in resource names (dev, test, prod).')
@minLength(2)
@maxLength(6)
param environmentName string = 'prod'

@description('Storage account (ADLS Gen2) name: 3-24 lowercase letters/digits, globally unique.')
@minLength(3)
@maxLength(24)
param storageAccountName string = toLower('st${baseName}${environmentName}')

@description('Function App name.')
param functionAppName string = 'func-${baseName}-${environmentName}'

@description('App Service (Elastic Premium) plan name.')
param planName string = 'plan-${baseName}-${environmentName}'

@description('Event Hubs namespace name.')
param eventHubsNamespaceName string = 'evhns-${baseName}-${environmentName}'

@description('ADT event hub name (app setting EventHubName).')
param eventHubName string = 'adt-events'

@description('Partitions of the ADT hub.')
@minValue(1)
@maxValue(32)
param eventHubPartitionCount int = 4

@description('Retention of the ADT hub in days (Standard tier max 7).')
@minValue(1)
@maxValue(7)
param eventHubRetentionDays int = 7

@description('Log Analytics workspace name.')
param logAnalyticsName string = 'log-${baseName}-${environmentName}'

@description('Application Insights name.')
param appInsightsName string = 'appi-${baseName}-${environmentName}'

@description('Key Vault name (3-24 characters).')
@maxLength(24)
param keyVaultName string = 'kv-${baseName}-${environmentName}'

@description('Data Factory name; must match adf/factory/<name>.json.')
param dataFactoryName string = 'adf-${baseName}-${environmentName}'

@description('Action group name.')
param actionGroupName string = 'ag-${baseName}-ops'

@description('Container holding the Delta lake.')
param lakeContainerName string = 'lake'

@description('Folder inside the lake container that is the lake root.')
param lakeRootPath string = 'mha'

@description('Container for EHR extracts / reference files (blob trigger path landing/{name}).')
param landingContainerName string = 'landing'

@description('Elastic Premium SKU.')
@allowed([
  'EP1'
  'EP2'
  'EP3'
])
param planSku string = 'EP1'

@description('Always-ready instances of the Function App.')
@minValue(1)
param alwaysReadyInstances int = 1

@description('Maximum elastic scale-out.')
@minValue(1)
param maximumElasticWorkerCount int = 10

@description('NCRONTAB (6 fields, UTC) for SilverRefresh; app setting SILVER_SCHEDULE.')
param silverSchedule string = '0 */5 * * * *'

@description('Entra ID app registration (client) id used by Easy Auth; its Application ID URI must be api://<clientId>. Ignored when deployEntraApp is true.')
param easyAuthClientId string = ''

@description('Create the app registration (modules/entra-app.bicep: app roles PatientFlow.*) with the Microsoft Graph Bicep extension instead of passing easyAuthClientId. Needs Graph rights for the deploying principal.')
param deployEntraApp bool = false

@description('Unique name of the app registration created when deployEntraApp is true.')
param entraAppUniqueName string = '${baseName}-${environmentName}-api'

@description('Name of the Key Vault secret holding the security settings JSON (Function App setting PATIENTFLOW_SECURITY is a Key Vault reference to it).')
param securitySettingsSecretName string = 'patientflow-security'

@description('Optional security settings JSON written to that secret ({"trust_easy_auth": true, ...}; see bicep/modules/functionapp.bicep). Empty = the secret is managed out of band.')
@secure()
param securitySettingsJson string = ''

@description('Optional client secret of the Easy Auth app registration.')
@secure()
param easyAuthClientSecret string = ''

@description('Operator e-mail for the action group.')
param opsEmail string

@description('Operator webhook (common alert schema): the action group\'s webhook receiver, the ADF failure path (global parameter alertWebhookUrl) and PATIENTFLOW_ALERT_WEBHOOK_URL for patientflow\'s own alerts.')
param alertWebhookUrl string

@description('Retry budget of a stage for retries_exhausted (PATIENTFLOW_ALERT_MAX_RETRIES; the app default).')
@minValue(0)
param alertMaxRetries int = 3

@description('Minutes without a successful Gold refresh before gold_late / gold-refresh-late (PATIENTFLOW_ALERT_GOLD_LATE_MINUTES).')
@minValue(5)
@maxValue(2880)
param alertGoldLateMinutes int = 90

@description('Quarantine rate (0-1, decimal text) above which dq_breach / dq-breach fires (PATIENTFLOW_ALERT_DQ_RATE).')
param alertDqQuarantineRate string = '0.05'

@description('Records a source needs in a Silver run for the app\'s dq_breach (PATIENTFLOW_ALERT_DQ_MIN_RECORDS).')
@minValue(0)
param alertDqMinRecords int = 20

@description('Minutes without an ADT message from a hospital before silent_feed / hospital-feed-silent (PATIENTFLOW_ALERT_SILENT_FEED_MINUTES).')
@minValue(5)
@maxValue(2880)
param alertSilentFeedMinutes int = 60

@description('Per-hospital silence thresholds in minutes, e.g. { MHA01: 30 } (PATIENTFLOW_ALERT_SILENT_FEED_BY_HOSPITAL).')
param alertSilentFeedByHospital object = {}

@description('Pass 2 switch: create the ADF host key + Key Vault secret and the Event Grid subscription. Needs the code published first.')
param wireRuntimeKeys bool = false

@description('Pass 2: value of the Functions host key `adf` (for example `openssl rand -hex 32`).')
@secure()
param adfFunctionKey string = ''

@description('GitHub account/organisation for ADF Git integration (empty = no Git integration).')
param adfGitAccountName string = ''

@description('GitHub repository for ADF Git integration (root folder /adf).')
param adfGitRepositoryName string = ''

@description('ADF collaboration branch.')
param adfGitCollaborationBranch string = 'main'

@description('Power BI workspace (group) id holding the PatientFlow semantic model; ADF global parameter powerBiWorkspaceId.')
param powerBiWorkspaceId string = ''

@description('Power BI semantic model (dataset) id refreshed after each Gold refresh; ADF global parameter powerBiDatasetId.')
param powerBiDatasetId string = ''

@description('Log retention in days.')
param logRetentionInDays int = 30

@description('Tags applied to every resource.')
param tags object = {
  product: 'patientflow'
  environment: environmentName
}

// ---------------------------------------------------------------------------------------------------------------
// Derived values
// ---------------------------------------------------------------------------------------------------------------

var lakeUrl = 'abfss://${lakeContainerName}@${storageAccountName}.dfs.${environment().suffixes.storage}/${lakeRootPath}'
// Known before the Function App exists (the app registration's sign-in callback needs it).
var functionAppDefaultHostName = '${functionAppName}.azurewebsites.net'
var entraAppIdentifierUri = 'api://${tenant().tenantId}/${entraAppUniqueName}'
var effectiveClientId = deployEntraApp ? entraApp.outputs.appId : easyAuthClientId
var functionAppAudience = deployEntraApp ? entraAppIdentifierUri : 'api://${easyAuthClientId}'
var functionKeySecretName = 'patientflow-adf-function-key'

// ---------------------------------------------------------------------------------------------------------------
// Modules
// ---------------------------------------------------------------------------------------------------------------

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  params: {
    location: location
    logAnalyticsName: logAnalyticsName
    appInsightsName: appInsightsName
    retentionInDays: logRetentionInDays
    tags: tags
  }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  params: {
    location: location
    storageAccountName: storageAccountName
    lakeContainerName: lakeContainerName
    landingContainerName: landingContainerName
    tags: tags
  }
}

module eventHubs 'modules/eventhubs.bicep' = {
  name: 'eventhubs'
  params: {
    location: location
    namespaceName: eventHubsNamespaceName
    eventHubName: eventHubName
    partitionCount: eventHubPartitionCount
    messageRetentionInDays: eventHubRetentionDays
    tags: tags
  }
}

module keyVault 'modules/keyvault.bicep' = {
  name: 'keyvault'
  params: {
    location: location
    keyVaultName: keyVaultName
    securitySettingsSecretName: securitySettingsSecretName
    securitySettingsJson: securitySettingsJson
    tags: tags
  }
}

module entraApp 'modules/entra-app.bicep' = if (deployEntraApp) {
  name: 'entra-app'
  params: {
    uniqueName: entraAppUniqueName
    displayName: 'PatientFlow (${environmentName})'
    identifierUri: entraAppIdentifierUri
    functionAppHostName: functionAppDefaultHostName
  }
}

module functionApp 'modules/functionapp.bicep' = {
  name: 'functionapp'
  params: {
    location: location
    functionAppName: functionAppName
    planName: planName
    planSku: planSku
    alwaysReadyInstances: alwaysReadyInstances
    maximumElasticWorkerCount: maximumElasticWorkerCount
    storageAccountName: storage.outputs.name
    appInsightsConnectionString: monitoring.outputs.appInsightsConnectionString
    eventHubsFullyQualifiedNamespace: eventHubs.outputs.fullyQualifiedNamespace
    eventHubName: eventHubs.outputs.eventHubName
    lakeUrl: lakeUrl
    landingContainerName: storage.outputs.landingContainerName
    silverSchedule: silverSchedule
    alertWebhookUrl: alertWebhookUrl
    easyAuthClientId: effectiveClientId
    easyAuthClientSecret: easyAuthClientSecret
    easyAuthAllowedAudiences: deployEntraApp ? [
      entraAppIdentifierUri
    ] : []
    keyVaultName: keyVault.outputs.name
    securitySettingsSecretName: securitySettingsSecretName
    alertMaxRetries: alertMaxRetries
    alertGoldLateMinutes: alertGoldLateMinutes
    alertDqQuarantineRate: alertDqQuarantineRate
    alertDqMinRecords: alertDqMinRecords
    alertSilentFeedMinutes: alertSilentFeedMinutes
    alertSilentFeedByHospital: alertSilentFeedByHospital
    tags: tags
  }
}

module dataFactory 'modules/datafactory.bicep' = {
  name: 'datafactory'
  params: {
    location: location
    dataFactoryName: dataFactoryName
    functionAppHostName: functionApp.outputs.defaultHostName
    functionAppAudience: functionAppAudience
    keyVaultUri: keyVault.outputs.uri
    storageDfsEndpoint: storage.outputs.dfsEndpoint
    functionKeySecretName: functionKeySecretName
    logAnalyticsWorkspaceId: monitoring.outputs.workspaceId
    gitAccountName: adfGitAccountName
    gitRepositoryName: adfGitRepositoryName
    gitCollaborationBranch: adfGitCollaborationBranch
    powerBiWorkspaceId: powerBiWorkspaceId
    powerBiDatasetId: powerBiDatasetId
    alertWebhookUrl: alertWebhookUrl
    tags: tags
  }
}

module roles 'modules/roles.bicep' = {
  name: 'roles'
  params: {
    storageAccountName: storage.outputs.name
    eventHubsNamespaceName: eventHubs.outputs.namespaceName
    eventHubName: eventHubs.outputs.eventHubName
    keyVaultName: keyVault.outputs.name
    functionAppPrincipalId: functionApp.outputs.principalId
    dataFactoryPrincipalId: dataFactory.outputs.principalId
  }
}

module alerts 'modules/alerts.bicep' = {
  name: 'alerts'
  params: {
    location: location
    actionGroupName: actionGroupName
    opsEmail: opsEmail
    alertWebhookUrl: alertWebhookUrl
    appInsightsId: monitoring.outputs.appInsightsId
    eventHubsNamespaceId: eventHubs.outputs.namespaceId
    eventHubName: eventHubs.outputs.eventHubName
    functionAppHostName: functionApp.outputs.defaultHostName
    dataFactoryId: dataFactory.outputs.id
    goldLateMinutes: alertGoldLateMinutes
    dqQuarantineRate: alertDqQuarantineRate
    silentFeedMinutes: alertSilentFeedMinutes
    silentFeedByHospital: alertSilentFeedByHospital
    namePrefix: '${baseName}-${environmentName}'
    tags: tags
  }
}

module runtimeKeys 'modules/runtime-keys.bicep' = if (wireRuntimeKeys) {
  name: 'runtime-keys'
  params: {
    location: location
    functionAppName: functionApp.outputs.name
    storageAccountName: storage.outputs.name
    keyVaultName: keyVault.outputs.name
    landingContainerName: storage.outputs.landingContainerName
    blobTriggerFunctionName: 'EhrBatchIngest'
    adfFunctionKey: adfFunctionKey
    functionKeySecretName: functionKeySecretName
    tags: tags
  }
  dependsOn: [
    roles
  ]
}

// ---------------------------------------------------------------------------------------------------------------
// Outputs
// ---------------------------------------------------------------------------------------------------------------

@description('Function App default host name (https://<this>/api/...).')
output functionAppHostName string = functionApp.outputs.defaultHostName

output functionAppName string = functionApp.outputs.name
output functionAppPrincipalId string = functionApp.outputs.principalId
output storageAccountName string = storage.outputs.name
output lakeUrl string = lakeUrl
output eventHubsNamespace string = eventHubs.outputs.fullyQualifiedNamespace
output eventHubName string = eventHubs.outputs.eventHubName
output keyVaultUri string = keyVault.outputs.uri
output dataFactoryName string = dataFactory.outputs.name
output dataFactoryPrincipalId string = dataFactory.outputs.principalId
output actionGroupId string = alerts.outputs.actionGroupId
output appInsightsName string = monitoring.outputs.appInsightsName

@description('Client id Easy Auth validates (the created app registration\'s when deployEntraApp is true).')
output easyAuthClientId string = effectiveClientId
