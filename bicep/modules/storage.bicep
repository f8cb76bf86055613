// One StorageV2 account with hierarchical namespace (ADLS Gen2):
//   - container `lake`    : the Delta lake (PATIENTFLOW_LAKE = abfss://lake@<account>.dfs.core.windows.net/<root>)
//   - container `landing` : EHR daily extracts / reference files (blob trigger EhrBatchIngest, ADF daily check)
// The same account is the Functions host storage (AzureWebJobsStorage + content share), because the blob trigger's
// connection is AzureWebJobsStorage. Shared-key access stays enabled for that reason (Elastic Premium content share
// needs a key-based connection string).

@description('Azure region.')
param location string

@description('Storage account name (3-24 lowercase letters and digits, globally unique).')
@minLength(3)
@maxLength(24)
param storageAccountName string

@description('Replication SKU.')
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_GZRS'
])
param skuName string = 'Standard_ZRS'

@description('Container holding the Delta lake.')
param lakeContainerName string = 'lake'

@description('Container where EHR extracts and reference files are dropped.')
param landingContainerName string = 'landing'

param tags object = {}

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: storageAccountName
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: skuName
  }
  properties: {
    isHnsEnabled: true
    accessTier: 'Hot'
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    allowBlobPublicAccess: false
    allowSharedKeyAccess: true
    publicNetworkAccess: 'Enabled'
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource lakeContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: lakeContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource landingContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: landingContainerName
  properties: {
    publicAccess: 'None'
  }
}

output id string = storage.id
output name string = storage.name
output dfsEndpoint string = storage.properties.primaryEndpoints.dfs
output lakeContainerName string = lakeContainer.name
output landingContainerName string = landingContainer.name
