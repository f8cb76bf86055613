// Key Vault (RBAC mode). Holds the Functions host key that ADF uses (secret `patientflow-adf-function-key`,
// written by runtime-keys.bicep). ADF reads it with its managed identity (Key Vault Secrets User, roles.bicep).
// Also holds the security settings JSON (secret `patientflow-security`, the Function App's PATIENTFLOW_SECURITY
// Key Vault reference): written here when securitySettingsJson is given, else set out of band with
// `az keyvault secret set --vault-name <kv> --name patientflow-security --file security.json`.

@description('Azure region.')
param location string

@description('Key Vault name (3-24 characters, globally unique).')
@minLength(3)
@maxLength(24)
param keyVaultName string

@description('Name of the security settings secret.')
param securitySettingsSecretName string = 'patientflow-security'

@description('Optional security settings JSON to store (empty = leave the secret as it is).')
@secure()
param securitySettingsJson string = ''

param tags object = {}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: keyVaultName
  location: location
  tags: tags
  properties: {
    tenantId: tenant().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    enablePurgeProtection: true
    publicNetworkAccess: 'Enabled'
  }
}

resource securitySettings 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(securitySettingsJson)) {
  parent: vault
  name: securitySettingsSecretName
  properties: {
    value: securitySettingsJson
    contentType: 'application/json'
  }
}

output name string = vault.name
output id string = vault.id
output uri string = vault.properties.vaultUri
