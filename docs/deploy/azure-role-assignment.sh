#!/bin/sh
# Create the agentfs role and assign it to the daemon's managed identity on one container.
# Edit the variables, then run it.
set -eu
SUBSCRIPTION=00000000-0000-0000-0000-000000000000
RG=agentfs-rg
ACCOUNT=agentfsstore
CONTAINER=agentfs
IDENTITY_PRINCIPAL_ID=$(az identity show -g "$RG" -n agentfs-daemon --query principalId -o tsv)
SCOPE="/subscriptions/$SUBSCRIPTION/resourceGroups/$RG/providers/Microsoft.Storage/storageAccounts/$ACCOUNT/blobServices/default/containers/$CONTAINER"

sed -e "s#SUBSCRIPTION_ID#$SUBSCRIPTION#; s#RESOURCE_GROUP#$RG#; s#/ACCOUNT/#/$ACCOUNT/#; s#CONTAINER\"#$CONTAINER\"#" azure-role.json > /tmp/agentfs-role.json
az role definition create --role-definition /tmp/agentfs-role.json || true
az role assignment create --assignee-object-id "$IDENTITY_PRINCIPAL_ID" --assignee-principal-type ServicePrincipal \
  --role "agentfs repository" --scope "$SCOPE"
