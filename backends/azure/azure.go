// Package azure is the Azure Blob Storage backend:
//
//	az://account/container/prefix?endpoint=http://127.0.0.1:10000/devstoreaccount1
//
// Credentials: a shared key from AZURE_STORAGE_KEY, else a SAS token from
// AZURE_STORAGE_SAS_TOKEN, else azidentity's DefaultAzureCredential (environment, workload
// identity, managed identity, Azure CLI). Objects up to 16 MiB are one Put Blob; larger ones
// are staged as 8 MiB blocks and committed with one Put Block List, so they appear whole or not
// at all. PutIf uses If-None-Match: * (a conflict is 409 BlobAlreadyExists) and If-Match (412);
// both become backends.ErrPrecondition. SDK retries are off: backends.Open adds its own.
package azure

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/agentfs/agentfs/backends"
)

func init() {
	backends.Register("az", func(ctx context.Context, u *url.URL) (backends.Backend, error) {
		c, err := ParseURL(u)
		if err != nil {
			return nil, err
		}
		return New(ctx, c)
	})
}

// Config describes one container and prefix.
type Config struct {
	Account     string
	Container   string
	Prefix      string
	Endpoint    string // service URL; default https://ACCOUNT.blob.core.windows.net/
	Connections int    // default 16
	BlockSize   int64  // default 8 MiB
}

// ParseURL turns az://account/container/prefix?endpoint=... into a Config.
func ParseURL(u *url.URL) (Config, error) {
	c := Config{Account: u.Host}
	path := strings.Trim(u.Path, "/")
	c.Container, c.Prefix, _ = strings.Cut(path, "/")
	if c.Account == "" || c.Container == "" {
		return c, fmt.Errorf("azure backend: URL %q: want az://account/container/prefix", u.Redacted())
	}
	for k, v := range u.Query() {
		switch k {
		case "endpoint":
			c.Endpoint = v[len(v)-1]
		default:
			return c, fmt.Errorf("azure backend: unknown URL parameter %q (known: endpoint, connections, retries)", k)
		}
	}
	return c, nil
}

// Backend is one Azure container and prefix.
type Backend struct {
	c         Config
	container *container.Client
	name      string
	credNote  string
}

var _ backends.Backend = (*Backend)(nil)

var time0 time.Time

// New connects and checks (by listing at most one blob) that the container exists and is
// accessible.
func New(ctx context.Context, c Config) (*Backend, error) {
	name := "az://" + c.Account + "/" + c.Container
	if c.Prefix != "" {
		name += "/" + c.Prefix
	}
	if c.Connections <= 0 {
		c.Connections = 16
	}
	if c.BlockSize <= 0 {
		c.BlockSize = 8 << 20
	}
	svc := c.Endpoint
	if svc == "" {
		svc = "https://" + c.Account + ".blob.core.windows.net/"
	}
	opts := &azblob.ClientOptions{ClientOptions: policy.ClientOptions{Retry: policy.RetryOptions{MaxRetries: -1}}}
	var (
		client   *azblob.Client
		err      error
		credNote string
	)
	switch {
	case os.Getenv("AZURE_STORAGE_KEY") != "":
		credNote = "the shared key in AZURE_STORAGE_KEY"
		var cred *azblob.SharedKeyCredential
		cred, err = azblob.NewSharedKeyCredential(c.Account, os.Getenv("AZURE_STORAGE_KEY"))
		if err == nil {
			client, err = azblob.NewClientWithSharedKeyCredential(svc, cred, opts)
		}
	case os.Getenv("AZURE_STORAGE_SAS_TOKEN") != "":
		credNote = "the SAS token in AZURE_STORAGE_SAS_TOKEN"
		sep := "?"
		if strings.Contains(svc, "?") {
			sep = "&"
		}
		client, err = azblob.NewClientWithNoCredential(svc+sep+strings.TrimPrefix(os.Getenv("AZURE_STORAGE_SAS_TOKEN"), "?"), opts)
	default:
		credNote = "azidentity DefaultAzureCredential (AZURE_CLIENT_ID/AZURE_TENANT_ID/..., managed identity or `az login`)"
		var cred *azidentity.DefaultAzureCredential
		cred, err = azidentity.NewDefaultAzureCredential(nil)
		if err == nil {
			client, err = azblob.NewClient(svc, cred, opts)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("azure backend %s: setting up credentials from %s: %w", name, credNote, err)
	}
	b := &Backend{c: c, container: client.ServiceClient().NewContainerClient(c.Container), name: name, credNote: credNote}
	pager := b.container.NewListBlobsFlatPager(&container.ListBlobsFlatOptions{Prefix: to.Ptr(b.full0("")), MaxResults: to.Ptr[int32](1)})
	if _, err := pager.NextPage(ctx); err != nil {
		err = b.mapErr("open", "", err)
		if errors.Is(err, backends.ErrNotExist) {
			return nil, fmt.Errorf("azure backend: container %q does not exist in account %q at %s (create it first, or check the names): %w",
				c.Container, c.Account, svc, err)
		}
		return nil, err
	}
	return b, nil
}

func (b *Backend) full0(key string) string { return backends.ObjectName(b.c.Prefix, key) }

func (b *Backend) blob(key string) (*blockblob.Client, error) {
	name, err := backends.CheckedName(b.c.Prefix, key)
	if err != nil {
		return nil, err
	}
	return b.container.NewBlockBlobClient(name), nil
}

func (b *Backend) mapErr(op, key string, err error) error {
	if err == nil {
		return nil
	}
	where := backends.Where(b.name, key)
	status := 0
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		status = re.StatusCode
	}
	var authErr *azidentity.AuthenticationFailedError
	switch {
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("azure %s %s: %w", op, where, err)
	case bloberror.HasCode(err, bloberror.ContainerNotFound, bloberror.ContainerBeingDeleted):
		return fmt.Errorf("azure %s %s: container %q does not exist: %w: %w", op, where, b.c.Container, backends.ErrNotExist, err)
	case bloberror.HasCode(err, bloberror.BlobNotFound) || status == 404:
		return fmt.Errorf("azure %s %s: %w: %w", op, where, backends.ErrNotExist, err)
	case bloberror.HasCode(err, bloberror.BlobAlreadyExists, bloberror.ConditionNotMet) || status == 412 || (status == 409 && op == "putif"):
		return fmt.Errorf("azure %s %s: %w: %w", op, where, backends.ErrPrecondition, err)
	case status == 401 || status == 403 || errors.As(err, &authErr) || strings.Contains(err.Error(), "credential"):
		return fmt.Errorf("azure %s %s: %w (using %s; check the key/token and the account's role assignments): %w",
			op, where, backends.ErrPermission, b.credNote, err)
	case status >= 400 && status < 500 && status != 408 && status != 429:
		return backends.Permanent(fmt.Errorf("azure %s %s: %w", op, where, err))
	}
	return fmt.Errorf("azure %s %s: %w", op, where, err)
}

