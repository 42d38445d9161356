// Package s3 is the Amazon S3 (and S3-compatible) backend:
//
//	s3://bucket/prefix?region=us-east-1&endpoint=http://127.0.0.1:9000&path_style=true
//
// Credentials come from the AWS SDK default chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY,
// AWS_PROFILE, SSO, IMDS...). Objects larger than 16 MiB are uploaded as multipart uploads in
// 8 MiB parts, so they appear whole or not at all. PutIf uses If-None-Match: * (create-only)
// and If-Match (compare-and-swap). SDK retries are off: backends.Open adds its own.
package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/agentfs/agentfs/backends"
)

func init() {
	backends.Register("s3", func(ctx context.Context, u *url.URL) (backends.Backend, error) {
		c, err := ParseURL(u)
		if err != nil {
			return nil, err
		}
		return New(ctx, c)
	})
}

// Config describes one bucket and prefix.
type Config struct {
	Bucket      string
	Prefix      string // without leading or trailing slash
	Region      string // default: from the SDK chain, else us-east-1
	Endpoint    string // S3-compatible server, e.g. http://127.0.0.1:9000
	PathStyle   bool
	Connections int   // default 16
	PartSize    int64 // multipart part size, default 8 MiB (min 5 MiB)
	// Options are applied last to the s3.Options (tests use them for static credentials).
	Options []func(*s3.Options)
}

// ParseURL turns s3://bucket/prefix?region=..&endpoint=..&path_style=true into a Config.
func ParseURL(u *url.URL) (Config, error) {
	c := Config{Bucket: u.Host, Prefix: strings.Trim(u.Path, "/")}
	if c.Bucket == "" {
		return c, fmt.Errorf("s3 backend: URL %q has no bucket (want s3://bucket/prefix)", u.Redacted())
	}
	for k, v := range u.Query() {
		val := v[len(v)-1]
		switch k {
		case "region":
			c.Region = val
		case "endpoint":
			c.Endpoint = val
		case "path_style":
			b, err := strconv.ParseBool(val)
			if err != nil {
				return c, fmt.Errorf("s3 backend: path_style=%q: want true or false", val)
			}
			c.PathStyle = b
		default:
			return c, fmt.Errorf("s3 backend: unknown URL parameter %q (known: region, endpoint, path_style, connections, retries)", k)
		}
	}
	return c, nil
}

// Backend is one S3 bucket and prefix.
type Backend struct {
	c      Config
	client *s3.Client
	name   string
}

var _ backends.Backend = (*Backend)(nil)

// New connects and checks that the bucket exists and is accessible, so that a typo or bad
// credentials fail here with a clear message rather than on first use.
func New(ctx context.Context, c Config) (*Backend, error) {
	name := "s3://" + c.Bucket
	if c.Prefix != "" {
		name += "/" + c.Prefix
	}
	var loadOpts []func(*config.LoadOptions) error
	if c.Region != "" {
		loadOpts = append(loadOpts, config.WithRegion(c.Region))
	}
	loadOpts = append(loadOpts, config.WithRetryer(func() aws.Retryer { return aws.NopRetryer{} }))
	cfg, err := config.LoadDefaultConfig(ctx, loadOpts...)
	if err != nil {
		return nil, fmt.Errorf("s3 backend %s: loading AWS configuration: %w", name, err)
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	if c.Connections <= 0 {
		c.Connections = 16
	}
	if c.PartSize <= 0 {
		c.PartSize = 8 << 20
	}
	if c.PartSize < 5<<20 {
		c.PartSize = 5 << 20
	}
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		if c.Endpoint != "" {
			o.BaseEndpoint = aws.String(c.Endpoint)
		}
		o.UsePathStyle = c.PathStyle
		// Ranged and multipart GETs carry no whole-object checksum; do not log that each time.
		o.DisableLogOutputChecksumValidationSkipped = true
		for _, f := range c.Options {
			f(o)
		}
	})
	b := &Backend{c: c, client: client, name: name}
	if _, err := client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(c.Bucket)}); err != nil {
		err = b.mapErr("open", "", err)
		if errors.Is(err, backends.ErrNotExist) {
			return nil, fmt.Errorf("s3 backend: bucket %q does not exist at %s (create it first, or check the bucket name, region and endpoint): %w",
				c.Bucket, b.endpoint(), err)
		}
		return nil, err
	}
	return b, nil
}

func (b *Backend) endpoint() string {
	if b.c.Endpoint != "" {
		return b.c.Endpoint
	}
	return "AWS region " + b.client.Options().Region
}

