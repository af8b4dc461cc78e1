package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/nowhere-boot/nowhere/internal/chunk"
)

// S3 is a store in S3-compatible object storage (AWS S3, MinIO, versitygw, Ceph RGW, R2…):
// the same layout as a directory, one object per file under a key prefix. Objects are
// written whole by a single PUT, so readers never see part of one, as with Dir's renames.
type S3 struct {
	client *minio.Client
	creds  *credentials.Credentials
	bucket string
	prefix string // "" or ends in "/"
	name   string // s3://BUCKET/PREFIX, for messages
	opt    S3Options

	// Whether the service honours If-None-Match on PutObject, once asked (s3claim.go).
	claimMu       sync.Mutex
	claimProbed   bool
	claimHonoured bool
}

// S3Options say where the object storage is and how objects are written.
type S3Options struct {
	// Endpoint is the service's URL (http(s)://HOST[:PORT]); empty: AWS_ENDPOINT_URL_S3,
	// AWS_ENDPOINT_URL, else AWS S3 itself. A custom endpoint is addressed path-style
	// (http://HOST/BUCKET/KEY), which every S3-compatible server supports.
	Endpoint string
	// Region; empty: AWS_REGION, AWS_DEFAULT_REGION, else the service's answer.
	Region string
	// CacheControl gives the Cache-Control header stored with each object (nil: none), so
	// that a bucket served over plain HTTP tells caches what nowhere serve would.
	CacheControl func(name string) string
	// Warn is told, once, of a service that turned out not to do something the store
	// relies on (conditional writes, for claiming versions); nil: nobody is told.
	Warn func(msg string)
	// LockTTL is how long a lock marker stays valid without being rewritten (S3Lock);
	// 0: DefaultS3LockTTL.
	LockTTL time.Duration
}

// IsS3 reports whether loc names an object store location (s3://BUCKET[/PREFIX]).
func IsS3(loc string) bool { return strings.HasPrefix(loc, "s3://") }

// NewS3 opens s3://BUCKET[/PREFIX]. Credentials come from AWS_ACCESS_KEY_ID,
// AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN, else ~/.aws/credentials (AWS_PROFILE,
// AWS_SHARED_CREDENTIALS_FILE); with none, requests are anonymous, which is all a public
// bucket needs for reading.
func NewS3(loc string, opt S3Options) (*S3, error) {
	bad := func(why string) (*S3, error) {
		return nil, fmt.Errorf("store %q: %s (want s3://BUCKET[/PREFIX])", loc, why)
	}
	u, err := url.Parse(loc)
	if err != nil || u.Scheme != "s3" {
		return bad("not an s3:// URL")
	}
	if u.Host == "" {
		return bad("no bucket")
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return bad("credentials, query or fragment in it")
	}
	prefix := strings.Trim(u.Path, "/")
	if prefix != "" {
		if path.Clean(prefix) != prefix || strings.Contains(prefix, "..") {
			return bad("unclean prefix")
		}
		prefix += "/"
	}
	endpoint := opt.Endpoint
	for _, env := range []string{"AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"} {
		if endpoint == "" {
			endpoint = os.Getenv(env)
		}
	}
	region := opt.Region
	for _, env := range []string{"AWS_REGION", "AWS_DEFAULT_REGION"} {
		if region == "" {
			region = os.Getenv(env)
		}
	}
	host, secure, lookup := "s3.amazonaws.com", true, minio.BucketLookupAuto
	if endpoint != "" {
		e, err := url.Parse(endpoint)
		if err != nil || (e.Scheme != "http" && e.Scheme != "https") || e.Host == "" || strings.Trim(e.Path, "/") != "" {
			return nil, fmt.Errorf("S3 endpoint %q: want http(s)://HOST[:PORT]", endpoint)
		}
		host, secure, lookup = e.Host, e.Scheme == "https", minio.BucketLookupPath
	}
	creds := credentials.NewChainCredentials([]credentials.Provider{
		&credentials.EnvAWS{},
		&credentials.FileAWSCredentials{},
	}) // no instance-metadata provider: nothing is asked of addresses the user did not name
	client, err := minio.New(host, &minio.Options{
		Creds: creds, Secure: secure, Region: region, BucketLookup: lookup, Transport: NewTransport(),
	})
	if err != nil {
		return nil, fmt.Errorf("store %s: %w", loc, err)
	}
	name := "s3://" + u.Host
	if prefix != "" {
		name += "/" + strings.TrimSuffix(prefix, "/")
	}
	return &S3{client: client, creds: creds, bucket: u.Host, prefix: prefix, name: name, opt: opt}, nil
}

func (s *S3) String() string { return s.name }

// Bucket returns the bucket's name.
func (s *S3) Bucket() string { return s.bucket }

func (s *S3) key(name string) string { return s.prefix + name }

