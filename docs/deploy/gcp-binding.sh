#!/bin/sh
# Grant the agentfs role on one bucket to the daemon's service account, limited to one
# prefix with an IAM condition. Edit the four variables, then run it.
set -eu
PROJECT=my-project
BUCKET=my-agentfs-bucket
PREFIX=team/repo
SA=agentfs@${PROJECT}.iam.gserviceaccount.com

gcloud iam roles create agentfsRepo --project="$PROJECT" --file=gcp-role.yaml || true
# Conditions on object names need uniform bucket-level access.
gcloud storage buckets update "gs://$BUCKET" --uniform-bucket-level-access
gcloud storage buckets add-iam-policy-binding "gs://$BUCKET" \
  --member="serviceAccount:$SA" \
  --role="projects/$PROJECT/roles/agentfsRepo" \
  --condition="title=agentfs-prefix,expression=resource.type == 'storage.googleapis.com/Bucket' || resource.name.startsWith('projects/_/buckets/$BUCKET/objects/$PREFIX/')"