// seekLimit is an io.ReadSeekCloser over the next n bytes of r.
type seekLimit struct {
	r             io.ReadSeeker
	start, n, pos int64
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
	abs := off
	switch whence {
	case io.SeekCurrent:
		abs = s.pos + off
	case io.SeekEnd:
		abs = s.n + off
	}
	if abs < 0 || abs > s.n {
		return 0, fmt.Errorf("azure: seek to %d outside [0, %d]", abs, s.n)
	}
	if _, err := s.r.Seek(s.start+abs, io.SeekStart); err != nil {
		return 0, err
	}
	s.pos = abs
	return abs, nil
}

func (s *seekLimit) Close() error { return nil }

func (b *Backend) Put(ctx context.Context, key string, r io.ReadSeeker, size int64) error {
	bb, err := b.blob(key)
	if err != nil {
		return err
	}
	if size < 0 {
		return backends.Permanent(fmt.Errorf("azure put %s/%s: negative size %d", b.name, key, size))
	}
	if size > 2*b.c.BlockSize {
		_, err = bb.UploadStream(ctx, io.LimitReader(r, size), &blockblob.UploadStreamOptions{BlockSize: b.c.BlockSize, Concurrency: 4})
		return b.mapErr("put", key, err)
	}
	start, err := r.Seek(0, io.SeekCurrent)
	if err != nil {
		return backends.Permanent(fmt.Errorf("azure put %s/%s: %w", b.name, key, err))
	}
	_, err = bb.Upload(ctx, &seekLimit{r: r, start: start, n: size}, nil)
	return b.mapErr("put", key, err)
}

