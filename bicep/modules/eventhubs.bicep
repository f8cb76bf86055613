// Event Hubs namespace + the ADT hub. The Function App reads with its managed identity
// (role "Azure Event Hubs Data Receiver", assigned in roles.bicep) through the `$Default` consumer group;
// hospitals' registration systems send with the `hospital-send` SAS rule (Send only, scoped to the hub).

@description('Azure region.')
param location string

@description('Event Hubs namespace name (globally unique).')
param namespaceName string

@description('Event hub carrying one ADT message per event.')
param eventHubName string = 'adt-events'

@minValue(1)
@maxValue(32)
param partitionCount int = 4

@description('Retention in days (Standard tier: 1-7).')
@minValue(1)
@maxValue(7)
param messageRetentionInDays int = 7

@description('Throughput units.')
@minValue(1)
@maxValue(20)
param capacity int = 1

@description('Extra consumer group for replays and diagnostics; the AdtIngest function uses $Default.')
param replayConsumerGroupName string = 'ops-replay'

param tags object = {}

resource namespace 'Microsoft.EventHub/namespaces@2024-01-01' = {
  name: namespaceName
  location: location
  tags: tags
  sku: {
    name: 'Standard'
    tier: 'Standard'
    capacity: capacity
  }
  properties: {
    minimumTlsVersion: '1.2'
    isAutoInflateEnabled: false
  }
}

resource hub 'Microsoft.EventHub/namespaces/eventhubs@2024-01-01' = {
  parent: namespace
  name: eventHubName
  properties: {
    partitionCount: partitionCount
    messageRetentionInDays: messageRetentionInDays
  }
}

resource replayGroup 'Microsoft.EventHub/namespaces/eventhubs/consumergroups@2024-01-01' = {
  parent: hub
  name: replayConsumerGroupName
  properties: {
    userMetadata: 'Ad-hoc replay and diagnostics. The AdtIngest function reads $Default.'
  }
}

resource sendRule 'Microsoft.EventHub/namespaces/eventhubs/authorizationRules@2024-01-01' = {
  parent: hub
  name: 'hospital-send'
  properties: {
    rights: [
      'Send'
    ]
  }
}

output namespaceId string = namespace.id
output namespaceName string = namespace.name
output fullyQualifiedNamespace string = '${namespace.name}.servicebus.windows.net'
output eventHubId string = hub.id
output eventHubName string = hub.name
