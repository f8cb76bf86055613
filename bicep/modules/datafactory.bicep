// Azure Data Factory with a system-assigned identity, the linked services the pipelines in adf/ use
// (same names and shapes as adf/linkedService/*.json), optional Git integration pointing at the repo's /adf folder,
// and diagnostic logs to Log Analytics.

@description('Azure region.')
param location string

@description('Data Factory name; must match adf/factory/<name>.json.')
param dataFactoryName string

@description('Function App default host name, e.g. func-x.azurewebsites.net.')
param functionAppHostName string

@description('Audience ADF requests with its managed identity (Easy Auth), api://<clientId>.')
param functionAppAudience string

@description('Key Vault URI, e.g. https://kv-x.vault.azure.net/.')
param keyVaultUri string

@description('Power BI workspace (group) id of the PatientFlow semantic model (PowerBIDatasetRefresh).')
param powerBiWorkspaceId string = ''

@description('Power BI semantic model (dataset) id refreshed after each Gold refresh (PowerBIDatasetRefresh).')
param powerBiDatasetId string = ''

@description('Operator webhook (common alert schema); global parameter alertWebhookUrl, POSTed by every pipeline\'s failure path.')
param alertWebhookUrl string

@description('ADLS Gen2 DFS endpoint, e.g. https://<account>.dfs.core.windows.net/.')
param storageDfsEndpoint string

@description('Name of the Key Vault secret holding the Functions host key for ADF.')
param functionKeySecretName string = 'patientflow-adf-function-key'

@description('Log Analytics workspace for ADF run logs.')
param logAnalyticsWorkspaceId string

@description('GitHub account/organisation for ADF Git integration; empty = live mode only.')
param gitAccountName string = ''

@description('GitHub repository name for ADF Git integration.')
param gitRepositoryName string = ''

@description('Collaboration branch.')
param gitCollaborationBranch string = 'main'

param tags object = {}

var gitConfig = empty(gitRepositoryName) ? {} : {
  repoConfiguration: {
    type: 'FactoryGitHubConfiguration'
    accountName: gitAccountName
    repositoryName: gitRepositoryName
    collaborationBranch: gitCollaborationBranch
    rootFolder: '/adf'
  }
}

resource factory 'Microsoft.DataFactory/factories@2018-06-01' = {
  name: dataFactoryName
  location: location
  tags: tags
  identity: {
    type: 'SystemAssigned'
  }
  properties: union({
    publicNetworkAccess: 'Enabled'
    globalParameters: {
      functionAppHostName: {
        type: 'String'
        value: functionAppHostName
      }
      functionAppAudience: {
        type: 'String'
        value: functionAppAudience
      }
      keyVaultUri: {
        type: 'String'
        value: keyVaultUri
      }
      powerBiWorkspaceId: {
        type: 'String'
        value: powerBiWorkspaceId
      }
      powerBiDatasetId: {
        type: 'String'
        value: powerBiDatasetId
      }
      alertWebhookUrl: {
        type: 'String'
        value: alertWebhookUrl
      }
    }
  }, gitConfig)
}

resource lsKeyVault 'Microsoft.DataFactory/factories/linkedservices@2018-06-01' = {
  parent: factory
  name: 'ls_keyvault'
  properties: {
    type: 'AzureKeyVault'
    annotations: []
    typeProperties: {
      baseUrl: keyVaultUri
    }
  }
}

resource lsFunctionApp 'Microsoft.DataFactory/factories/linkedservices@2018-06-01' = {
  parent: factory
  name: 'ls_functionapp'
  properties: {
    type: 'AzureFunction'
    annotations: []
    typeProperties: {
      functionAppUrl: 'https://${functionAppHostName}'
      functionKey: {
        type: 'AzureKeyVaultSecret'
        store: {
          referenceName: lsKeyVault.name
          type: 'LinkedServiceReference'
        }
        secretName: functionKeySecretName
      }
      authentication: 'MSI'
      resourceId: functionAppAudience
    }
  }
}

resource lsAdls 'Microsoft.DataFactory/factories/linkedservices@2018-06-01' = {
  parent: factory
  name: 'ls_adls'
  properties: {
    type: 'AzureBlobFS'
    annotations: []
    typeProperties: {
      url: storageDfsEndpoint
    }
  }
}

resource diagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: factory
  properties: {
    workspaceId: logAnalyticsWorkspaceId
    logAnalyticsDestinationType: 'Dedicated'
    logs: [
      {
        category: 'PipelineRuns'
        enabled: true
      }
      {
        category: 'ActivityRuns'
        enabled: true
      }
      {
        category: 'TriggerRuns'
        enabled: true
      }
    ]
  }
}

output id string = factory.id
output name string = factory.name
output principalId string = factory.identity.principalId