func (b *Backend) Get(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	bb, err := b.blob(key)
	if err != nil {
		return nil, err
	}
	if off < 0 {
		return nil, backends.Permanent(fmt.Errorf("azure get %s/%s: negative offset", b.name, key))
	}
	if length == 0 {
		info, err := b.Stat(ctx, key)
		if err != nil {
			return nil, err
		}
		if _, err := backends.CheckRange(key, off, 0, info.Size); err != nil {
			return nil, err
		}
		return backends.ExactReader(io.NopCloser(bytes.NewReader(nil)), 0), nil
	}
	count := max(length, 0) // 0 = to the end
	resp, err := bb.DownloadStream(ctx, &blob.DownloadStreamOptions{Range: blob.HTTPRange{Offset: off, Count: count}})
	if err != nil {
		if bloberror.HasCode(err, bloberror.InvalidRange) {
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
	total := deref(resp.ContentLength, 0)
	if cr := deref(resp.ContentRange, ""); cr != "" {
		i := strings.LastIndexByte(cr, '/')
		t, perr := strconv.ParseInt(cr[i+1:], 10, 64)
		if i < 0 || perr != nil {
			resp.Body.Close()
			return nil, fmt.Errorf("azure get %s/%s: unusable Content-Range %q", b.name, key, cr)
		}
		total = t
	} else if off > 0 {
		resp.Body.Close()
		return nil, fmt.Errorf("azure get %s/%s: server ignored the range request", b.name, key)
	}
	n, err := backends.CheckRange(key, off, length, total)
	if err != nil {
		resp.Body.Close()
		return nil, err
	}
	return backends.ExactReader(resp.Body, n), nil
}

func (b *Backend) Stat(ctx context.Context, key string) (backends.ObjectInfo, error) {
	bb, err := b.blob(key)
	if err != nil {
		return backends.ObjectInfo{}, err
	}
	p, err := bb.GetProperties(ctx, nil)
	if err != nil {
		return backends.ObjectInfo{}, b.mapErr("stat", key, err)
	}
	return backends.ObjectInfo{
		Key: key, Size: deref(p.ContentLength, 0), ETag: string(deref(p.ETag, "")), ModTime: deref(p.LastModified, time0),
	}, nil
}

func (b *Backend) Delete(ctx context.Context, key string) error {
	bb, err := b.blob(key)
	if err != nil {
		return err
	}
	_, err = bb.Delete(ctx, &blob.DeleteOptions{DeleteSnapshots: to.Ptr(blob.DeleteSnapshotsOptionTypeInclude)})
	if bloberror.HasCode(err, bloberror.BlobNotFound) {
		return nil
	}
	return b.mapErr("delete", key, err)
}

func (b *Backend) List(ctx context.Context, prefix string, fn func(backends.ObjectInfo) error) error {
	pager := b.container.NewListBlobsFlatPager(&container.ListBlobsFlatOptions{Prefix: to.Ptr(b.full0(prefix))})
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return b.mapErr("list", prefix, err)
		}
		for _, it := range page.Segment.BlobItems {
			key := deref(it.Name, "")
			if b.c.Prefix != "" {
				key = strings.TrimPrefix(key, b.c.Prefix+"/")
			}
			oi := backends.ObjectInfo{Key: key}
			if p := it.Properties; p != nil {
				oi.Size = deref(p.ContentLength, 0)
				oi.ETag = string(deref(p.ETag, ""))
				oi.ModTime = deref(p.LastModified, time0)
			}
			if err := fn(oi); err != nil {
				return err
			}
		}
	}
	return nil
}

func (b *Backend) PutIf(ctx context.Context, key string, data []byte, ifMatch string) (string, error) {
	bb, err := b.blob(key)
	if err != nil {
		return "", err
	}
	mac := &blob.ModifiedAccessConditions{}
	if ifMatch == "" {
		mac.IfNoneMatch = to.Ptr(azcore.ETagAny)
	} else {
		mac.IfMatch = to.Ptr(azcore.ETag(ifMatch))
	}
	resp, err := bb.Upload(ctx, streaming.NopCloser(bytes.NewReader(data)), &blockblob.UploadOptions{
		AccessConditions: &blob.AccessConditions{ModifiedAccessConditions: mac},
	})
	if err != nil {
		err = b.mapErr("putif", key, err)
		if ifMatch != "" && errors.Is(err, backends.ErrNotExist) && !strings.Contains(err.Error(), "ContainerNotFound") {
			return "", fmt.Errorf("azure putif %s/%s: %w (object does not exist)", b.name, key, backends.ErrPrecondition)
		}
		return "", err
	}
	return string(deref(resp.ETag, "")), nil
}

func (b *Backend) GetWithETag(ctx context.Context, key string) ([]byte, string, error) {
	bb, err := b.blob(key)
	if err != nil {
		return nil, "", err
	}
	resp, err := bb.DownloadStream(ctx, nil)
	if err != nil {
		return nil, "", b.mapErr("get", key, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(backends.ExactReader(resp.Body, deref(resp.ContentLength, 0)))
	if err != nil {
		return nil, "", b.mapErr("get", key, err)
	}
	return data, string(deref(resp.ETag, "")), nil
}

func (b *Backend) Properties() backends.Properties {
	return backends.Properties{Name: b.name, Connections: b.c.Connections, ListAfterWrite: true}
}

func (b *Backend) Close() error { return nil }

func deref[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}
