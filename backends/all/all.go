// Package all registers every backends provider (s3://, gs://, az://, file://) with
// backends.Open. Import it for its side effect:
//
//	import _ "github.com/agentfs/agentfs/backends/all"
package all

import (
	_ "github.com/agentfs/agentfs/backends/azure" // az://
	_ "github.com/agentfs/agentfs/backends/file"  // file://
	_ "github.com/agentfs/agentfs/backends/gcs"   // gs://
	_ "github.com/agentfs/agentfs/backends/s3"    // s3://
)
