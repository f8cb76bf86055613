// Second-pass resources: they need a running Functions host with the code published, so main.bicep deploys this
// module only with wireRuntimeKeys=true (see docs/deployment.md, "Pass 2").
//   - host key `adf` on the Function App, and the same value as Key Vault secret `patientflow-adf-function-key`
//     (read by ADF's ls_functionapp and by the GoldRefresh pipeline's WebHook header)
//   - Event Grid system topic on the storage account + subscription delivering BlobCreated events for the landing
//     container to the blob extension's webhook (EhrBatchIngest is a blobTrigger with source: EventGrid).
//     The blobs_extension system key exists only after a function with an Event Grid blob trigger has loaded.

@description('Azure region of the storage account.')
param location string

param functionAppName string
param storageAccountName string
param keyVaultName string

@description('Landing container watched by EhrBatchIngest.')
param landingContainerName string

@description('Function holding the Event Grid blob trigger.')
param blobTriggerFunctionName string = 'EhrBatchIngest'

@description('Value of the `adf` host key (e.g. `openssl rand -hex 32`). Empty = leave the key and the secret alone.')
@secure()
param adfFunctionKey string = ''

@description('Key Vault secret name for the ADF host key.')
param functionKeySecretName string = 'patientflow-adf-function-key'

param tags object = {}

resource functionApp 'Microsoft.Web/sites@2023-12-01' existing = {
  name: functionAppName
}

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
}

#disable-next-line BCP081
resource adfHostKey 'Microsoft.Web/sites/host/functionKeys@2022-09-01' = if (!empty(adfFunctionKey)) {
  name: '${functionApp.name}/default/adf'
  properties: {
    name: 'adf'
    value: adfFunctionKey
  }
}

resource adfKeySecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(adfFunctionKey)) {
  parent: vault
  name: functionKeySecretName
  properties: {
    value: adfFunctionKey
    contentType: 'Azure Functions host key "adf" of ${functionAppName}'
  }
}

resource systemTopic 'Microsoft.EventGrid/systemTopics@2022-06-15' = {
  name: 'evgt-${storageAccountName}'
  location: location
  tags: tags
  properties: {
    source: storage.id
    topicType: 'Microsoft.Storage.StorageAccounts'
  }
}

resource landingSubscription 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2022-06-15' = {
  parent: systemTopic
  name: 'landing-to-${toLower(blobTriggerFunctionName)}'
  properties: {
    destination: {
      endpointType: 'WebHook'
      properties: {
        endpointUrl: 'https://${functionApp.properties.defaultHostName}/runtime/webhooks/blobs?functionName=Host.Functions.${blobTriggerFunctionName}&code=${listKeys(resourceId('Microsoft.Web/sites/host', functionAppName, 'default'), '2022-09-01').systemKeys.blobs_extension}'
        maxEventsPerBatch: 1
        preferredBatchSizeInKilobytes: 64
      }
    }
    eventDeliverySchema: 'EventGridSchema'
    filter: {
      includedEventTypes: [
        'Microsoft.Storage.BlobCreated'
      ]
      subjectBeginsWith: '/blobServices/default/containers/${landingContainerName}/'
      // On an HNS account a DFS upload raises BlobCreated twice: CreateFile (empty file) and FlushWithClose
      // (content committed). Only deliver events for complete blobs.
      advancedFilters: [
        {
          operatorType: 'StringIn'
          key: 'data.api'
          values: [
            'PutBlob'
            'PutBlockList'
            'FlushWithClose'
            'CopyBlob'
          ]
        }
      ]
    }
    retryPolicy: {
      maxDeliveryAttempts: 30
      eventTimeToLiveInMinutes: 1440
    }
  }
}