func (b *Backend) full(key string) (string, error) { return backends.CheckedName(b.c.Prefix, key) }

func (b *Backend) rel(full string) string {
	if b.c.Prefix == "" {
		return full
	}
	return strings.TrimPrefix(full, b.c.Prefix+"/")
}

// mapErr wraps an SDK error with the operation, the object and the matching sentinel.
func (b *Backend) mapErr(op, key string, err error) error {
	if err == nil {
		return nil
	}
	where := backends.Where(b.name, key)
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("s3 %s %s: %w", op, where, err)
	}
	status := 0
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		status = re.HTTPStatusCode()
	}
	code := ""
	var ae smithy.APIError
	if errors.As(err, &ae) {
		code = ae.ErrorCode()
	}
	var nsk *types.NoSuchKey
	var nf *types.NotFound
	var nsb *types.NoSuchBucket
	switch {
	case errors.As(err, &nsb) || code == "NoSuchBucket":
		return fmt.Errorf("s3 %s %s: bucket %q does not exist: %w: %w", op, where, b.c.Bucket, backends.ErrNotExist, err)
	case errors.As(err, &nsk) || errors.As(err, &nf) || code == "NoSuchKey" || status == 404:
		return fmt.Errorf("s3 %s %s: %w: %w", op, where, backends.ErrNotExist, err)
	case status == 401 || status == 403 || code == "AccessDenied" || code == "InvalidAccessKeyId" || code == "SignatureDoesNotMatch":
		return fmt.Errorf("s3 %s %s: %w (check the credentials - AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE - and the bucket policy; endpoint %s): %w",
			op, where, backends.ErrPermission, b.endpoint(), err)
	case status == 412 || code == "PreconditionFailed" || code == "ConditionalRequestConflict" || (status == 409 && op == "putif"):
		return fmt.Errorf("s3 %s %s: %w: %w", op, where, backends.ErrPrecondition, err)
	case strings.Contains(err.Error(), "failed to retrieve credentials") || strings.Contains(err.Error(), "no EC2 IMDS role found"):
		return fmt.Errorf("s3 %s %s: %w: no AWS credentials found (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or run with an IAM role): %w",
			op, where, backends.ErrPermission, err)
	case status >= 400 && status < 500 && status != 408 && status != 429:
		return backends.Permanent(fmt.Errorf("s3 %s %s: %w", op, where, err))
	}
	return fmt.Errorf("s3 %s %s: %w", op, where, err)
}

// seekLimit is an io.ReadSeeker over the next n bytes of r (the SDK needs seekable bodies
// to sign and to compute checksums over plain http).
type seekLimit struct {
	r          io.ReadSeeker
	start, n   int64
	pos        int64
	startKnown bool
}

func newSeekLimit(r io.ReadSeeker, n int64) (*seekLimit, error) {
	start, err := r.Seek(0, io.SeekCurrent)
	if err != nil {
		return nil, err
	}
	return &seekLimit{r: r, start: start, n: n, startKnown: true}, nil
}

func (s *seekLimit) Read(p []byte) (int, error) {
	if s.pos >= s.n {
		return 0, io.EOF
	}
	if int64(len(p)) > s.n-s.pos {
		p = p[:s.n-s.pos]
	}
	n, err := s.r.Read(p)
	s.pos += int64(n)
	if err == io.EOF && s.pos < s.n {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

func (s *seekLimit) Seek(off int64, whence int) (int64, error) {
	var abs int64
	switch whence {
	case io.SeekStart:
		abs = off
	case io.SeekCurrent:
		abs = s.pos + off
	case io.SeekEnd:
		abs = s.n + off
	}
	if abs < 0 || abs > s.n {
		return 0, fmt.Errorf("s3: seek to %d outside [0, %d]", abs, s.n)
	}
	if _, err := s.r.Seek(s.start+abs, io.SeekStart); err != nil {
		return 0, err
	}
	s.pos = abs
	return abs, nil
}

func (b *Backend) Put(ctx context.Context, key string, r io.ReadSeeker, size int64) error {
	k, err := b.full(key)
	if err != nil {
		return err
	}
	if size < 0 {
		return backends.Permanent(fmt.Errorf("s3 put %s/%s: negative size %d", b.name, key, size))
	}
	if size > 2*b.c.PartSize {
		return b.putMultipart(ctx, key, k, r, size)
	}
	body, err := newSeekLimit(r, size)
	if err != nil {
		return backends.Permanent(fmt.Errorf("s3 put %s/%s: %w", b.name, key, err))
	}
	_, err = b.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket:        aws.String(b.c.Bucket),
		Key:           aws.String(k),
		Body:          body,
		ContentLength: aws.Int64(size),
	})
	return b.mapErr("put", key, err)
}

