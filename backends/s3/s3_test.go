package s3_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/agentfs/agentfs/backends"
	"github.com/agentfs/agentfs/backends/backendtest"
	_ "github.com/agentfs/agentfs/backends/s3"
)

// setup starts versitygw, creates bucket and points the SDK default chain at it.
func setup(t *testing.T, bucket string) *backendtest.S3Server {
	srv := backendtest.StartVersityGW(t)
	t.Setenv("AWS_ACCESS_KEY_ID", srv.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", srv.SecretKey)
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_CONFIG_FILE", "/nonexistent")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	if bucket != "" {
		c := s3.New(s3.Options{
			Region: "us-east-1", BaseEndpoint: aws.String(srv.Endpoint), UsePathStyle: true,
			Credentials: credentials.NewStaticCredentialsProvider(srv.AccessKey, srv.SecretKey, ""),
		})
		if _, err := c.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
			t.Fatalf("CreateBucket: %v", err)
		}
	}
	return srv
}

func url(srv *backendtest.S3Server, bucketAndPrefix string) string {
	return "s3://" + bucketAndPrefix + "?region=us-east-1&path_style=true&endpoint=" + srv.Endpoint
}

func TestConformance(t *testing.T) {
	srv := setup(t, "agentfs")
	for _, prefix := range []string{"agentfs/repo/one", "agentfs"} {
		t.Run(prefix, func(t *testing.T) {
			b, err := backends.Open(context.Background(), url(srv, prefix))
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			backendtest.Run(t, b)
		})
	}
}

func TestMissingBucket(t *testing.T) {
	srv := setup(t, "")
	_, err := backends.Open(context.Background(), url(srv, "no-such-bucket/x"))
	if !errors.Is(err, backends.ErrNotExist) || !strings.Contains(err.Error(), `"no-such-bucket" does not exist`) {
		t.Fatalf("Open(missing bucket) = %v, want ErrNotExist naming the bucket", err)
	}
	t.Logf("missing bucket: %v", err)
}

func TestBadCredentials(t *testing.T) {
	srv := setup(t, "agentfs")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "wrong")
	_, err := backends.Open(context.Background(), url(srv, "agentfs/x"))
	if !errors.Is(err, backends.ErrPermission) || !strings.Contains(err.Error(), "s3://agentfs/x") {
		t.Fatalf("Open(bad secret) = %v, want ErrPermission naming the bucket", err)
	}
	t.Logf("bad credentials: %v", err)
}

func TestBadURL(t *testing.T) {
	for _, u := range []string{"s3:///prefix", "s3://b/p?pathstyle=true", "s3://b/p?path_style=maybe", "s3://b?connections=0"} {
		if _, err := backends.Open(context.Background(), u); err == nil {
			t.Errorf("Open(%q) succeeded", u)
		} else {
			t.Logf("%s: %v", u, err)
		}
	}
}
