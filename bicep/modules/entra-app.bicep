// Optional: the Entra ID app registration Easy Auth validates tokens for, with the app roles the security settings
// map to patientflow roles (core/src/security/settings.rs `app_roles`; docs/security.md):
//   PatientFlow.DepartmentStaff -> department_staff (needs scopes in the settings: HOSPITAL/DEPARTMENT)
//   PatientFlow.HospitalManager -> hospital_manager (needs scopes: HOSPITAL)
//   PatientFlow.Analyst         -> analyst
//   PatientFlow.Operator        -> operator
//   PatientFlow.Admin           -> admin
// Deployed from main.bicep only with deployEntraApp=true: the deploying principal needs Microsoft Graph rights
// (Application.ReadWrite.All or Application Developer). The extension is declared in bicep/bicepconfig.json.
// Assign the roles to users/groups (Enterprise applications -> the app -> Users and groups) afterwards.

extension microsoftGraphV1

@description('Unique name of the application (its idempotent key in Microsoft Graph).')
param uniqueName string

@description('Display name shown in Entra ID.')
param displayName string

@description('Application ID URI, e.g. api://<tenantId>/<uniqueName>; Easy Auth accepts it as an audience.')
param identifierUri string

@description('Function App default host name; the Easy Auth sign-in callback is https://<host>/.auth/login/aad/callback.')
param functionAppHostName string

var roleDefinitions = [
  {
    value: 'PatientFlow.DepartmentStaff'
    displayName: 'Department staff'
    description: 'Identifiable rows of the hospital departments granted in the security settings.'
  }
  {
    value: 'PatientFlow.HospitalManager'
    displayName: 'Hospital manager'
    description: 'Rows of the hospitals granted in the security settings, PHI masked.'
  }
  {
    value: 'PatientFlow.Analyst'
    displayName: 'Analyst'
    description: 'Every hospital\'s rows, PHI masked (pseudonymous identifiers), small cells suppressed.'
  }
  {
    value: 'PatientFlow.Operator'
    displayName: 'Pipeline operator'
    description: 'Run health, the run ledger and DQ figures; no patient rows.'
  }
  {
    value: 'PatientFlow.Admin'
    displayName: 'Administrator'
    description: 'Everything, unmasked, including raw payloads.'
  }
]

resource application 'Microsoft.Graph/applications@v1.0' = {
  uniqueName: uniqueName
  displayName: displayName
  signInAudience: 'AzureADMyOrg'
  identifierUris: [
    identifierUri
  ]
  groupMembershipClaims: 'SecurityGroup'
  api: {
    requestedAccessTokenVersion: 2
    oauth2PermissionScopes: [
      {
        id: guid(uniqueName, 'user_impersonation')
        value: 'user_impersonation'
        type: 'User'
        isEnabled: true
        adminConsentDisplayName: 'Access ${displayName}'
        adminConsentDescription: 'Sign in to ${displayName} and read what the signed-in user\'s role allows.'
        userConsentDisplayName: 'Access ${displayName}'
        userConsentDescription: 'Read patient-flow data your role allows.'
      }
    ]
  }
  appRoles: [for role in roleDefinitions: {
    id: guid(uniqueName, role.value)
    value: role.value
    displayName: role.displayName
    description: role.description
    allowedMemberTypes: [
      'User'
      'Application'
    ]
    isEnabled: true
  }]
  web: {
    redirectUris: [
      'https://${functionAppHostName}/.auth/login/aad/callback'
    ]
    implicitGrantSettings: {
      enableIdTokenIssuance: true
      enableAccessTokenIssuance: false
    }
  }
}

resource servicePrincipal 'Microsoft.Graph/servicePrincipals@v1.0' = {
  appId: application.appId
  // false: Data Factory's managed identity must get a token (GoldRefresh WebHook) before anyone assigns it a role
  // (ADF is created after the app registration). Callers without an app role, user or group entitlement in the
  // security settings are refused by patientflow itself (403, audited). Give ADF's identity (output
  // dataFactoryPrincipalId) PatientFlow.Operator with Graph appRoleAssignedTo (docs/deployment.md section 6), or map
  // its object id under `users` in the security settings.
  appRoleAssignmentRequired: false
}

@description('Application (client) id: easyAuthClientId.')
output appId string = application.appId

@description('Application ID URI.')
output identifierUri string = identifierUri

@description('Object id of the service principal (the resourceId of app-role assignments).')
output servicePrincipalId string = servicePrincipal.id