const uploadParallelism = 4

func (b *Backend) putMultipart(ctx context.Context, key, k string, r io.ReadSeeker, size int64) (err error) {
	up, err := b.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
		Bucket: aws.String(b.c.Bucket), Key: aws.String(k),
	})
	if err != nil {
		return b.mapErr("put", key, err)
	}
	defer func() {
		if err != nil {
			actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			defer cancel()
			_, _ = b.client.AbortMultipartUpload(actx, &s3.AbortMultipartUploadInput{
				Bucket: aws.String(b.c.Bucket), Key: aws.String(k), UploadId: up.UploadId,
			})
		}
	}()
	nparts := int((size + b.c.PartSize - 1) / b.c.PartSize)
	parts := make([]types.CompletedPart, nparts)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		sem      = make(chan []byte, uploadParallelism)
	)
	for i := 0; i < uploadParallelism; i++ {
		sem <- nil
	}
	fail := func(e error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = e
			cancel()
		}
		mu.Unlock()
	}
	for i := 0; i < nparts; i++ {
		var buf []byte
		select {
		case buf = <-sem:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		n := min(b.c.PartSize, size-int64(i)*b.c.PartSize)
		if int64(cap(buf)) < n {
			buf = make([]byte, b.c.PartSize)
		}
		buf = buf[:n]
		if _, rerr := io.ReadFull(r, buf); rerr != nil {
			fail(backends.Permanent(fmt.Errorf("s3 put %s/%s: reading body for part %d: %w", b.name, key, i+1, rerr)))
			break
		}
		wg.Add(1)
		go func(i int, buf []byte) {
			defer wg.Done()
			defer func() { sem <- buf }()
			out, perr := b.client.UploadPart(ctx, &s3.UploadPartInput{
				Bucket:        aws.String(b.c.Bucket),
				Key:           aws.String(k),
				UploadId:      up.UploadId,
				PartNumber:    aws.Int32(int32(i + 1)),
				Body:          bytes.NewReader(buf),
				ContentLength: aws.Int64(int64(len(buf))),
			})
			if perr != nil {
				fail(b.mapErr(fmt.Sprintf("put (part %d of %d)", i+1, nparts), key, perr))
				return
			}
			parts[i] = types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(int32(i + 1))}
		}(i, buf)
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	_, err = b.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket:          aws.String(b.c.Bucket),
		Key:             aws.String(k),
		UploadId:        up.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
	})
	return b.mapErr("put", key, err)
}

func (b *Backend) Get(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	k, err := b.full(key)
	if err != nil {
		return nil, err
	}
	if off < 0 {
		return nil, backends.Permanent(fmt.Errorf("s3 get %s/%s: negative offset", b.name, key))
	}
	if length == 0 {
		info, err := b.Stat(ctx, key)
		if err != nil {
			return nil, err
		}
		if _, err := backends.CheckRange(key, off, length, info.Size); err != nil {
			return nil, err
		}
		return backends.ExactReader(io.NopCloser(bytes.NewReader(nil)), 0), nil
	}
	in := &s3.GetObjectInput{Bucket: aws.String(b.c.Bucket), Key: aws.String(k)}
	switch {
	case length > 0:
		in.Range = aws.String(fmt.Sprintf("bytes=%d-%d", off, off+length-1))
	case off > 0:
		in.Range = aws.String(fmt.Sprintf("bytes=%d-", off))
	}
	out, err := b.client.GetObject(ctx, in)
	if err != nil {
		var re *awshttp.ResponseError
		if errors.As(err, &re) && re.HTTPStatusCode() == 416 {
			// Range starts at or past the end: empty if exactly at the end, else an error.
			info, serr := b.Stat(ctx, key)
			if serr != nil {
				return nil, serr
			}
			if _, cerr := backends.CheckRange(key, off, length, info.Size); cerr != nil {
				return nil, cerr
			}
			return backends.ExactReader(io.NopCloser(bytes.NewReader(nil)), 0), nil
		}
		return nil, b.mapErr("get", key, err)
	}
	total := aws.ToInt64(out.ContentLength)
	if in.Range != nil {
		t, ok := parseContentRangeTotal(aws.ToString(out.ContentRange))
		if !ok {
			out.Body.Close()
			return nil, fmt.Errorf("s3 get %s/%s: server answered a range request without a usable Content-Range (%q)", b.name, key, aws.ToString(out.ContentRange))
		}
		total = t
	}
	n, err := backends.CheckRange(key, off, length, total)
	if err != nil {
		out.Body.Close()
		return nil, err
	}
	return backends.ExactReader(out.Body, n), nil
}