// s3Error turns a minio error into ours: ErrNotFound for missing keys and buckets.
func (s *S3) s3Error(name string, err error) error {
	var resp minio.ErrorResponse
	if errors.As(err, &resp) {
		switch resp.Code {
		case "NoSuchKey", "NoSuchBucket", "NotFound":
			return fmt.Errorf("%s/%s: %w", s.name, name, ErrNotFound)
		}
		if resp.StatusCode == 404 {
			return fmt.Errorf("%s/%s: %w", s.name, name, ErrNotFound)
		}
		msg := resp.Message
		if msg == "" {
			msg = resp.Code
		}
		return fmt.Errorf("%s/%s: %s (HTTP %d)", s.name, name, msg, resp.StatusCode)
	}
	return fmt.Errorf("%s/%s: %w", s.name, name, cleanNetError(err))
}

func (s *S3) Chunk(ctx context.Context, ref chunk.Ref) ([]byte, error) {
	limit := int64(chunk.MaxSize + 1<<16)
	if ref.Stored > 0 {
		limit = int64(ref.Stored)
	}
	return s.get(ctx, ChunkPath(ref.ID), limit)
}

func (s *S3) File(ctx context.Context, name string, max int64) ([]byte, error) {
	return s.get(ctx, name, max)
}

func (s *S3) get(ctx context.Context, name string, max int64) ([]byte, error) {
	obj, err := s.client.GetObject(ctx, s.bucket, s.key(name), minio.GetObjectOptions{})
	if err != nil {
		return nil, s.s3Error(name, err)
	}
	defer obj.Close()
	b, err := io.ReadAll(io.LimitReader(obj, max+1))
	if err != nil {
		return nil, s.s3Error(name, err)
	}
	if int64(len(b)) > max {
		return nil, &TooLargeError{What: s.name + "/" + name, Limit: max}
	}
	return b, nil
}

func (s *S3) HasChunk(ctx context.Context, id chunk.ID) (int64, bool, error) {
	info, err := s.client.StatObject(ctx, s.bucket, s.key(ChunkPath(id)), minio.StatObjectOptions{})
	if err != nil {
		err = s.s3Error(ChunkPath(id), err)
		if errors.Is(err, ErrNotFound) {
			return 0, false, nil
		}
		return 0, false, err
	}
	return info.Size, info.Size > 0, nil
}

func (s *S3) PutChunk(ctx context.Context, id chunk.ID, data []byte) (bool, error) {
	if _, ok, err := s.HasChunk(ctx, id); err != nil || ok {
		return false, err
	}
	return true, s.put(ctx, ChunkPath(id), data)
}

func (s *S3) PutFile(ctx context.Context, name string, data []byte) error {
	return s.put(ctx, name, data)
}

func (s *S3) put(ctx context.Context, name string, data []byte) error {
	opt := minio.PutObjectOptions{ContentType: "application/octet-stream", SendContentMd5: true}
	if s.opt.CacheControl != nil {
		opt.CacheControl = s.opt.CacheControl(name)
	}
	_, err := s.client.PutObject(ctx, s.bucket, s.key(name), bytes.NewReader(data), int64(len(data)), opt)
	if err != nil {
		return s.s3Error(name, err)
	}
	return nil
}

// list calls fn for every object under prefix (relative to the store), with its name
// relative to the store.
func (s *S3) list(ctx context.Context, prefix string, fn func(name string, size int64, mod time.Time) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // stops the listing goroutine when fn fails
	for obj := range s.client.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: s.key(prefix), Recursive: true}) {
		if obj.Err != nil {
			return s.s3Error(prefix, obj.Err)
		}
		name := strings.TrimPrefix(obj.Key, s.prefix)
		if err := fn(name, obj.Size, obj.LastModified); err != nil {
			return err
		}
	}
	return ctx.Err()
}

func (s *S3) Files(ctx context.Context, prefix string) ([]string, error) {
	var out []string
	err := s.list(ctx, prefix, func(name string, _ int64, _ time.Time) error {
		if !strings.HasPrefix(name, "chunks/") && !strings.HasPrefix(path.Base(name), ".tmp-") {
			out = append(out, name)
		}
		return nil
	})
	return out, err
}

func (s *S3) Chunks(ctx context.Context, fn func(id chunk.ID, size int64) error) error {
	return s.ChunkTimes(ctx, func(id chunk.ID, size int64, _ time.Time) error { return fn(id, size) })
}

// ChunkTimes calls fn for every stored chunk with its size and last modification.
func (s *S3) ChunkTimes(ctx context.Context, fn func(id chunk.ID, size int64, mod time.Time) error) error {
	return s.list(ctx, "chunks/", func(name string, size int64, mod time.Time) error {
		if !strings.HasSuffix(name, ".cacnk") {
			return nil
		}
		id, err := chunk.ParseID(strings.TrimSuffix(path.Base(name), ".cacnk"))
		if err != nil || ChunkPath(id) != name {
			return nil // not a chunk in its place: not ours
		}
		return fn(id, size, mod)
	})
}

func (s *S3) RemoveChunk(ctx context.Context, id chunk.ID) error {
	return s.RemoveFile(ctx, ChunkPath(id))
}

// RemoveFile deletes a metadata file (garbage collection of old versions).
func (s *S3) RemoveFile(ctx context.Context, name string) error {
	if err := s.client.RemoveObject(ctx, s.bucket, s.key(name), minio.RemoveObjectOptions{}); err != nil {
		return s.s3Error(name, err)
	}
	return nil
}