// parseContentRangeTotal returns the total size from "bytes a-b/total".
func parseContentRangeTotal(s string) (int64, bool) {
	i := strings.LastIndexByte(s, '/')
	if i < 0 {
		return 0, false
	}
	n, err := strconv.ParseInt(s[i+1:], 10, 64)
	return n, err == nil
}

func (b *Backend) Stat(ctx context.Context, key string) (backends.ObjectInfo, error) {
	k, err := b.full(key)
	if err != nil {
		return backends.ObjectInfo{}, err
	}
	out, err := b.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(b.c.Bucket), Key: aws.String(k)})
	if err != nil {
		return backends.ObjectInfo{}, b.mapErr("stat", key, err)
	}
	return backends.ObjectInfo{
		Key: key, Size: aws.ToInt64(out.ContentLength), ETag: aws.ToString(out.ETag), ModTime: aws.ToTime(out.LastModified),
	}, nil
}

func (b *Backend) Delete(ctx context.Context, key string) error {
	k, err := b.full(key)
	if err != nil {
		return err
	}
	_, err = b.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(b.c.Bucket), Key: aws.String(k)})
	err = b.mapErr("delete", key, err)
	var nsb *types.NoSuchBucket
	if errors.Is(err, backends.ErrNotExist) && !errors.As(err, &nsb) && !strings.Contains(err.Error(), "NoSuchBucket") {
		return nil
	}
	return err
}

func (b *Backend) List(ctx context.Context, prefix string, fn func(backends.ObjectInfo) error) error {
	full := prefix
	if b.c.Prefix != "" {
		full = b.c.Prefix + "/" + prefix
	}
	p := s3.NewListObjectsV2Paginator(b.client, &s3.ListObjectsV2Input{Bucket: aws.String(b.c.Bucket), Prefix: aws.String(full)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return b.mapErr("list", prefix, err)
		}
		for _, o := range page.Contents {
			if err := fn(backends.ObjectInfo{
				Key: b.rel(aws.ToString(o.Key)), Size: aws.ToInt64(o.Size), ETag: aws.ToString(o.ETag), ModTime: aws.ToTime(o.LastModified),
			}); err != nil {
				return err
			}
		}
	}
	return nil
}

func (b *Backend) PutIf(ctx context.Context, key string, data []byte, ifMatch string) (string, error) {
	k, err := b.full(key)
	if err != nil {
		return "", err
	}
	in := &s3.PutObjectInput{
		Bucket:        aws.String(b.c.Bucket),
		Key:           aws.String(k),
		Body:          bytes.NewReader(data),
		ContentLength: aws.Int64(int64(len(data))),
	}
	if ifMatch == "" {
		in.IfNoneMatch = aws.String("*")
	} else {
		in.IfMatch = aws.String(ifMatch)
	}
	out, err := b.client.PutObject(ctx, in)
	if err != nil {
		err = b.mapErr("putif", key, err)
		if ifMatch != "" && errors.Is(err, backends.ErrNotExist) && !strings.Contains(err.Error(), "NoSuchBucket") {
			// AWS answers If-Match on a missing key with 404: the condition failed.
			return "", fmt.Errorf("s3 putif %s/%s: %w (object does not exist)", b.name, key, backends.ErrPrecondition)
		}
		return "", err
	}
	return aws.ToString(out.ETag), nil
}

func (b *Backend) GetWithETag(ctx context.Context, key string) ([]byte, string, error) {
	k, err := b.full(key)
	if err != nil {
		return nil, "", err
	}
	out, err := b.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(b.c.Bucket), Key: aws.String(k)})
	if err != nil {
		return nil, "", b.mapErr("get", key, err)
	}
	defer out.Body.Close()
	data, err := io.ReadAll(backends.ExactReader(out.Body, aws.ToInt64(out.ContentLength)))
	if err != nil {
		return nil, "", b.mapErr("get", key, err)
	}
	return data, aws.ToString(out.ETag), nil
}

func (b *Backend) Properties() backends.Properties {
	return backends.Properties{Name: b.name, Connections: b.c.Connections, ListAfterWrite: true}
}

func (b *Backend) Close() error { return nil }
